"""Which tensor is which in a Transformer decoder (manifest `decoder_kind: transformer`):
the target tokens so far `(batch, t)`, the encoder's output `(batch, source_len, d)` in
either order, and per-position probabilities `(batch, t, vocab)`.

Such a decoder has no recurrent state: the service carries the tokens so far as one
state of `window` values (the decoder always reads the whole window, padded with id 0
after the prefix, as keras-io's loop does; causal attention keeps later positions out
of earlier ones) and the position as another; the memory carries one more channel, the
source mask (1 where the source token is not padding), which the compiled step hands
the decoder back as the memory's Keras mask."""

from __future__ import annotations

from collections.abc import Sequence

from service.inference.model.described import Described, Shape
from service.inference.model.layout import Layout, Mismatch, _given
from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import Roles


def transformer_layout(
    roles: Roles,
    manifest: Manifest,
    dec_in: Sequence[Described],
    dec_out: Sequence[Described],
    enc_out: Sequence[Described],
) -> Layout:
    enc_roles = _given(roles.encoder_outputs, enc_out, "encoder_outputs")
    if enc_roles is None:
        enc_roles = ["memory" if len(t.shape) == 3 else "ignore" for t in enc_out]
    if enc_roles.count("memory") != 1:
        raise ValueError(f"{enc_roles.count('memory')} encoder outputs could be the memory")
    memory_at = enc_roles.index("memory")
    memory = enc_out[memory_at].shape
    if len(memory) != 3 or memory[2] is None:
        raise Mismatch(f"the encoder's memory has shape {list(memory)}; expected (batch, time, d)")
    in_roles = _given(roles.decoder_inputs, dec_in, "decoder_inputs")
    if in_roles is None:
        in_roles = ["memory" if len(t.shape) == 3 else "token" for t in dec_in]
    if sorted(in_roles) != ["memory", "token"]:
        raise ValueError(
            "a Transformer decoder takes two inputs, the target tokens (batch, time) and the "
            f"encoder's output (batch, time, d); this one's would be {in_roles}"
        )
    token, mem = dec_in[in_roles.index("token")], dec_in[in_roles.index("memory")]
    if len(token.shape) != 2:
        raise Mismatch(
            f"decoder input {token.name} {list(token.shape)}: expected (batch, time) ids"
        )
    if mem.shape[2] not in (None, memory[2]):
        raise Mismatch(
            f"decoder input {mem.name} {list(mem.shape)} does not take the encoder's memory "
            f"{list(memory)}"
        )
    out_roles = _given(roles.decoder_outputs, dec_out, "decoder_outputs")
    card = manifest.output_cardinality
    if out_roles is None:
        out_roles = [
            "probabilities" if len(t.shape) == 3 and t.shape[2] == card else "ignore"
            for t in dec_out
        ]
    if out_roles.count("probabilities") != 1:
        raise ValueError(f"{out_roles.count('probabilities')} outputs could be the probabilities")
    probs = dec_out[out_roles.index("probabilities")]
    if len(probs.shape) != 3 or probs.shape[2] != card:
        raise Mismatch(
            f"decoder output {probs.name} {list(probs.shape)}: expected (batch, time, {card}) "
            "per-position probabilities (output_cardinality)"
        )
    window = _window(manifest, token.shape)
    source_len = memory[1] if memory[1] is not None else manifest.source.length
    memory_shape: Shape = (source_len, int(memory[2]) + 1)
    return Layout(
        decoder_token=in_roles.index("token"),
        decoder_states=(),
        decoder_probabilities=out_roles.index("probabilities"),
        decoder_state_outputs=(),
        decoder_memory=in_roles.index("memory"),
        encoder_memory=memory_at,
        state_shapes=((window,), (1,)),
        memory_shape=memory_shape,
        decoder_kind="transformer",
        window=window,
    )


def _window(manifest: Manifest, tokens: Shape) -> int:
    """The positions the decoder reads each step: its fixed input length, or max_steps."""
    fixed = tokens[1]
    if fixed is None:
        return manifest.max_steps
    if manifest.max_steps > fixed:
        raise Mismatch(
            f"max_steps ({manifest.max_steps}) exceeds the decoder's fixed input length "
            f"({fixed}): lower max_steps to at most {fixed}"
        )
    return int(fixed)
