"""Sessions as compact bytes: a fixed header, the model name, then raw float32 states.

Layout (little-endian): magic b"S2S1", version u32, steps u64, next_token i64 (-1: none),
created_at f64, revision u64, model name length u16 + UTF-8, state count u8, then per
state: ndim u8, dims u32 each, float32 data. A reverse session (2 x 128 floats) is
1,024 bytes of state plus ~60 bytes of header. Magic b"S2S2" adds one more tensor after
the states, the attention memory, in the same form (records without memory keep
writing b"S2S1", so replicas of the previous release read them). Magic b"S2S3" is
written for sessions with an owner (API keys on): after the model name come the owner
(length u16 + UTF-8) and a memory flag u8, then the states and the memory if flagged.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from service.sessions.store import StoredSession

MAGIC = b"S2S1"
MAGIC_MEMORY = b"S2S2"
MAGIC_OWNER = b"S2S3"
_HEADER = struct.Struct("<4sIQqdQH")


class CodecError(ValueError):
    pass


def _tensor(state: np.ndarray) -> list[bytes]:
    array = np.require(state, dtype="<f4", requirements="C")  # keeps 0-d arrays 0-d
    return [struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape), array.tobytes()]


def _read_tensor(data: bytes, offset: int) -> tuple[np.ndarray, int]:
    (ndim,) = struct.unpack_from("<B", data, offset)
    shape = struct.unpack_from(f"<{ndim}I", data, offset + 1)
    offset += 1 + 4 * ndim
    size = math.prod(shape)  # Python ints: no wrap-around on absurd shapes
    if offset + 4 * size > len(data):
        raise CodecError(f"truncated: tensor of shape {shape} needs {4 * size} bytes")
    tensor = np.frombuffer(data, "<f4", size, offset).reshape(shape).copy()
    return tensor, offset + 4 * size


def encode(session: StoredSession) -> bytes:
    name = session.model.encode()
    if session.owner is not None:
        magic = MAGIC_OWNER
    else:
        magic = MAGIC if session.memory is None else MAGIC_MEMORY
    parts = [
        _HEADER.pack(
            magic,
            session.version,
            session.steps,
            -1 if session.next_token is None else session.next_token,
            session.created_at,
            session.revision,
            len(name),
        ),
        name,
    ]
    if session.owner is not None:
        owner = session.owner.encode()
        parts.append(struct.pack("<H", len(owner)) + owner)
        parts.append(struct.pack("<B", session.memory is not None))
    parts.append(struct.pack("<B", len(session.states)))
    for state in session.states:
        parts.extend(_tensor(state))
    if session.memory is not None:
        parts.extend(_tensor(session.memory))
    return b"".join(parts)


def decode(session_id: str, data: bytes, expires_at: float = 0.0) -> StoredSession:
    """Raises CodecError, and nothing else, for any bytes that are not a whole record."""
    try:
        magic, version, steps, next_token, created_at, revision, name_len = _HEADER.unpack_from(
            data, 0
        )
        if magic not in (MAGIC, MAGIC_MEMORY, MAGIC_OWNER):
            raise CodecError(f"unknown format {magic[:4]!r}")
        offset = _HEADER.size
        model = data[offset : offset + name_len].decode()
        offset += name_len
        owner, has_memory = None, magic == MAGIC_MEMORY
        if magic == MAGIC_OWNER:
            (owner_len,) = struct.unpack_from("<H", data, offset)
            owner = data[offset + 2 : offset + 2 + owner_len].decode()
            if len(owner.encode()) != owner_len:
                raise CodecError("truncated owner")
            (flag,) = struct.unpack_from("<B", data, offset + 2 + owner_len)
            if flag > 1:
                raise CodecError(f"memory flag {flag} is not 0 or 1")
            offset += 3 + owner_len
            has_memory = flag == 1
        (count,) = struct.unpack_from("<B", data, offset)
        offset += 1
        states = []
        for _ in range(count):
            state, offset = _read_tensor(data, offset)
            states.append(state)
        memory = None
        if has_memory:
            memory, offset = _read_tensor(data, offset)
        if offset != len(data):
            raise CodecError(f"{len(data) - offset} unexpected bytes after the last state")
    except (struct.error, UnicodeDecodeError, ValueError) as exc:  # CodecError is a ValueError
        raise CodecError(f"corrupt record ({exc})") from None
    return StoredSession(
        id=session_id,
        model=model,
        version=version,
        steps=steps,
        states=tuple(s.astype(np.float32, copy=False) for s in states),
        next_token=None if next_token < 0 else next_token,
        created_at=created_at,
        expires_at=expires_at,
        revision=revision,
        memory=memory,
        owner=owner,
    )
