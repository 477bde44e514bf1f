"""Secrets kept out of what is printed and logged: URL user info, secret query parameters, secret settings.

Used by :class:`livesignals.settings.Settings` (``redacted()``, ``repr``) and by every
start-up or error line that names a Kafka or Redis address.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(
    r"pass|pwd|secret|token|credential|private|api[._-]?key|(^|\.)key($|\.)|\.pem$|^sasl\.|jaas|keystore|auth|user\.info",
    re.IGNORECASE,
)
"""Option or parameter names whose values are secrets (librdkafka ``*.password``, ``*.pem``,
``*.key``, ``sasl.*``, anything with secret/token/credential; matched anywhere in a name)."""
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)", re.DOTALL)
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#]*)")
REDACTED = "***"


def redact_url(text: str) -> str:
    """``text`` with URL user info (user and password) and secret query parameters hidden.

    The user info runs to the *last* ``@`` of the text, so a password holding ``@``, ``/``,
    a space or a tab is hidden whole; text with an ``@`` but no ``scheme://`` (a mistyped
    ``redis:/u:pw@h``, a Kafka bootstrap ``user:pw@broker:9092``) loses everything before its
    last ``@``. A secret query parameter is hidden up to the next ``&``, ``;`` or ``#``. If in
    doubt, more is hidden, never less.

    >>> redact_url("redis://user:pa/ss@db:6379/0")
    'redis://***@db:6379/0'
    >>> redact_url("redis://u:pass word@db:6379/0")
    'redis://***@db:6379/0'
    >>> redact_url("user:pw@broker:9092")
    '***@broker:9092'
    >>> redact_url("rediss://db:6380/0?password=hunter2&ssl_cert_reqs=none")
    'rediss://db:6380/0?password=***&ssl_cert_reqs=none'
    """

    def userinfo(m: re.Match[str]) -> str:
        rest = m["rest"]
        at = rest.rfind("@")
        return m["scheme"] + (REDACTED + rest[at:] if at >= 0 else rest)

    def param(m: re.Match[str]) -> str:
        secret = _SECRET_KEY.search(m["name"])
        return f"{m['sep']}{m['name']}={REDACTED if secret else m['value']}"

    if "://" in text:
        text = _URL_USERINFO.sub(userinfo, text)
    elif "@" in text:
        text = REDACTED + text[text.rfind("@") :]
    return _QUERY_PARAM.sub(param, text) if "=" in text else text


def is_secret(path: str) -> bool:
    """A dotted setting path names a secret if any of its tails does: TOML turns an unquoted
    ``ssl.key.pem = ...`` under ``[kafka_config]`` into nested tables, so the option's name is a
    tail of ``kafka_config.ssl.key.pem``."""
    parts = path.split(".")
    return any(_SECRET_KEY.search(".".join(parts[i:])) for i in range(len(parts)))


def redact(name: str, value: Any) -> Any:
    """``value`` safe to print: secret names hide their value (a whole table when the table's path
    is secret), strings lose URL secrets."""
    if is_secret(name) and value not in ("", None, {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list | tuple):
        return type(value)(redact(name, v) for v in value)
    return value
