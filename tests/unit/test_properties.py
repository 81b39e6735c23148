"""Property tests (hypothesis): the session codec, the tokenizers and the decode loop.

No TensorFlow: the codec is pure bytes, the tokenizers are manifest lookups, and the
decoders are `ReferenceCompute` (service/inference/reference/compute.py, the reference the compiled
TensorFlow engine is checked against) driven through service/inference/serving/decoding.py by
numpy models. Deterministic in CI (`CI` set: derandomized), random locally.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.config import Settings
from service.dataplane.tokens import (
    FLOAT32_MAX,
    parse_states,
    read_ids,
    source_ids,
    to_ids,
    to_text,
    to_tokens,
)
from service.errors import InvalidInput
from service.inference.model.interface import ModelSpec, States
from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import Side
from service.inference.reference.compute import ReferenceCompute
from service.inference.serving.decoding import generate, greedy_decode, run_steps
from service.sessions import codec
from service.sessions.store import StoredSession
from tests import fakes

pytestmark = pytest.mark.unit

IN_CI = bool(os.environ.get("CI"))


def fuzz(max_examples: int) -> settings:
    """Bounded and deadline-free (the machine is shared); derandomized in CI; no example
    database (nothing written under the repository)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=IN_CI,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- codec

U32, U64, I64 = 2**32 - 1, 2**64 - 1, 2**63 - 1

float32_arrays = hnp.arrays(
    dtype=st.sampled_from([np.dtype("<f4"), np.dtype(">f4")]),  # big-endian is converted
    # from 1 dim: 0-d states do not round-trip (test_zero_dim_state_round_trips)
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    # every float32 bit pattern class: nan, +-inf, -0.0, subnormals
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
)


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    array = draw(float32_arrays)
    if array.ndim >= 2 and draw(st.booleans()):
        array = array.T  # not C-contiguous: the codec must still write it in C order
    return array


sessions = st.builds(
    StoredSession,
    id=st.just("sid"),
    # name length is a u16 of UTF-8 bytes: 100 characters is at most 400 bytes
    model=st.text(max_size=100),
    version=st.integers(0, U32),
    steps=st.integers(0, U64),
    states=st.lists(tensors(), max_size=4).map(tuple),
    next_token=st.none() | st.integers(0, I64),
    created_at=st.floats(width=64),  # any f64, nan included
    memory=st.none() | tensors(),
    revision=st.integers(0, U64),
    owner=st.none() | st.text(max_size=20),
)


def f32_bits(array: np.ndarray) -> np.ndarray:
    """The float32 bit patterns in C order (nan payloads and -0.0 compared exactly)."""
    return np.ascontiguousarray(array, dtype="<f4").view("<u4")


def same_tensor(back: np.ndarray, original: np.ndarray) -> bool:
    return (
        back.dtype == np.float32
        and back.shape == original.shape
        and np.array_equal(f32_bits(back), f32_bits(original))
    )


def f64_bits(value: float) -> bytes:
    return struct.pack("<d", value)


@fuzz(300)
@given(sessions, st.text(max_size=30), st.floats(allow_nan=False))
def test_codec_round_trips_every_valid_session(
    session: StoredSession, session_id: str, expires_at: float
) -> None:
    data = codec.encode(session)
    back = codec.decode(session_id, data, expires_at)
    assert back.id == session_id and back.expires_at == expires_at
    assert (back.model, back.version, back.steps, back.next_token, back.revision) == (
        session.model,
        session.version,
        session.steps,
        session.next_token,
        session.revision,
    )
    assert f64_bits(back.created_at) == f64_bits(session.created_at)
    assert len(back.states) == len(session.states)
    for got, want in zip(back.states, session.states, strict=True):
        assert same_tensor(got, want)
    assert back.owner == session.owner
    if session.memory is None:
        assert back.memory is None
    else:
        assert back.memory is not None and same_tensor(back.memory, session.memory)
    # replicas of the previous releases read what has no owner (and no memory)
    if session.owner is not None:
        assert data[:4] == codec.MAGIC_OWNER
    else:
        assert data[:4] == (codec.MAGIC if session.memory is None else codec.MAGIC_MEMORY)
    assert codec.encode(back) == data  # and the decoded session encodes to the same bytes


