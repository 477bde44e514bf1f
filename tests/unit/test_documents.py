"""The stored form of profile documents (livesignals.documents): zstd frames with a shipped dictionary, and
plain JSON read as before; the dictionary tool is deterministic."""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livesignals import documents, serde
from operators.profile360.profile import CustomerState

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


def test_the_current_dictionary_is_shipped_under_its_own_id():
    folder = Path(documents.__file__).parent / "dictionaries"
    content = (folder / f"profile-{documents.CURRENT_DICTIONARY}.zdict").read_bytes()
    assert documents.zstd.ZstdDict(content).dict_id == documents.CURRENT_DICTIONARY
    assert len(content) == 32_768  # as the README says
    for path in folder.glob("profile-*.zdict"):  # every file named by the id zstd reads from it
        assert path.name == f"profile-{documents.zstd.ZstdDict(path.read_bytes()).dict_id}.zdict"


def test_the_timeline_dictionary_is_shipped_under_its_own_id_and_is_not_the_profiles():
    folder = Path(documents.__file__).parent / "dictionaries"
    content = (folder / f"timeline-{documents.CURRENT_TIMELINE_DICTIONARY}.zdict").read_bytes()
    assert documents.zstd.ZstdDict(content).dict_id == documents.CURRENT_TIMELINE_DICTIONARY
    assert documents.CURRENT_TIMELINE_DICTIONARY != documents.CURRENT_DICTIONARY and len(content) == 16_384


def test_a_timeline_entry_round_trips_with_its_own_dictionary_and_the_same_bytes_each_time():
    member = serde.dumps({"id": "ev-11-1", "t": 1767204000020, "type": "web_event", "ch": "web", "s": "product_view"})
    stored = documents.encode(member, kind="timeline")
    assert documents.frame_dictionary(stored) == documents.CURRENT_TIMELINE_DICTIONARY
    assert documents.decode(stored) == member and documents.encode(member, kind="timeline") == stored
    assert len(stored) < len(member) / 1.5
    assert documents.encode(member, "off", "timeline") is member


def test_a_profile_round_trips_compressed_and_names_the_current_dictionary():
    doc = CustomerState("customer_id:c1", events=3, value={"spend": 12.5}, applied={"in:0": 41}).to_bytes()
    stored = documents.encode(doc)
    assert documents.is_compressed(stored) and not documents.is_compressed(doc)
    assert documents.zstd.get_frame_info(stored).dictionary_id == documents.CURRENT_DICTIONARY
    assert documents.decode(stored) == doc
    assert len(stored) < len(doc) / 3  # a new customer's document is mostly the dictionary's words


def test_plain_json_is_read_as_is_and_off_writes_it():
    doc = b'{"events":2,"identity":{}}'
    assert documents.encode(doc, "off") is doc
    assert documents.decode(doc) is doc
    assert documents.read(None) is None and documents.read(doc) == doc


@settings(max_examples=200, deadline=None)
@given(json_values.map(lambda v: {"v": v}))
def test_any_json_document_round_trips_exactly(value):
    doc = serde.dumps(value)
    assert documents.decode(documents.encode(doc)) == doc


def test_unicode_and_a_one_megabyte_document_round_trip():
    rng = random.Random(3)
    text = "".join(chr(rng.choice([rng.randrange(32, 0xD7FF), rng.randrange(0xE000, 0x10FFFF)])) for _ in range(2000))
    for doc in (
        serde.dumps({"text": "héllo wörld — 你好 🙂", "rtl": "שלום"}),
        serde.dumps({"text": text}),
        serde.dumps({"blob": rng.randbytes(400_000).hex()[:1_048_576], "n": list(range(1000))}),
    ):
        assert documents.decode(documents.encode(doc)) == doc
    big = serde.dumps({"blob": rng.randbytes(524_288).hex()})
    assert len(big) > 1_000_000 and documents.decode(documents.encode(big)) == big


@functools.cache
def other_dictionary():
    """A dictionary this package does not ship."""
    samples = [serde.dumps({"other": i, "words": [f"w{j}" for j in range(i % 17)]}) for i in range(3000)]
    return documents.zstd.train_dict(samples, 4096)


def test_a_frame_naming_a_dictionary_not_shipped_is_a_corrupt_document():
    other = other_dictionary()
    assert other.dict_id != documents.CURRENT_DICTIONARY
    stored = documents.zstd.compress(b'{"other": 5}', zstd_dict=other)
    with pytest.raises(documents.CorruptDocument, match=f"dictionary {other.dict_id}"):
        documents.decode(stored)


def test_a_corrupt_or_truncated_frame_is_a_corrupt_document_never_other_bytes():
    doc = CustomerState("customer_id:c1", events=7, identity={"name": "Ann"}).to_bytes()
    stored = documents.encode(doc)
    with pytest.raises(documents.CorruptDocument):
        documents.decode(stored[:-3])
    for i in range(4, len(stored)):  # every single-byte change: an error (the frame has a checksum) or the same
        broken = bytearray(stored)
        broken[i] ^= 0x41
        with contextlib.suppress(documents.CorruptDocument):
            assert documents.decode(bytes(broken)) == doc
    assert issubclass(documents.CorruptDocument, ValueError)  # as an undecodable JSON document is


def test_a_frame_that_is_not_a_json_document_is_corrupt():
    with pytest.raises(documents.CorruptDocument, match="JSON"):
        documents.decode(documents.encode(b"[1,2]"))


def test_threads_encode_with_their_own_compressor_and_get_the_same_bytes():
    docs = [CustomerState(f"customer_id:c{i}", events=i).to_bytes() for i in range(50)]
    expected = [documents.encode(d) for d in docs]
    got: list[list[bytes]] = []

    def work() -> None:
        got.append([documents.encode(d) for d in docs for _ in range(20)][::20])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [expected] * 4
    assert [documents.decode(s) for s in expected] == docs


def test_the_dictionary_tool_gives_the_same_bytes_for_the_same_seed():
    from bench.profile_dictionary import sample_documents, train

    first = sample_documents(customers=150, events=1500, seed=7)
    again = sample_documents(customers=150, events=1500, seed=7)
    assert first == again and len(first) > 150
    a, b = train(first, 8192, seed=7), train(again, 8192, seed=7)
    assert a == b and len(a) <= 8192
    assert train(sample_documents(customers=150, events=1500, seed=8), 8192, seed=8) != a


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["current", "none", "other"]))
def test_the_header_read_names_the_dictionary_zstd_reads(data, which):
    zstd = documents.zstd
    if which == "current":
        frame = documents.encode(b"{" + data + b"}")
    elif which == "none":
        frame = zstd.compress(data)
    else:
        frame = zstd.compress(data, zstd_dict=other_dictionary())
    assert documents.frame_dictionary(frame) == zstd.get_frame_info(frame).dictionary_id


def test_the_dictionary_tool_gives_the_same_timeline_dictionary_for_the_same_seed():
    from bench.profile_dictionary import sample_entries, train

    first, again = (
        sample_entries(customers=100, events=1500, seed=7),
        sample_entries(customers=100, events=1500, seed=7),
    )
    assert first == again and len(first) == 1500  # every event writes one entry
    assert train(first, 4096, seed=7) == train(again, 4096, seed=7)
