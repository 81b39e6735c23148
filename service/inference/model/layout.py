"""Which model tensor is which: the token, the attention memory, the recurrent states,
the probabilities. Inferred from shapes where unambiguous, else named by the manifest's
`roles`. No TensorFlow: works on tensor descriptions (name, shape, dtype)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.inference.model.described import (
    Described,
    Shape,
    advice,
    check_source,
    expected,
    is_token,
)
from service.inference.model.manifest import Manifest, ManifestError
from service.inference.model.manifest_parts import Roles


@dataclass(frozen=True)
class Layout:
    """Positions of each role in the models' own input and output lists."""

    decoder_token: int
    decoder_states: tuple[int, ...]  # decoder inputs, in state order
    decoder_probabilities: int
    decoder_state_outputs: tuple[int, ...]  # decoder outputs, in the same state order
    encoder_states: tuple[int, ...] = ()  # encoder outputs, in the same state order
    decoder_memory: int | None = None
    encoder_memory: int | None = None
    state_shapes: tuple[tuple[int, ...], ...] = ()  # per sample
    memory_shape: Shape | None = None  # per sample: (time, units), time may be None
    # a Transformer decoder (model/transformer_layout.py): the target tokens so far are
    # its state (window, and the position), the memory carries the source mask
    decoder_kind: str = "recurrent"
    window: int | None = None


class Mismatch(ValueError):
    """The model and the manifest disagree (roles would not help)."""


def _given(
    roles: Sequence[str] | Mapping[str, str] | None, tensors: Sequence[Described], what: str
) -> list[str] | None:
    if roles is None:
        return None
    if isinstance(roles, Mapping):
        names = [t.name for t in tensors]
        if sorted(roles) != sorted(names):
            raise ValueError(f"roles.{what} names {sorted(roles)}, the model's are {names}")
        return [roles[n] for n in names]
    if len(roles) != len(tensors):
        raise ValueError(f"roles.{what} lists {len(roles)} roles for {len(tensors)} tensors")
    return list(roles)


