"""Compiled JSON Schema validators kept on disk, as Python keeps bytecode: a restarted engine loads them.

fastjsonschema turns a schema into Python source and compiles it; for the
event schema (:mod:`livesignals.contract`: 49 validators, ~640k characters
of source) that is ~0.3 s of CPU at every engine start -- several seconds of
wall time on a loaded machine, on the path of kill -9 recovery (issue #10).
:func:`compile_validator` compiles a definition once and keeps the code
object (``marshal``) in ``livesignals/schemas/__pycache__``, named by a hash
of everything the code depends on: the definition, the custom format names,
fastjsonschema's version and the interpreter's bytecode magic number. A
schema, library or Python change therefore compiles afresh; nothing is ever
invalidated by hand.

The cache is trusted as Python trusts its ``__pycache__`` (same directory
tree, same writability). Where it cannot be written (a read-only install) the
validator is simply compiled in memory at every start, as without a cache:
fill it when building the image with ``python -m livesignals.validator_cache``.
A damaged file is compiled again and replaced.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as where:
...     first = compile_validator({"type": "integer"}, cache_dir=where)
...     again = compile_validator({"type": "integer"}, cache_dir=where)  # loaded from the file
...     again(3), len(os.listdir(where))
(3, 1)
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import hashlib
import importlib.util
import marshal
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from fastjsonschema.ref_resolver import RefResolver

CACHE_DIR = Path(__file__).parent / "schemas" / "__pycache__"
"""Where compiled validators are kept (beside the schemas, like Python's bytecode cache)."""

Validator = Callable[..., Any]


def cache_key(definition: Mapping[str, Any], formats: Mapping[str, Any]) -> str:
    """The file name stem for ``definition``: changes with anything the compiled code depends on.

    >>> cache_key({"type": "integer"}, {}) == cache_key({"type": "integer"}, {})
    True
    >>> cache_key({"type": "integer"}, {}) == cache_key({"type": "string"}, {})
    False
    """
    digest = hashlib.sha256()
    digest.update(importlib.util.MAGIC_NUMBER)
    digest.update(fastjsonschema.VERSION.encode())
    digest.update(orjson.dumps(sorted(formats)))
    digest.update(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS))
    return f"validator-{digest.hexdigest()[:32]}"


def compile_validator(
    definition: Mapping[str, Any], formats: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None
) -> Validator:
    """``fastjsonschema.compile(definition, formats=formats)``, its code loaded from the cache when there.

    ``formats`` maps format names to callables (their code is not cached, only their names).
    """
    formats = dict(formats or {})
    where = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = where / f"{cache_key(definition, formats)}.marshal"
    entry = _load(path)
    if entry is None:
        entry = _compile(definition, formats)
        _store(path, entry)
    name, code = entry
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our compiled schema: defines the validators, compiles their regexes
    func = namespace[name]
    return functools.update_wrapper(functools.partial(func, custom_formats=formats), func) if formats else func


def _compile(definition: Mapping[str, Any], formats: Mapping[str, Any]) -> tuple[str, Any]:
    """The entry function's name and the compiled module code (what ``fastjsonschema.compile`` would exec).

    fastjsonschema rewrites the ``$ref`` it resolves in place (to absolute URIs): it gets a copy, so that the
    caller's definition -- and the keys computed from definitions sharing its parts -- never change."""
    copied: dict[str, Any] = copy.deepcopy(dict(definition))
    source = fastjsonschema.compile_to_code(copied, formats=dict(formats))
    name = RefResolver.from_schema(copied, store={}).get_scope_name()
    return name, builtins.compile(source, f"<validator {name}>", "exec")


def _load(path: Path) -> tuple[str, Any] | None:
    try:
        entry = marshal.loads(path.read_bytes())  # noqa: S302 - trusted like __pycache__ (module docstring)
    except (OSError, EOFError, ValueError, TypeError):
        return None  # absent, unreadable or damaged: compiled again
    if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
        return None
    if type(entry[1]).__name__ != "code":
        return None
    return entry[0], entry[1]


def _store(path: Path, entry: tuple[str, Any]) -> None:
    """Write ``entry`` atomically (a concurrent reader sees the old file or the new one); never raises."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(entry))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


if __name__ == "__main__":  # fill the cache for the event schema (an image build step)
    from livesignals.contract import decode
    from livesignals.errors import InvalidEvent, Origin

    with contextlib.suppress(InvalidEvent):  # expected: decoding anything compiles every validator
        decode(b"{}", Origin("validator-cache", 0, 0), now_ms=0)
    print(f"validators cached in {CACHE_DIR}")
