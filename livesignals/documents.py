"""The stored form of a customer's documents in Redis: JSON, compressed at the Redis boundary (issue 16, item 5).

A profile document is JSON in memory (:class:`operators.profile360.profile.CustomerState` keeps it, undo
records copy it: nothing per event pays for compression). Only what is written to Redis is compressed,
by :func:`encode`: a `zstd <https://facebook.github.io/zstd/>`_ frame made with a dictionary shipped in
this package (``livesignals/dictionaries/profile-<dict id>.zdict``), trained on the simulator's profiles
by ``python -m bench.profile_dictionary``. The dictionary carries the keys and values every profile
repeats, so even a 1-2 kB document compresses several times (``python -m bench.memory`` measures it).

:func:`decode` reads both forms whatever ``profile_compression`` says: plain JSON (a document starts
with ``{``: every profile written before this codec, or with ``profile_compression = "off"``) and zstd
frames (which name their dictionary by id in the frame header). A dictionary is never deleted once
shipped: stored documents name theirs. A frame naming an unknown dictionary, or a corrupt one, is a
:class:`CorruptDocument` (a :class:`ValueError`, as an undecodable JSON document is).

Compressors are per thread (the gateway serves from threads; a zstd compressor is not meant to be shared
between threads); a digested dictionary is shared (read only).

>>> decode(encode(b'{"a":1}')) == b'{"a":1}' and decode(b'{"a":1}') == b'{"a":1}'
True
"""

from __future__ import annotations

import functools
import sys
import threading
from importlib import resources
from typing import Literal

if sys.version_info >= (3, 14):  # pragma: no cover - the stdlib module from Python 3.14 on
    from compression import zstd
else:  # its backport (PyPI ``backports-zstd``) below
    from backports import zstd

Compression = Literal["zstd", "off"]
Kind = Literal["profile", "timeline"]

CURRENT_DICTIONARY = 1123581983
"""Id of the shipped dictionary :func:`encode` uses for profiles (``dictionaries/profile-<id>.zdict``; the
others are kept for the documents that name them)."""

CURRENT_TIMELINE_DICTIONARY = 213456932
"""Id of the shipped dictionary :func:`encode` uses for timeline entries (``dictionaries/timeline-<id>.zdict``):
entries are ~100-byte JSON objects, unlike profiles, so they have their own."""

_CURRENT: dict[str, int] = {"profile": CURRENT_DICTIONARY, "timeline": CURRENT_TIMELINE_DICTIONARY}

LEVEL = 3
"""zstd's default level: ~10 µs per 2 kB document; higher levels gain a few per cent for several times the CPU.
Frames carry a checksum (4 bytes): a damaged document is an error, never other bytes read as a profile."""

_MAGIC = b"\x28\xb5\x2f\xfd"
"""A zstd frame's first four bytes."""


class CorruptDocument(ValueError):
    """A stored document that cannot be read: a corrupt frame, or one naming a dictionary not shipped."""


def _dictionary_files() -> dict[int, bytes]:
    """Every shipped dictionary, of any kind, by its zstd dictionary id (the number in its file name,
    ``<kind>-<id>.zdict``: zstd derives ids from the content, so two kinds never share one)."""
    out: dict[int, bytes] = {}
    for entry in resources.files("livesignals").joinpath("dictionaries").iterdir():
        name = entry.name
        if name.endswith(".zdict"):
            out[int(name[: -len(".zdict")].rpartition("-")[2])] = entry.read_bytes()
    return out


_FILES = _dictionary_files()


@functools.cache
def dictionary(dict_id: int) -> zstd.ZstdDict:
    """The shipped dictionary ``dict_id``; :class:`CorruptDocument` when none is shipped under it."""
    content = _FILES.get(dict_id)
    if content is None:
        raise CorruptDocument(f"stored document names zstd dictionary {dict_id}, which this version does not ship")
    return zstd.ZstdDict(content)


_local = threading.local()


def _compressor(kind: str) -> zstd.ZstdCompressor:
    """This thread's compressor for ``kind`` (made once per thread and kind)."""
    made: zstd.ZstdCompressor | None = getattr(_local, kind, None)
    if made is None:
        options: dict[int, int] = {
            zstd.CompressionParameter.compression_level: LEVEL,
            zstd.CompressionParameter.checksum_flag: 1,
        }
        made = zstd.ZstdCompressor(options=options, zstd_dict=dictionary(_CURRENT[kind]))
        setattr(_local, kind, made)
    return made


def encode(document: bytes, compression: Compression = "zstd", kind: Kind = "profile") -> bytes:
    """The stored form of a JSON ``document`` (a profile, or a timeline entry): a zstd frame with the current
    dictionary of its ``kind`` (``"off"``: as is). The same document gives the same bytes (a replayed timeline
    entry is the same member, so it adds nothing) while the dictionary and zstd's version stay the same."""
    if compression == "off":
        return document
    return _compressor(kind).compress(document, mode=zstd.ZstdCompressor.FLUSH_FRAME)


def frame_dictionary(frame: bytes) -> int:
    """The dictionary id a zstd frame's header names (0: none), read from the header's bytes (RFC 8878,
    3.1.1.1: what ``zstd.get_frame_info`` reads, in a fraction of its time); a damaged header gives a wrong
    id, which the decompression then refuses.

    >>> frame_dictionary(encode(b"{}")) == CURRENT_DICTIONARY, frame_dictionary(zstd.compress(b"{}"))
    (True, 0)
    """
    if len(frame) < 6:
        return 0
    descriptor = frame[4]
    start = 5 if descriptor & 0x20 else 6  # no window byte in a single-segment frame
    size = (0, 1, 2, 4)[descriptor & 3]
    return int.from_bytes(frame[start : start + size], "little")


def is_compressed(stored: bytes) -> bool:
    """Whether ``stored`` is a zstd frame (otherwise plain JSON, or not a document)."""
    return stored[:4] == _MAGIC


def decode(stored: bytes) -> bytes:
    """The JSON of a stored document, plain or compressed; :class:`CorruptDocument` when a frame cannot be read.

    Plain JSON is returned as is (whether it parses is for the JSON decoder to say, as before)."""
    if stored[:4] != _MAGIC:
        return stored
    dict_id = frame_dictionary(stored)
    try:
        data = zstd.decompress(stored, zstd_dict=dictionary(dict_id)) if dict_id else zstd.decompress(stored)
    except zstd.ZstdError as exc:
        raise CorruptDocument(f"corrupt zstd frame (dictionary {dict_id}): {exc}") from None
    if not data.startswith(b"{"):
        raise CorruptDocument("a zstd frame that does not hold a JSON document")
    return data


def read(stored: bytes | None) -> bytes | None:
    """:func:`decode` of a value read from Redis, ``None`` (no such key) passed through."""
    return None if stored is None else decode(stored)
