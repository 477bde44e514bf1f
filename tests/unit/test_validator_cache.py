"""The on-disk cache of compiled schema validators (:mod:`livesignals.validator_cache`, issue #10: restart time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fastjsonschema
import pytest

from livesignals import validator_cache
from livesignals.validator_cache import cache_key, compile_validator

SCHEMA = {
    "type": "object",
    "properties": {"when": {"type": "string", "format": "date-time"}, "n": {"type": "integer", "minimum": 0}},
    "required": ["n"],
    "additionalProperties": False,
}
FORMATS = {"date-time": lambda value: value.endswith("Z")}
CASES = [{"n": 1}, {"n": -1}, {"n": "1"}, {}, {"n": 1, "x": 2}, {"n": 1, "when": "2026-01-01T00:00:00Z"},
         {"n": 1, "when": "yesterday"}]  # fmt: skip


def _outcome(validate, data):
    try:
        validate(data)
        return "ok"
    except fastjsonschema.JsonSchemaValueException as exc:
        return f"{exc.message} | {exc.name} | {exc.rule}"


def test_a_cached_validator_judges_like_fastjsonschema_compile_first_and_when_loaded(tmp_path: Path):
    reference = fastjsonschema.compile(SCHEMA, formats=FORMATS)
    first = compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.marshal"))) == 1, "kept on disk"
    loaded = compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path)
    for case in CASES:
        assert _outcome(first, case) == _outcome(loaded, case) == _outcome(reference, case), case


def test_a_loaded_validator_generates_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path)

    def refused(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(fastjsonschema, "compile_to_code", refused)
    assert _outcome(compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path), {"n": -1}) != "ok"


def test_the_key_follows_the_definition_the_format_names_the_library_version_and_the_bytecode(
    monkeypatch: pytest.MonkeyPatch,
):
    key = cache_key(SCHEMA, FORMATS)
    assert key == cache_key(dict(reversed(list(SCHEMA.items()))), FORMATS), "key order does not matter"
    assert key != cache_key({**SCHEMA, "required": []}, FORMATS)
    assert key != cache_key(SCHEMA, {})
    monkeypatch.setattr(fastjsonschema, "VERSION", "0.0.0-other")
    assert key != cache_key(SCHEMA, FORMATS)
    monkeypatch.undo()
    monkeypatch.setattr(validator_cache.importlib.util, "MAGIC_NUMBER", b"\x00\x00\r\n")
    assert key != cache_key(SCHEMA, FORMATS)


def test_a_damaged_file_is_compiled_again_and_replaced(tmp_path: Path):
    compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.marshal")
    for damage in (b"", b"not marshal at all", path.read_bytes()[:100]):
        path.write_bytes(damage)
        assert _outcome(compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path), {"n": -1}) != "ok"
        assert path.read_bytes() != damage, "replaced"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_directory_that_cannot_be_written_still_gives_a_validator(tmp_path: Path):
    tmp_path.chmod(0o500)
    try:
        assert _outcome(compile_validator(SCHEMA, FORMATS, cache_dir=tmp_path / "sub"), {"n": 1}) == "ok"
    finally:
        tmp_path.chmod(0o700)


def test_a_cache_path_that_is_a_file_still_gives_a_validator(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert _outcome(compile_validator(SCHEMA, FORMATS, cache_dir=blocker), {"n": 1}) == "ok"


_FRESH_ENGINE_DECODE = """
import fastjsonschema
def refused(*args, **kwargs):
    raise AssertionError("the event validators were generated again")
fastjsonschema.compile_to_code = refused
from livesignals import contract
from livesignals.errors import InvalidEvent, Origin
try:
    contract.decode(b'{"type": "page_view"}', Origin("t", 0, 0), now_ms=0)
except InvalidEvent as exc:
    print(exc.reason.value)
"""


def test_the_event_validators_of_a_fresh_process_come_from_the_cache_once_filled():
    fill = subprocess.run([sys.executable, "-m", "livesignals.validator_cache"], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    assert "validators cached" in fill.stdout
    done = subprocess.run([sys.executable, "-c", _FRESH_ENGINE_DECODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the bad event was refused with a reason"


def test_compiling_leaves_the_definition_as_it_was(tmp_path: Path):
    """fastjsonschema rewrites ``$ref`` in place: a definition sharing parts with the next one would change
    that one's key, and a process that finds the first in the cache would then look for another file."""
    import copy

    shared = {"id": {"type": "string", "maxLength": 4}}
    definition = {"$id": "https://example.test/s.json", "definitions": shared,
                  "properties": {"a": {"$ref": "#/definitions/id"}}}  # fmt: skip
    before = copy.deepcopy(definition)
    compile_validator(definition, cache_dir=tmp_path)
    assert definition == before
