"""`model.json`: the manifest every model version directory carries.

Two sides: `source` (what the encoder, or a step model, reads) and `target` (what the
decoder reads and writes). The original one-sided form (`input`, `output_cardinality`,
`vocabulary`) stays valid and means source == target.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.inference.model.manifest_parts import InputEncoding, Roles, Side

MANIFEST_FILE = "model.json"
CODE_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")
STEMS_BY_KIND: dict[str, tuple[str, ...]] = {
    "seq2seq": ("encoder", "decoder"),
    "step": ("step",),
}


class ManifestError(Exception):
    """A model directory that cannot be served; the message names the directory."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["seq2seq", "step"]
    description: str = ""
    source: Side
    target: Side
    output_cardinality: int = Field(
        default=0, ge=0, description="decoder output width; default: target cardinality"
    )
    start_token: int | str | None = Field(
        default=None, description="first decoder input (an id or a target token); seq2seq"
    )
    end_token: int | str | None = None
    max_steps: int = Field(default=1, ge=1, description="default number of decode steps")
    decoder_output: Literal["probabilities", "logits"] = "probabilities"
    decoder_kind: Literal["recurrent", "transformer"] = Field(
        default="recurrent",
        description="recurrent: the decoder carries states; transformer: it reads the target "
        "tokens so far and the encoder's output, and max_steps is its window",
    )
    code: list[str] = Field(
        default_factory=list,
        description="Python files of the version directory registering custom layers, "
        "imported before loading (only with SERVICE_TRUST_MODEL_CODE=true)",
    )
    roles: Roles | None = None
    example: str | list[int] | None = Field(
        default=None,
        description="a source `python -m service check` decodes to show the model at work: "
        "text where the source side has a tokenizer, else source ids",
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_sided(cls, data: Any) -> Any:
        """`input` + `vocabulary` (+ `output_cardinality`) -> the same source and target."""
        if not isinstance(data, dict) or "input" not in data:
            return data
        if "source" in data or "target" in data:
            raise ValueError("give either 'input' (one side) or 'source' and 'target', not both")
        data = dict(data)
        try:
            side = InputEncoding.model_validate(data.pop("input")).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"input.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                if err["loc"]
                else f"input: {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(problems) from None
        vocabulary = data.pop("vocabulary", None)
        if vocabulary is not None:
            side["vocabulary"] = vocabulary
        data["source"] = data["target"] = side
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        target = self.target.size
        if self.output_cardinality == 0:
            self.output_cardinality = target
        elif self.output_cardinality > target:
            raise ValueError(
                f"output_cardinality ({self.output_cardinality}) exceeds the target cardinality "
                f"({target}): chosen tokens are fed back as inputs"
            )
        if self.kind == "seq2seq" and self.start_token is None:
            raise ValueError("start_token is required for kind 'seq2seq'")
        for field in ("start_token", "end_token"):
            self._token_id(field)
        if self.kind == "step" and (self.source.length is not None):
            raise ValueError("source.length is for seq2seq sources only")
        if self.target.length is not None:
            raise ValueError("target.length: only the source is padded to a length")
        for name in self.code:
            if not CODE_FILE.match(name):
                raise ValueError(
                    f"code: {name!r} is not a .py file name of the version directory "
                    "(letters, digits, '_', '-', '.'; no path)"
                )
        if self.decoder_kind == "transformer":
            self._transformer()
        self._example()
        return self

    def _example(self) -> None:
        if isinstance(self.example, str) and self.source.tokenizer is None:
            raise ValueError("example: text needs a source tokenizer; give source ids instead")
        if isinstance(self.example, list):
            bad = [i for i in self.example if not 0 <= i < self.source.size]
            if bad or not self.example:
                raise ValueError(
                    f"example: source ids must be in 0..{self.source.size - 1} (got {bad or []})"
                )

    def _transformer(self) -> None:
        if self.kind != "seq2seq":
            raise ValueError("decoder_kind 'transformer' is for kind 'seq2seq'")
        for side in ("source", "target"):
            if getattr(self, side).encoding != "index":
                raise ValueError(f"decoder_kind 'transformer': {side}.encoding must be 'index'")
        pad = self.source.pad_token
        if pad is not None and self.source.id_of(pad) != 0:
            raise ValueError(
                "decoder_kind 'transformer': source.pad_token must be the vocabulary's index 0 "
                "(these models mask id 0: mask_zero=True, or compute_mask as keras-io writes it)"
            )

    def _token_id(self, field: str) -> int | None:
        token: int | str | None = getattr(self, field)
        if token is None:
            return None
        if isinstance(token, str):
            found = self.target.id_of(token)
            if found is None:
                raise ValueError(f"{field} {token!r} is not in the target vocabulary")
            return found
        if not 0 <= token < self.target.size:
            raise ValueError(f"{field} ({token}) must be in 0..{self.target.size - 1}")
        return token

    @cached_property
    def start_id(self) -> int | None:
        return self._token_id("start_token")

    @cached_property
    def end_id(self) -> int | None:
        return self._token_id("end_token")

    @property
    def token_side(self) -> Side:
        """The side of the tokens the decoder (or step model) reads one step at a time."""
        return self.target if self.kind == "seq2seq" else self.source

    @property
    def feeds_back(self) -> bool:
        """Whether a chosen output can be fed back as the next input (session generate)."""
        if self.kind == "seq2seq":
            return True
        s, t = self.source, self.target
        return s.vocabulary == t.vocabulary and self.output_cardinality <= s.size

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(f"{directory}: missing {MANIFEST_FILE}") from None
        except OSError as exc:
            raise ManifestError(f"{directory}: cannot read {MANIFEST_FILE}: {exc}") from None
        try:
            return cls.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON: {exc}") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ManifestError(f"{path}: invalid manifest: {problems}") from None

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        text = self.model_dump_json(indent=2, exclude_none=True)
        (directory / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")
