"""`python -m service check DIR`: a version directory checked as the server would load
it, without serving it: manifest, files, roles, and one sample decode."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import InvalidInput
from service.inference.model.manifest import Manifest, ManifestError
from service.inference.model.manifest_parts import Side


def _side(name: str, side: Side) -> str:
    parts = [f"{side.encoding}, {side.size} tokens"]
    if side.tokenizer:
        parts.append(f"tokenizer {side.tokenizer}")
    if side.length is not None:
        parts.append(f"length {side.length} padded with {side.pad_token!r}")
    if side.unk_token is not None:
        parts.append(f"unknown -> {side.unk_token!r}")
    line = f"{name}: {', '.join(parts)}"
    if side.vocabulary:
        shown = ", ".join(repr(t) for t in side.vocabulary[:24])
        more = f", ... ({len(side.vocabulary)} in all)" if len(side.vocabulary) > 24 else ""
        line += f"\n  vocabulary: {shown}{more}"
    return line


def _sample_source(manifest: Manifest) -> tuple[list[int], str | None]:
    """The manifest's `example`, else a few source tokens: vocabulary letters or words
    when there is text."""
    side = manifest.source
    if isinstance(manifest.example, str):
        from service.config import Settings
        from service.dataplane.tokens import read_ids

        return read_ids(side, manifest.example, "example", "source", Settings()), manifest.example
    if manifest.example is not None:
        return list(manifest.example), None
    skip = {side.id_of(t) for t in (side.pad_token, side.unk_token) if t is not None}
    ids = [i for i in range(side.size) if i not in skip][1:6] or [0]
    if side.vocabulary is None or side.tokenizer is None:
        return ids, None
    joiner = "" if side.tokenizer == "char" else " "
    return ids, joiner.join(side.vocabulary[i] for i in ids)


def check(directory: Path, trust_code: bool | None = None) -> int:
    """`trust_code`: import the manifest's code files (None: as SERVICE_TRUST_MODEL_CODE
    says)."""
    from service.config import Settings
    from service.dataplane.tokens import source_ids, to_text, to_tokens
    from service.inference.compiled import model_code
    from service.inference.compiled.loader import load_model
    from service.inference.model.registry import version_number
    from service.inference.model.store import check_version

    model_code.configure(Settings().trust_model_code if trust_code is None else trust_code)
    try:
        manifest, files = check_version(directory)
        loaded = load_model(
            directory,
            directory.parent.name,
            version_number(directory.name) or 0,
            manifest,
            files,
        )
    except ManifestError as exc:
        print(f"cannot serve {directory}: {exc}", file=sys.stderr)
        return 2
    spec = loaded.spec
    print(f"{directory}: servable")
    print(
        f"kind: {manifest.kind}; files: " + ", ".join(f"{f.path.name} ({f.format})" for f in files)
    )
    layout: Any = getattr(loaded.compute, "layout", None)
    if layout is not None:
        print(f"roles: {_roles(layout)}")
    print(f"states: {[list(s) for s in spec.state_shapes]}")
    if spec.memory_shape is not None:
        print(f"memory (attention): {list(spec.memory_shape)} per session")
    print(_side("source", manifest.source))
    print(_side("target", manifest.target))
    print(
        f"start: {manifest.start_id}, end: {manifest.end_id}, max_steps: {manifest.max_steps}, "
        f"decoder output: {manifest.decoder_output}"
    )
    print(_decoder_kind(loaded.compute, manifest.decoder_kind, spec.window))
    try:
        ids, text = _sample_source(manifest)
    except InvalidInput as exc:
        print(f"cannot serve {directory}: {exc}", file=sys.stderr)
        return 2
    if manifest.kind == "seq2seq":
        source = source_ids(manifest, ids, "source", Settings())
        decoded = loaded.compute.decode(
            np.asarray([source], np.int32), np.asarray([manifest.max_steps], np.int32), False
        )
        out = decoded.tokens[0, : decoded.lengths[0]].tolist()
    else:
        zeros = spec.zero_states(1)
        out = loaded.compute.run(np.asarray([ids], np.int32), zeros, False).tokens[0].tolist()
    shown_in = repr(text) if text is not None else to_tokens(manifest.source, ids)
    answer = to_text(manifest, out) if text is not None else None
    shown_out = repr(answer) if answer is not None else to_tokens(manifest.target, out)
    note = (
        "" if manifest.example is not None else " (no `example` in model.json: vocabulary tokens)"
    )
    print(f"sample: {shown_in} -> {shown_out}{note}")
    return 0


def _decoder_kind(compute: Any, kind: str, window: int | None) -> str:
    if kind != "transformer":
        return "decoder: recurrent (states carried step to step)"
    used, why_not = compute.kv_cache()
    cache = "used" if used else f"not used, prefix mode: {why_not}"
    return f"decoder: transformer, window {window} target positions; key/value cache: {cache}"


def _roles(layout: Any) -> str:
    parts = []
    if layout.encoder_states or layout.encoder_memory is not None:
        enc = {i: "state" for i in layout.encoder_states}
        if layout.encoder_memory is not None:
            enc[layout.encoder_memory] = "memory"
        parts.append(f"encoder outputs {[enc.get(i, 'ignore') for i in range(max(enc) + 1)]}")
    dec = {layout.decoder_token: "token", **{i: "state" for i in layout.decoder_states}}
    if layout.decoder_memory is not None:
        dec[layout.decoder_memory] = "memory"
    parts.append(f"decoder inputs {[dec[i] for i in sorted(dec)]}")
    out = {layout.decoder_probabilities: "probabilities"}
    out.update({i: "state" for i in layout.decoder_state_outputs})
    parts.append(f"decoder outputs {[out.get(i, 'ignore') for i in range(max(out) + 1)]}")
    return "; ".join(parts)
