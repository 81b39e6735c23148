"""`model.json`: the manifest every model version directory carries."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_FILE = "model.json"
FILES_BY_KIND: dict[str, tuple[str, ...]] = {
    "seq2seq": ("encoder.keras", "decoder.keras"),
    "step": ("step.keras",),
}


class ManifestError(Exception):
    """A model directory that cannot be served; the message names the directory."""


class InputEncoding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoding: Literal["one_hot", "index"]
    cardinality: int = Field(ge=1, description="number of distinct input tokens")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["seq2seq", "step"]
    description: str = ""
    input: InputEncoding
    output_cardinality: int = Field(ge=1)
    start_token: int | None = Field(
        default=None, ge=0, description="first decoder input; required for seq2seq"
    )
    end_token: int | None = Field(default=None, ge=0)
    max_steps: int = Field(default=1, ge=1, description="default number of decode steps")
    vocabulary: list[str] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        card = self.input.cardinality
        if self.output_cardinality > card:
            raise ValueError(
                f"output_cardinality ({self.output_cardinality}) exceeds input cardinality "
                f"({card}): chosen tokens are fed back as inputs"
            )
        if self.kind == "seq2seq" and self.start_token is None:
            raise ValueError("start_token is required for kind 'seq2seq'")
        for field in ("start_token", "end_token"):
            token = getattr(self, field)
            if token is not None and token >= card:
                raise ValueError(f"{field} ({token}) must be in 0..{card - 1}")
        if self.vocabulary is not None:
            if len(self.vocabulary) != card:
                raise ValueError(
                    f"vocabulary has {len(self.vocabulary)} entries, input cardinality is {card}"
                )
            if len(set(self.vocabulary)) != len(self.vocabulary):
                raise ValueError("vocabulary entries must be unique")
        return self

    @cached_property
    def token_index(self) -> dict[str, int] | None:
        """Vocabulary token -> id, built once per manifest (None without a vocabulary)."""
        if not self.vocabulary:
            return None
        return {token: i for i, token in enumerate(self.vocabulary)}

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