def _compatible(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def _decoder_inputs(
    inputs: Sequence[Described], manifest: Manifest, memory: Shape | None
) -> list[str]:
    side = manifest.token_side
    tokens = [i for i, t in enumerate(inputs) if is_token(t, side.encoding, side.size)]
    memories = [
        i
        for i, t in enumerate(inputs)
        if memory is not None and len(t.shape) == 3 and _compatible(t.shape[1:], memory)
    ]
    if len(tokens) > 1 and memories:  # a one-hot token and a memory both fit one input
        tokens = [i for i in tokens if i not in memories] or tokens
    if len(tokens) != 1:
        raise ValueError(f"{len(tokens)} inputs could be the token")
    memories = [i for i in memories if i != tokens[0]]
    if len(memories) != (memory is not None):
        raise ValueError(f"{len(memories)} inputs could be the encoder's memory")
    return [
        "token" if i in tokens else "memory" if i in memories else "state"
        for i in range(len(inputs))
    ]


def _decoder_outputs(
    outputs: Sequence[Described], manifest: Manifest, states: Sequence[Shape]
) -> list[str]:
    card = manifest.output_cardinality
    if len(outputs) == len(states) + 1 and all(
        tuple(t.shape[1:]) == shape for t, shape in zip(outputs[1:], states, strict=True)
    ):
        return ["probabilities", *["state"] * len(states)]  # the default layout
    probs = [
        i
        for i, t in enumerate(outputs)
        if len(t.shape) in (2, 3) and t.shape[-1] == card and tuple(t.shape[1:]) not in states
    ]
    if len(probs) != 1:
        raise ValueError(f"{len(probs)} outputs could be the probabilities")
    roles = ["probabilities" if i == probs[0] else "ignore" for i in range(len(outputs))]
    matched = [i for i, t in enumerate(outputs) if tuple(t.shape[1:]) in states and i != probs[0]]
    if len(matched) != len(states):
        raise ValueError(
            f"{len(matched)} outputs have state shapes, the decoder takes {len(states)}"
        )
    for i in matched:
        roles[i] = "state"
    return roles


def _encoder_outputs(outputs: Sequence[Described], uses_memory: bool) -> list[str]:
    sequences = [i for i, t in enumerate(outputs) if len(t.shape) == 3]
    if uses_memory and len(sequences) != 1:
        raise ValueError(f"{len(sequences)} encoder outputs could be the memory")
    return ["memory" if uses_memory and i in sequences else "state" for i in range(len(outputs))]


def _per_sample(shape: Shape, what: str) -> tuple[int, ...]:
    if any(d is None for d in shape[1:]):
        raise ValueError(f"{what} has shape {list(shape)}; a state must be fully defined")
    return tuple(int(d) for d in shape[1:] if d is not None)


def infer_layout(
    manifest: Manifest,
    decoder_inputs: Sequence[Described],
    decoder_outputs: Sequence[Described],
    encoder_outputs: Sequence[Described] = (),
    encoder_inputs: Sequence[Described] = (),
) -> Layout:
    """Roles of every tensor; raises ManifestError saying what to write in `roles`."""
    roles = manifest.roles or Roles()
    if manifest.kind == "seq2seq":
        check_source(manifest, encoder_inputs)
    try:
        if manifest.decoder_kind == "transformer":
            from service.inference.model.transformer_layout import transformer_layout

            return transformer_layout(
                roles, manifest, decoder_inputs, decoder_outputs, encoder_outputs
            )
        return _layout(roles, manifest, decoder_inputs, decoder_outputs, encoder_outputs)
    except Mismatch as exc:
        raise ManifestError(str(exc)) from None
    except ValueError as exc:
        raise ManifestError(
            advice(str(exc), manifest, decoder_inputs, decoder_outputs, encoder_outputs)
        ) from None


def _layout(
    roles: Roles,
    manifest: Manifest,
    dec_in: Sequence[Described],
    dec_out: Sequence[Described],
    enc_out: Sequence[Described],
) -> Layout:
    seq2seq = manifest.kind == "seq2seq"
    enc_roles: list[str] | None = (
        _given(roles.encoder_outputs, enc_out, "encoder_outputs") if seq2seq else []
    )
    in_roles: list[str] | None = _given(roles.decoder_inputs, dec_in, "decoder_inputs")
    if enc_roles is None:
        if in_roles is not None:
            uses_memory = "memory" in in_roles
        else:  # an encoder returning one sequence (rank 3) besides its states
            uses_memory = sum(len(t.shape) == 3 for t in enc_out) == 1
        enc_roles = _encoder_outputs(enc_out, uses_memory)
    memory_at = [i for i, r in enumerate(enc_roles) if r == "memory"]
    if len(memory_at) > 1:
        raise ValueError("more than one encoder output is the memory")
    memory = enc_out[memory_at[0]].shape[1:] if memory_at else None
    if in_roles is None:
        in_roles = _decoder_inputs(dec_in, manifest, memory)
    if in_roles.count("token") != 1:
        raise ValueError("the decoder needs exactly one token input")
    token = dec_in[in_roles.index("token")]
    side = manifest.token_side
    if not is_token(token, side.encoding, side.size):
        raise Mismatch(
            f"token input {token.name} {list(token.shape)} does not fit the manifest (expected "
            f"{expected(side.encoding, side.size)} with one or open time steps)"
        )
    if in_roles.count("memory") != (memory is not None):
        raise ValueError("the encoder's memory and the decoder's memory input must go together")
    state_in = tuple(i for i, r in enumerate(in_roles) if r == "state")
    state_shapes = tuple(
        _per_sample(dec_in[i].shape, f"decoder input {dec_in[i].name}") for i in state_in
    )
    if not state_in:
        raise ValueError("the decoder takes no state")
    out_roles: list[str] | None = _given(roles.decoder_outputs, dec_out, "decoder_outputs")
    if out_roles is None:
        out_roles = _decoder_outputs(dec_out, manifest, state_shapes)
    state_out = tuple(i for i, r in enumerate(out_roles) if r == "state")
    if out_roles.count("probabilities") != 1 or len(state_out) != len(state_in):
        raise ValueError(
            f"the decoder must return one probabilities output and {len(state_in)} states"
        )
    for k, (i, o) in enumerate(zip(state_in, state_out, strict=True)):
        if tuple(dec_out[o].shape[1:]) != state_shapes[k]:
            raise Mismatch(
                f"state {k}: decoder input {dec_in[i].name} {list(dec_in[i].shape)} but output "
                f"{dec_out[o].name} {list(dec_out[o].shape)}"
            )
    probs = dec_out[out_roles.index("probabilities")]
    if probs.shape[-1] != manifest.output_cardinality:
        raise Mismatch(
            f"the decoder outputs {probs.shape[-1]} probabilities, the manifest's "
            f"output_cardinality is {manifest.output_cardinality}"
        )
    enc_states = tuple(i for i, r in enumerate(enc_roles) if r == "state")
    if seq2seq:
        enc_shapes = [tuple(enc_out[i].shape[1:]) for i in enc_states]
        if enc_shapes != list(state_shapes):
            raise Mismatch(
                f"the encoder returns states of shapes {[list(s) for s in enc_shapes]}, the "
                f"decoder takes {[list(s) for s in state_shapes]}"
            )
    return Layout(
        decoder_token=in_roles.index("token"),
        decoder_states=state_in,
        decoder_probabilities=out_roles.index("probabilities"),
        decoder_state_outputs=state_out,
        encoder_states=enc_states,
        decoder_memory=in_roles.index("memory") if memory is not None else None,
        encoder_memory=memory_at[0] if memory_at else None,
        state_shapes=state_shapes,
        memory_shape=tuple(memory) if memory is not None else None,
    )
