import time

import numpy as np
import pytest

from service.sessions import codec
from service.sessions.redis import REVISION_OFFSET
from service.sessions.store import StoredSession

pytestmark = pytest.mark.unit


def sample(next_token: int | None = 4) -> StoredSession:
    return StoredSession(
        id="abc",
        model="mémoire",
        version=12,
        steps=2**40,
        next_token=next_token,
        states=(np.arange(6, dtype=np.float32).reshape(2, 3), np.asarray([np.pi], np.float32)),
        created_at=time.time(),
        revision=77,
    )


@pytest.mark.parametrize("next_token", [None, 0, 50])
def test_round_trip(next_token: int | None) -> None:
    s = sample(next_token)
    data = codec.encode(s)
    back = codec.decode("abc", data, expires_at=5.0)
    assert (back.model, back.version, back.steps, back.next_token, back.revision) == (
        s.model,
        s.version,
        s.steps,
        next_token,
        77,
    )
    assert back.created_at == s.created_at and back.expires_at == 5.0
    for a, b in zip(back.states, s.states, strict=True):
        np.testing.assert_array_equal(a, b)  # exact by construction: raw float32 bytes
    # the revision sits where the Redis compare-and-set script reads it
    assert int.from_bytes(data[REVISION_OFFSET : REVISION_OFFSET + 8], "little") == 77


def test_size_is_state_plus_a_small_header() -> None:
    s = StoredSession(
        id="x",
        model="reverse",
        version=1,
        steps=0,
        next_token=0,
        created_at=0.0,
        states=(np.zeros(128, np.float32), np.zeros(128, np.float32)),
    )
    assert len(codec.encode(s)) == 1024 + 42 + len("reverse") + 1 + 2 * 5


@pytest.mark.parametrize("data", [b"", b"XXXX" + bytes(60), codec.encode(sample())[:-3]])
def test_corrupt_records_raise(data: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode("abc", data)


def test_every_truncation_and_any_trailing_bytes_raise_codec_error_only() -> None:
    data = codec.encode(sample())
    for end in range(len(data)):
        with pytest.raises(codec.CodecError, match="corrupt record"):
            codec.decode("abc", data[:end])
    with pytest.raises(codec.CodecError, match="unexpected bytes"):
        codec.decode("abc", data + b"\0")


def test_absurd_shapes_and_random_bytes_raise_codec_error_only() -> None:
    header = codec.encode(sample())[: codec._HEADER.size + len("mémoire".encode())]
    # one state of 8 dims of 2**32 - 1 each: its size overflows int64
    absurd = header + b"\x01\x08" + b"\xff\xff\xff\xff" * 8
    with pytest.raises(codec.CodecError, match="truncated"):
        codec.decode("abc", absurd)
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(2000):  # anything but CodecError escaping fails the test
        garbage = header + rng.bytes(int(rng.integers(0, 64)))
        try:
            codec.decode("abc", garbage)
        except codec.CodecError:
            refused += 1
    assert refused > 1900  # random tails are almost never a whole record


def test_attention_memory_round_trips_in_a_compact_record() -> None:
    from dataclasses import replace

    memory = np.random.default_rng(3).standard_normal((31, 64)).astype(np.float32)
    s = replace(sample(), memory=memory)
    data = codec.encode(s)
    assert data[:4] == codec.MAGIC_MEMORY
    assert len(data) == len(codec.encode(sample())) + 4 * 31 * 64 + 1 + 2 * 4
    back = codec.decode("abc", data)
    assert back.memory is not None
    np.testing.assert_array_equal(back.memory, memory)  # exact: raw float32 bytes
    assert codec.encode(sample())[:4] == codec.MAGIC  # no memory: the previous format
    assert codec.decode("abc", codec.encode(sample())).memory is None
    with pytest.raises(codec.CodecError, match="truncated"):
        codec.decode("abc", data[:-4])
