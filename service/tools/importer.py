"""`python -m service import MODEL --out DIR`: a Keras training model split into the
encoder and decoder the server loads, the split checked against the training model, and
a version directory written and checked as served."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from service.digits import decimal
from service.inference.model.manifest import Manifest, ManifestError
from service.inference.model.manifest_parts import Side
from service.progress import Stages, bars
from service.tools.check import check

IMPORT_STAGES = 5  # load, split, check the split, save, check the version as served


def read_vocabulary(path: Path) -> list[str]:
    """A JSON list of tokens (`.json`), or one token per line where `\\t`, `\\n` and `\\\\`
    stand for a tab, a newline and a backslash (keras-io's targets start with "\\t")."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        tokens = json.loads(text)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}: expected a JSON list of strings")
        return tokens
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline
    return [_unescape(line.removesuffix("\r")) for line in lines]


def _unescape(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in "tn\\":
            out.append({"t": "\t", "n": "\n", "\\": "\\"}[line[i + 1]])
            i += 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def _token(value: str | None, vocabulary: list[str] | None) -> int | str | None:
    """A CLI token: a vocabulary string if it is one, else an integer id."""
    if value is None:
        return None
    if vocabulary is not None and _unescape(value) in vocabulary:
        return _unescape(value)
    number = decimal(value)
    if number is not None:
        return number
    raise ValueError(f"token {value!r} is neither in the vocabulary nor an integer id")


def _side_for(
    model_input: Any, vocabulary: list[str] | None, tokenizer: str | None
) -> dict[str, Any]:
    rank = len(model_input.shape)
    side: dict[str, Any] = {"encoding": "one_hot" if rank == 3 else "index"}
    if rank == 3:
        side["cardinality"] = int(model_input.shape[-1])
    if vocabulary is not None:
        side["vocabulary"] = vocabulary
        if tokenizer is not None:
            side["tokenizer"] = tokenizer
    return side


def import_model(args: Any) -> int:
    """Split a training model, check the split, write a version directory."""
    path, out = Path(args.training_model), Path(args.out)
    with bars() as progress:
        stages = Stages(progress, "import", IMPORT_STAGES)
        result = _import(args, path, out, stages)
        if result == 0:
            stages.done()
    return result


def _import(args: Any, path: Path, out: Path, stages: Stages) -> int:
    stages.start(f"loading {path.name}")  # TensorFlow's own import is most of this stage
    from service.inference.compiled import model_code
    from service.inference.model.formats.keras_file import load_h5, load_keras
    from service.tools.split import SplitError, split_training_model, teacher_forced_difference
    from service.tools.split_transformer import served_difference, split_transformer

    code = [Path(p) for p in (args.code or [])]
    try:
        # the operator names them: trusted for this import (the version directory lists them,
        # and a server imports them only with SERVICE_TRUST_MODEL_CODE=true)
        model_code.configure(True)
        for file in code:
            model_code.import_file(file)
        source_vocab = read_vocabulary(Path(args.source_vocab)) if args.source_vocab else None
        target_vocab = read_vocabulary(Path(args.target_vocab)) if args.target_vocab else None
        try:
            training = (load_h5 if path.suffix == ".h5" else load_keras)(path).model
        except Exception as exc:  # Keras raises many types for files it cannot read
            raise ValueError(f"cannot load it: {exc}") from None
        stages.start("splitting into encoder and decoder")
        transformer, why_not = False, ""
        try:
            encoder, decoder = split_training_model(training)
        except SplitError as recurrent:
            try:
                encoder, decoder = split_transformer(training)
            except SplitError as other:
                raise SplitError(f"{recurrent}; nor as a Transformer: {other}") from None
            transformer, why_not = True, str(recurrent)
        token_input = decoder.inputs[_token_input(decoder)] if transformer else decoder.inputs[0]
        source = _side_for(encoder.inputs[0], source_vocab, args.tokenizer)
        if args.pad is not None or args.length is not None:
            pad = " " if args.pad is None else _unescape(args.pad)
            source.update(pad_token=pad, length=args.length)
        target = _side_for(token_input, target_vocab, args.tokenizer)
        manifest = Manifest.model_validate(
            {
                "kind": "seq2seq",
                "description": args.description or f"imported from {path.name}",
                "source": source,
                "target": target,
                "output_cardinality": int(decoder.outputs[0].shape[-1]),
                "start_token": _token(args.start, target_vocab),
                "end_token": _token(args.end, target_vocab),
                "max_steps": args.max_steps,
                "example": _example(args.example, source),
                **({"decoder_kind": "transformer"} if transformer else {}),
                "code": [p.name for p in code],
            }
        )
    except (OSError, ValueError, SplitError, ManifestError) as exc:
        print(f"cannot import {path}: {exc}", file=sys.stderr)
        return 2
    stages.start("checking the split against the training model")
    if transformer:
        print(f"a Transformer (not a recurrent split: {why_not})")
        try:
            difference = served_difference(training, encoder, decoder, manifest)
        except ManifestError as exc:
            print(f"cannot import {path}: {exc}", file=sys.stderr)
            return 2
        print(
            f"split check: max |training - served, teacher-forced| = {difference:.3g} (limit 1e-5)"
        )
    else:
        difference = _check_split(training, encoder, decoder, manifest, teacher_forced_difference)
        print(f"split check: max |training - step-by-step| = {difference:.3g} (limit 1e-5)")
    if not difference <= 1e-5:
        print(
            f"cannot import {path}: the split does not reproduce the training model",
            file=sys.stderr,
        )
        return 1
    stages.start(f"saving {out}")
    out.mkdir(parents=True, exist_ok=True)
    encoder.save(out / "encoder.keras")
    decoder.save(out / "decoder.keras")
    manifest.write(out)
    for file in code:
        shutil.copy(file, out / file.name)
    print(
        f"wrote {out}/encoder.keras, decoder.keras, model.json"
        + "".join(f", {p.name}" for p in code)
    )
    stages.start(f"checking {out} as the server loads it")
    return check(out, trust_code=bool(code) or None)


def _example(given: str | None, source: dict[str, Any]) -> str | list[int] | None:
    """--example: text for a side with a tokenizer, else comma-separated ids."""
    if given is None or source.get("tokenizer"):
        return given
    try:
        return [int(i) for i in given.split(",")]
    except ValueError:
        raise ValueError(
            f"--example {given!r}: the source has no tokenizer, so give ids, e.g. 3,1,4"
        ) from None


def _token_input(decoder: Any) -> int:
    """A Transformer decoder's token input: the one of rank 2 (the other is the memory)."""
    return 0 if len(decoder.inputs[0].shape) == 2 else 1


def _check_split(training: Any, encoder: Any, decoder: Any, manifest: Manifest, diff: Any) -> float:
    """Teacher-forced outputs of the training model vs the split, on random tokens."""
    rng = np.random.default_rng(0)
    length = manifest.source.length or 12

    def tokens(side: Side, steps: int) -> np.ndarray:
        ids = rng.integers(0, side.size, size=(8, steps))
        if side.encoding == "one_hot":
            return np.eye(side.size, dtype=np.float32)[ids]
        return ids.astype(np.int32)

    return float(
        diff(
            training, encoder, decoder, tokens(manifest.source, length), tokens(manifest.target, 6)
        )
    )
