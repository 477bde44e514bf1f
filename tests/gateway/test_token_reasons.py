"""A 401 says why in one of a fixed, documented set of reasons, never a library's exception class or text."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from gateway import auth
from gateway.audit import AuditLog
from tests.gateway.conftest import OTHER_SECRET, SECRET, bearer

NOW = int(time.time())
GOOD = {"sub": "a1", "role": "agent", "queues": ["billing"], "iss": "livesignals", "exp": NOW + 600}


def signed(claims: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def unsigned(claims: dict, header: dict | None = None) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header or {'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


def without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


CASES = [
    ("expired", signed({**GOOD, "exp": NOW - 10}), auth.EXPIRED),
    ("not yet valid", signed({**GOOD, "nbf": NOW + 600}), auth.NOT_YET_VALID),
    ("wrong secret", signed(GOOD, "z" * 48), auth.BAD_SIGNATURE),
    ("tampered", signed(GOOD).rsplit(".", 1)[0] + ".AAAA", auth.BAD_SIGNATURE),
    ("alg none", unsigned(GOOD), auth.BAD_ALGORITHM),
    ("HS512", signed(GOOD, algorithm="HS512"), auth.BAD_ALGORITHM),
    ("garbage", "not-a-token", auth.MALFORMED),
    ("three garbage parts", "a.b.c", auth.MALFORMED),
    ("no sub", signed(without("sub")), auth.MISSING_CLAIM),
    ("no exp", signed(without("exp")), auth.MISSING_CLAIM),
    ("no iss", signed(without("iss")), auth.MISSING_CLAIM),
    ("another issuer", signed({**GOOD, "iss": "someone-else"}), auth.WRONG_ISSUER),
    ("an audience", signed({**GOOD, "aud": "another-service"}), auth.WRONG_AUDIENCE),
    ("unknown role", signed({**GOOD, "role": "root"}), auth.BAD_CLAIMS),
    ("queues not a list", signed({**GOOD, "queues": "billing"}), auth.BAD_CLAIMS),
    ("exp not finite", signed({**GOOD, "exp": float("inf")}), auth.BAD_CLAIMS),
    ("second secret, expired", signed({**GOOD, "exp": NOW - 10}, OTHER_SECRET), auth.EXPIRED),
]


@pytest.mark.parametrize(("name", "tok", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_refused_token_gets_its_documented_reason(world, client, name, tok, reason):
    r = client.get("/v1/customers/c1", headers=bearer(tok))
    assert r.status_code == 401, (name, r.text)
    detail = r.json()["detail"]
    assert detail == reason, (name, detail)
    assert detail in auth.REASONS
    assert "Error" not in r.text and "jwt" not in r.text.lower()  # no PyJWT class or module named
    entry = AuditLog(world.client, world.settings.key_prefix, 1000).entries(1)[0]
    assert (entry["allowed"], entry["reason"]) == ("0", reason)


def test_no_token_and_a_good_one(client):
    r = client.get("/v1/customers/c1")
    assert (r.status_code, r.json()["detail"]) == (401, auth.NO_TOKEN)
    assert client.get("/v1/customers/c1", headers=bearer(signed(GOOD))).status_code == 200


def test_every_library_refusal_maps_to_a_documented_reason():
    for name in dir(jwt.exceptions):
        kind = getattr(jwt.exceptions, name)
        if isinstance(kind, type) and issubclass(kind, jwt.InvalidTokenError):
            assert auth.library_reason(kind("x")) in auth.REASONS, name
    with pytest.raises(ValueError):
        auth.TokenError("InvalidAudienceError")  # only the documented reasons can be raised