def test_zero_dim_state_round_trips() -> None:
    scalar = np.asarray(1.5, np.float32)
    session = StoredSession("sid", "m", 1, 0, (scalar,), None, 0.0, memory=scalar)
    back = codec.decode("sid", codec.encode(session))
    assert back.states[0].shape == () and back.memory is not None and back.memory.shape == ()


def decodes_or_codec_error(data: bytes) -> StoredSession | None:
    """The codec's promise: a StoredSession, or CodecError and nothing else."""
    try:
        session = codec.decode("sid", data)
    except codec.CodecError:
        return None
    assert all(s.dtype == np.float32 for s in session.states)
    assert session.memory is None or session.memory.dtype == np.float32
    assert session.next_token is None or session.next_token >= 0
    return session


@fuzz(300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    decodes_or_codec_error(data)


@st.composite
def crafted_records(draw: st.DrawFn) -> bytes:
    """Records whose every field is drawn: valid magics, name lengths that may not match
    the name (or be invalid UTF-8), state counts that may not match the tensors, up to 70
    dims (numpy allows 64) with dims from 0 to 2**32 - 1, and data of any length."""
    name = draw(st.binary(max_size=6))
    name_len = draw(st.sampled_from([len(name), len(name)]) | st.integers(0, 2**16 - 1))
    header = struct.pack(
        "<4sIQqdQH",
        magic := draw(st.sampled_from([codec.MAGIC, codec.MAGIC_MEMORY, codec.MAGIC_OWNER])),
        draw(st.integers(0, U32)),
        draw(st.integers(0, U64)),
        draw(st.integers(-(2**63), I64)),
        draw(st.floats(width=64)),
        draw(st.integers(0, U64)),
        name_len,
    )
    parts = [header, name]
    if magic == codec.MAGIC_OWNER:
        owner = draw(st.binary(max_size=6))
        owner_len = draw(st.sampled_from([len(owner), len(owner)]) | st.integers(0, 2**16 - 1))
        flag = draw(st.sampled_from([0, 1]) | st.integers(0, 255))
        parts.append(struct.pack("<H", owner_len) + owner + struct.pack("<B", flag))
    tensors_ = draw(st.integers(0, 4), label="tensors")
    count = draw(st.sampled_from([tensors_, tensors_]) | st.integers(0, 255))
    parts.append(struct.pack("<B", count))
    for _ in range(tensors_):
        ndim = draw(st.integers(0, 4) | st.integers(0, 70), label="ndim")
        dims = draw(
            st.lists(
                st.integers(0, 3) | st.just(U32) | st.integers(0, U32), min_size=ndim, max_size=ndim
            )
        )
        parts.append(struct.pack(f"<B{ndim}I", ndim, *dims))
        size = math.prod(dims)
        if size <= 64 and draw(st.booleans()):
            parts.append(bytes(4 * size))  # exactly the data the shape needs
        else:
            parts.append(draw(st.binary(max_size=64)))
    return b"".join(parts)


@fuzz(300)
@given(crafted_records())
def test_crafted_records_decode_or_raise_codec_error(record: bytes) -> None:
    """Past the magic check: shapes and lengths that do not fit are refused before any
    large allocation (a 2**32-sided shape needs 16 GiB)."""
    decodes_or_codec_error(record)


@fuzz(200)
@given(sessions, st.data())
def test_truncated_or_extended_records_raise_codec_error(
    session: StoredSession, data: st.DataObject
) -> None:
    record = codec.encode(session)
    cut = data.draw(st.integers(0, len(record) - 1), label="cut")
    with pytest.raises(codec.CodecError):
        codec.decode("sid", record[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    with pytest.raises(codec.CodecError):
        codec.decode("sid", record + extra)


@st.composite
def mutated_records(draw: st.DrawFn) -> bytes:
    record = bytearray(codec.encode(draw(sessions)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete"]))
        at = draw(st.integers(0, len(record) - 1))
        if kind == "flip":
            record[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            record[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            record[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif len(record) > 1:
            del record[at]
    return bytes(record)


@fuzz(400)
@given(mutated_records())
def test_mutated_records_decode_or_raise_codec_error(record: bytes) -> None:
    session = decodes_or_codec_error(record)
    if session is not None:  # what decodes is a whole record again
        assert codec.decode("sid", codec.encode(session)).steps == session.steps


# ---------------------------------------------------------------------- tokenizers

LIMITS = Settings(max_sequence_length=12)
# single characters, whitespace and astral characters included (no surrogates)
characters = st.characters(exclude_categories=["Cs"])
words = st.text(
    st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=1, max_size=5
).filter(lambda w: w.split() == [w])  # what str.split() keeps as one word
separators = st.text(st.sampled_from([" ", "\t", "\n", "\u3000", "\xa0"]), min_size=1, max_size=3)


@st.composite
def sides(draw: st.DrawFn, tokenizer: str, unk: bool = False) -> Side:
    element = characters if tokenizer == "char" else words
    vocabulary = draw(st.lists(element, min_size=1, max_size=12, unique=True))
    return Side(
        encoding=draw(st.sampled_from(["one_hot", "index"])),
        vocabulary=vocabulary,
        tokenizer=tokenizer,  # type: ignore[arg-type]
        unk_token=draw(st.sampled_from(vocabulary)) if unk else None,
    )


def field_error(exc: pytest.ExceptionInfo[InvalidInput], field: str, *parts: str) -> None:
    assert exc.value.field == field, exc.value.message
    for part in parts:
        assert part in exc.value.message, exc.value.message


@fuzz(200)
@given(st.sampled_from(["char", "whitespace"]).flatmap(sides), st.data())
def test_text_of_vocabulary_tokens_round_trips(side: Side, data: st.DataObject) -> None:
    assert side.vocabulary is not None
    tokens = data.draw(st.lists(st.sampled_from(side.vocabulary), min_size=1, max_size=12))
    if side.tokenizer == "char":
        text = "".join(tokens)
    else:
        seps = data.draw(st.lists(separators, min_size=len(tokens) + 1, max_size=len(tokens) + 1))
        text = seps[0] + "".join(t + s for t, s in zip(tokens, seps[1:], strict=True))
    ids = read_ids(side, text, "inputs[0]", "source", LIMITS)
    assert ids == [side.vocabulary.index(t) for t in tokens]
    assert to_tokens(side, ids) == tokens
    # the same tokens sent as a list, and as ids, give the same ids
    assert read_ids(side, tokens, "inputs[0]", "source", LIMITS) == ids
    assert read_ids(side, ids, "inputs[0]", "source", LIMITS) == ids


@fuzz(150)
@given(st.sampled_from(["char", "whitespace"]), st.data())
def test_to_text_drops_start_end_and_pad_only(tokenizer: str, data: st.DataObject) -> None:
    element = characters if tokenizer == "char" else words
    vocabulary = data.draw(st.lists(element, min_size=3, max_size=10, unique=True))
    start, end, pad = vocabulary[:3]
    manifest = Manifest.model_validate(
        {
            "kind": "seq2seq",
            "source": {"encoding": "one_hot", "cardinality": 4},
            "target": {
                "encoding": "one_hot",
                "vocabulary": vocabulary,
                "tokenizer": tokenizer,
                "pad_token": pad,
            },
            "start_token": start,
            "end_token": data.draw(st.sampled_from([end, None])),
            "max_steps": 3,
        }
    )
    ids = data.draw(st.lists(st.integers(0, len(vocabulary) - 1), max_size=12))
    kept = [vocabulary[i] for i in ids if i not in (0, 2) and (i != 1 or manifest.end_id is None)]
    assert to_text(manifest, ids) == ("" if tokenizer == "char" else " ").join(kept)
    # text made of what to_text keeps reads back as the kept ids
    if kept:
        text = to_text(manifest, ids)
        assert text is not None
        back = read_ids(manifest.target, text, "inputs[0]", "target", Settings())
        assert back == [vocabulary.index(t) for t in kept]


@fuzz(200)
@given(st.sampled_from(["char", "whitespace"]).flatmap(sides), st.data())
def test_unknown_tokens_name_their_position(side: Side, data: st.DataObject) -> None:
    assert side.vocabulary is not None
    vocabulary = side.vocabulary
    known = data.draw(st.lists(st.sampled_from(vocabulary), max_size=6), label="known")
    element = characters if side.tokenizer == "char" else words
    unknown = data.draw(element.filter(lambda t: t not in vocabulary), label="unknown")
    tokens = [*known, unknown, *data.draw(st.lists(st.sampled_from(vocabulary), max_size=4))]
    text = ("" if side.tokenizer == "char" else " ").join(tokens)
    j = len(known)
    with pytest.raises(InvalidInput) as exc:
        read_ids(side, text, "inputs[3]", "source", LIMITS)
    what = "character" if side.tokenizer == "char" else "token"
    field_error(exc, f"inputs[3][{j}]", f"{what} ", f"at position {j}", "source vocabulary")
    with pytest.raises(InvalidInput) as exc:
        read_ids(side, tokens, "inputs[3]", "source", LIMITS)
    field_error(exc, f"inputs[3][{j}]", f"inputs[3][{j}]: token", "not in the source vocabulary")
    # with an unk_token the same tokens are accepted, the unknown one as unk
    unk = data.draw(st.sampled_from(vocabulary), label="unk")
    with_unk = side.model_copy(update={"unk_token": unk})
    ids = read_ids(with_unk, text, "inputs[3]", "source", LIMITS)
    assert ids[j] == vocabulary.index(unk)
    assert ids[:j] == [vocabulary.index(t) for t in known]


@fuzz(150)
@given(st.data())
def test_out_of_range_ids_and_strings_without_vocabulary_are_invalid(
    data: st.DataObject,
) -> None:
    size = data.draw(st.integers(1, 60), label="cardinality")
    side = Side(encoding="one_hot", cardinality=size)
    good = data.draw(st.lists(st.integers(0, size - 1), max_size=5), label="good")
    bad: int | str = data.draw(
        st.integers(max_value=-1) | st.integers(min_value=size) | st.text(max_size=5), label="bad"
    )
    tokens = [*good, bad]
    with pytest.raises(InvalidInput) as exc:
        to_ids(side, tokens, "inputs[0]")
    j = len(good)
    if isinstance(bad, str):
        field_error(exc, f"inputs[0][{j}]", "is a string but the model has no vocabulary")
    else:
        field_error(exc, f"inputs[0][{j}]", "out of range", f"integers 0..{size - 1}")
        assert len(exc.value.message) < 400  # a 1000-digit id is not echoed in full
    with pytest.raises(InvalidInput) as exc:
        read_ids(side, "text", "inputs[0]", "source", LIMITS)
    field_error(exc, "inputs[0]", "text is accepted only where")


# lists from 1 token: the wire schema refuses empty lists before read_ids sees them
tokens_in = st.text(max_size=20) | st.lists(
    st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=3), min_size=1, max_size=20
)


@fuzz(300)
@given(
    st.sampled_from(["char", "whitespace"]).flatmap(
        lambda t: st.booleans().flatmap(lambda unk: sides(t, unk))
    ),
    tokens_in,
)
def test_any_tokens_give_ids_in_range_or_invalid_input(side: Side, value: Any) -> None:
    try:
        ids = read_ids(side, value, "inputs[0]", "source", LIMITS)
    except InvalidInput as exc:
        assert exc.field is not None and exc.field.startswith("inputs[0]")
        return
    assert 1 <= len(ids) <= LIMITS.max_sequence_length
    assert all(0 <= i < side.size for i in ids)
    if side.unk_token is None and isinstance(value, str):
        assert to_tokens(side, ids) == (list(value) if side.tokenizer == "char" else value.split())


@fuzz(150)
@given(st.data())
def test_source_ids_pad_to_the_length_or_refuse(data: st.DataObject) -> None:
    vocabulary = data.draw(st.lists(characters, min_size=2, max_size=8, unique=True))
    length = data.draw(st.integers(1, 8), label="length")
    pad = data.draw(st.sampled_from(vocabulary), label="pad")
    manifest = Manifest.model_validate(
        {
            "kind": "seq2seq",
            "source": {
                "encoding": "one_hot",
                "vocabulary": vocabulary,
                "tokenizer": "char",
                "pad_token": pad,
                "length": length,
            },
            "target": {"encoding": "one_hot", "cardinality": 3},
            "start_token": 0,
        }
    )
    text = "".join(data.draw(st.lists(st.sampled_from(vocabulary), min_size=1, max_size=10)))
    try:
        ids = source_ids(manifest, text, "source", LIMITS)
    except InvalidInput as exc:
        assert len(text) > length and exc.field == "source"
        assert f"{len(text)} tokens" in exc.message and f"at most {length}" in exc.message
        return
    assert len(ids) == length
    assert ids[: len(text)] == [vocabulary.index(c) for c in text]
    assert ids[len(text) :] == [vocabulary.index(pad)] * (length - len(text))


@fuzz(100)
@given(st.data())
def test_sequence_length_limit_is_enforced_in_tokens(data: st.DataObject) -> None:
    side = data.draw(sides("whitespace"))
    assert side.vocabulary is not None
    limit = data.draw(st.integers(1, 6), label="limit")
    tokens = data.draw(st.lists(st.sampled_from(side.vocabulary), min_size=1, max_size=9))
    text = " ".join(tokens)  # counted in words, not characters
    limits = Settings(max_sequence_length=limit)
    if len(tokens) <= limit:
        assert len(read_ids(side, text, "inputs[0]", "source", limits)) == len(tokens)
    else:
        with pytest.raises(InvalidInput) as exc:
            read_ids(side, text, "inputs[0]", "source", limits)
        field_error(exc, "inputs[0]", f"{len(tokens)} tokens", "SERVICE_MAX_SEQUENCE_LENGTH")


# ---------------------------------------------------------------- client states

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=3)
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner)
)


def nested(shape: tuple[int, ...], leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    if not shape:
        return leaf
    return st.lists(nested(shape[1:], leaf), min_size=shape[0], max_size=shape[0])


numbers = st.integers(-(2**130), 2**130) | st.floats(allow_nan=True, allow_infinity=True)


@fuzz(300)
@given(st.data())
def test_client_states_are_finite_float32_of_the_model_shapes_or_invalid(
    data: st.DataObject,
) -> None:
    spec = fakes.model().spec  # state shapes (3,) and (2, 2)
    shaped = st.tuples(*(nested(s, numbers) for s in spec.state_shapes)).map(list)
    raw = data.draw(shaped | st.lists(json_values, max_size=3), label="state")
    try:
        states = parse_states(spec, raw)
    except InvalidInput as exc:
        assert exc.field is not None and exc.field.startswith("state")
        return
    assert [s.shape for s in states] == list(spec.state_shapes)
    for array in states:
        assert array.dtype == np.float32 and np.isfinite(array).all()
    flat = [x for tensor in raw for x in np.asarray(tensor, dtype=object).ravel()]
    assert all(not isinstance(x, bool) and abs(x) <= FLOAT32_MAX for x in flat)
    assert all(isinstance(x, int) or math.isfinite(x) for x in flat)


# ------------------------------------------------------------------------ decoders


class TableCompute(ReferenceCompute):
    """A random finite-state model with exact arithmetic: state h in 0..K-1 (kept as a
    float32), next h = T[h, token], probabilities P[next h] (a softmax row, distinct
    values so the argmax is unique); a step counter c as a second state. Encoding: h0 =
    (sum of source ids * (position + 1)) % K. Every row's result depends on that row only.
    """

    def __init__(self, spec: ModelSpec, seed: int, states: int):
        self.spec = spec
        rng = np.random.default_rng(seed)
        self.size = spec.manifest.output_cardinality
        self.K = states
        self.T = rng.integers(0, states, size=(states, spec.manifest.token_side.size))
        logits = np.stack([rng.permutation(self.size) for _ in range(states)]).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        self.P = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    def encode(self, sources: np.ndarray) -> States:
        weights = np.arange(1, sources.shape[1] + 1)
        h = (sources.astype(np.int64) @ weights) % self.K
        return [h[:, None].astype(np.float32), np.zeros((len(sources), 2), np.float32)]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        h, c = states
        nxt = self.T[h[:, 0].astype(np.int64), tokens.astype(np.int64)]
        return self.P[nxt].copy(), [nxt[:, None].astype(np.float32), c + 1.0]

    # the same model written out for one row, as a reference
    def reference_generate(self, token: int, h: int, c: float, limit: int) -> tuple[Any, ...]:
        end = self.spec.manifest.end_id
        outputs, probs = [], []
        for _ in range(limit):
            h = int(self.T[h, token])
            token = int(np.argmax(self.P[h]))
            outputs.append(token)
            probs.append(self.P[h].tolist())
            c += 1.0
            if token == end:
                break
        return outputs, probs, h, c

    def reference_decode(self, source: Sequence[int], limit: int) -> tuple[Any, ...]:
        h0 = sum(t * (i + 1) for i, t in enumerate(source)) % self.K
        start = self.spec.manifest.start_id
        assert start is not None
        return self.reference_generate(start, h0, 0.0, limit)


@st.composite
def table_models(draw: st.DrawFn, kind: str = "seq2seq") -> TableCompute:
    card = draw(st.integers(2, 9), label="cardinality")
    end = draw(st.none() | st.integers(0, card - 1), label="end")
    manifest = Manifest.model_validate(
        {
            "kind": kind,
            "input": {"encoding": "one_hot", "cardinality": card},
            "start_token": 0 if kind == "seq2seq" else None,
            "end_token": end,
            "max_steps": 3,
        }
    )
    spec = ModelSpec("table", 1, manifest, ((1,), (2,)))
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return TableCompute(spec, seed, draw(st.integers(1, 7), label="states"))


@st.composite
def decode_batches(draw: st.DrawFn) -> tuple[TableCompute, list[list[int]], list[int]]:
    compute = draw(table_models())
    card = compute.spec.manifest.source.size
    sources = draw(
        st.lists(st.lists(st.integers(0, card - 1), min_size=1, max_size=5), min_size=1, max_size=6)
    )
    limits = draw(st.lists(st.integers(1, 8), min_size=len(sources), max_size=len(sources)))
    return compute, sources, limits


@fuzz(200)
@given(decode_batches(), st.booleans())
def test_greedy_decode_matches_a_one_row_reference(
    batch: tuple[TableCompute, list[list[int]], list[int]], per_row: bool
) -> None:
    """Batched decoding of mixed lengths and per-row limits gives each row exactly what
    decoding it alone, step by step, gives: stopping at (and including) the end token,
    never beyond its limit, probabilities rows summing to 1 whose argmax is the output."""
    compute, sources, limits = batch
    max_steps: int | list[int] = limits if per_row else limits[0]
    outputs, probabilities = greedy_decode(compute, sources, max_steps, True)
    assert probabilities is not None
    end = compute.spec.manifest.end_id
    for i, source in enumerate(sources):
        limit = limits[i] if per_row else limits[0]
        want_out, want_probs, _, _ = compute.reference_decode(source, limit)
        assert outputs[i] == want_out
        assert probabilities[i] == want_probs  # exact: the same float32 values
        assert 1 <= len(outputs[i]) <= limit
        if end is not None:
            assert end not in outputs[i][:-1]
            assert len(outputs[i]) == limit or outputs[i][-1] == end
        else:
            assert len(outputs[i]) == limit
        for token, row in zip(outputs[i], probabilities[i], strict=True):
            assert len(row) == compute.size
            assert math.isclose(math.fsum(row), 1.0, abs_tol=1e-5)
            assert token == int(np.argmax(row))
    # without probabilities: the same outputs, no probabilities
    again, none = greedy_decode(compute, sources, max_steps, False)
    assert again == outputs and none is None
    # each row alone gives the same as in the batch
    for i, source in enumerate(sources):
        alone = greedy_decode(compute, [source], limits[i] if per_row else limits[0], False)
        assert alone[0] == [outputs[i]]


@fuzz(100)
@given(decode_batches())
def test_a_smaller_limit_gives_a_prefix(
    batch: tuple[TableCompute, list[list[int]], list[int]],
) -> None:
    compute, sources, limits = batch
    full, _ = greedy_decode(compute, sources, 8, False)
    cut, _ = greedy_decode(compute, sources, limits, False)
    for whole, part, limit in zip(full, cut, limits, strict=True):
        assert part == whole[:limit]


@fuzz(150)
@given(st.data())
def test_generate_keeps_each_rows_state_after_its_last_step(data: st.DataObject) -> None:
    compute = data.draw(table_models(kind="step"))
    card = compute.spec.manifest.source.size
    n = data.draw(st.integers(1, 5), label="rows")
    tokens = data.draw(st.lists(st.integers(0, card - 1), min_size=n, max_size=n))
    hs = data.draw(st.lists(st.integers(0, compute.K - 1), min_size=n, max_size=n))
    cs = data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    limits = data.draw(st.lists(st.integers(1, 8), min_size=n, max_size=n))
    states = [
        np.asarray(hs, np.float32)[:, None],
        np.repeat(np.asarray(cs, np.float32)[:, None], 2, axis=1),
    ]
    before = [s.copy() for s in states]
    run = generate(compute, np.asarray(tokens, np.int32), states, limits, True)
    assert all(np.array_equal(a, b) for a, b in zip(states, before, strict=True))  # not mutated
    assert run.probabilities is not None
    for i in range(n):
        want_out, want_probs, h, c = compute.reference_generate(
            tokens[i], hs[i], float(cs[i]), limits[i]
        )
        assert run.outputs[i] == want_out and run.probabilities[i] == want_probs
        assert run.states[0][i, 0] == h and list(run.states[1][i]) == [c, c]


@fuzz(150)
@given(st.data())
def test_run_steps_in_pieces_equal_one_run(data: st.DataObject) -> None:
    """Feeding sequences in any split, batched with others of other lengths, gives the
    outputs and final states of one run over the whole (sessions' stepping promise)."""
    compute = data.draw(table_models(kind="step"))
    card = compute.spec.manifest.source.size
    seqs = data.draw(
        st.lists(st.lists(st.integers(0, card - 1), min_size=2, max_size=8), min_size=1, max_size=5)
    )
    cuts = [data.draw(st.integers(1, len(s) - 1), label="cut") for s in seqs]
    zero = compute.spec.zero_states(len(seqs))
    whole = run_steps(compute, zero, seqs, True)
    heads = [s[:k] for s, k in zip(seqs, cuts, strict=True)]
    tails = [s[k:] for s, k in zip(seqs, cuts, strict=True)]
    first = run_steps(compute, zero, heads, True)
    second = run_steps(compute, first.states, tails, True)
    assert whole.probabilities is not None
    assert first.probabilities is not None and second.probabilities is not None
    for i in range(len(seqs)):
        assert first.outputs[i] + second.outputs[i] == whole.outputs[i]
        assert first.probabilities[i] + second.probabilities[i] == whole.probabilities[i]
        assert len(whole.outputs[i]) == len(seqs[i])
    for a, b in zip(second.states, whole.states, strict=True):
        assert np.array_equal(a, b)
    assert all(not s.any() for s in zero)  # the given states are not changed


@fuzz(100)
@given(decode_batches())
def test_teacher_forcing_the_greedy_outputs_reproduces_them(
    batch: tuple[TableCompute, list[list[int]], list[int]],
) -> None:
    """`run` fed [start, *outputs[:-1]] from the encoded source chooses the same outputs
    and ends in the state `decode` ended in: generate and run agree step for step."""
    compute, sources, limits = batch
    start = compute.spec.manifest.start_id
    assert start is not None
    for source, limit in zip(sources, limits, strict=True):
        src = np.asarray([source], np.int32)
        decoded = compute.decode(src, np.asarray([limit], np.int32), False)
        n = int(decoded.lengths[0])
        out = decoded.tokens[0, :n].tolist()
        fed = np.asarray([[start, *out[:-1]]], np.int32)
        forced = compute.run(fed, compute.encode(src), False)
        assert forced.tokens[0].tolist() == out
        for a, b in zip(forced.states, decoded.states, strict=True):
            assert np.array_equal(a, b)


@fuzz(100)
@given(
    st.lists(st.lists(st.integers(0, 7), min_size=1, max_size=4), min_size=1, max_size=6),
    st.integers(1, 6),
    st.none() | st.integers(0, 7),
)
def test_fake_counter_model_batches_like_single_rows(
    sources: list[list[int]], steps: int, end: int | None
) -> None:
    """tests/fakes.py's CounterCompute (what the HTTP unit tests run on) through the same
    loop: batch == rows alone, limits and end token respected."""
    compute = fakes.model(end_token=end).compute
    outputs, probs = greedy_decode(compute, sources, steps, True)
    assert probs is not None
    for i, source in enumerate(sources):
        alone, alone_probs = greedy_decode(compute, [source], steps, True)
        assert alone == [outputs[i]] and alone_probs == [probs[i]]
        assert 1 <= len(outputs[i]) <= steps and len(probs[i]) == len(outputs[i])
        assert end is None or end not in outputs[i][:-1]
