"""The manifest's parts (`model.json`, manifest.py): a side's tokens (`source`,
`target`), the tensors' roles (`roles`), and the one-sided form's `input`."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EncoderRole = Literal["memory", "state", "ignore"]
DecoderInputRole = Literal["token", "memory", "state"]
DecoderOutputRole = Literal["probabilities", "state", "ignore"]


class Side(BaseModel):
    """One side's tokens: how they are encoded for the model, and optionally as text."""

    model_config = ConfigDict(extra="forbid")

    encoding: Literal["one_hot", "index"]
    cardinality: int | None = Field(default=None, ge=1, description="number of token ids")
    vocabulary: list[str] | None = Field(default=None, description="token string per id")
    tokenizer: Literal["char", "whitespace"] | None = None
    unk_token: str | None = Field(default=None, description="unknown tokens map to it")
    pad_token: str | None = Field(default=None, description="source only: pads to `length`")
    length: int | None = Field(default=None, ge=1, description="source only: fixed length")

    @model_validator(mode="after")
    def _consistent(self) -> Side:
        vocabulary = self.vocabulary
        if vocabulary is not None:
            if self.cardinality is None:
                self.cardinality = len(vocabulary)
            elif self.cardinality != len(vocabulary):
                raise ValueError(
                    f"vocabulary has {len(vocabulary)} entries, cardinality is {self.cardinality}"
                )
            if len(set(vocabulary)) != len(vocabulary):
                raise ValueError("vocabulary entries must be unique")
        elif self.cardinality is None:
            raise ValueError("give cardinality, vocabulary or both")
        for field in ("tokenizer", "unk_token", "pad_token"):
            if getattr(self, field) is not None and vocabulary is None:
                raise ValueError(f"{field} needs a vocabulary")
        for field in ("unk_token", "pad_token"):
            token = getattr(self, field)
            if token is not None and vocabulary is not None and token not in vocabulary:
                raise ValueError(f"{field} {token!r} is not in the vocabulary")
        if self.length is not None and self.pad_token is None:
            raise ValueError("length needs a pad_token (shorter sources are padded with it)")
        return self

    @property
    def speaks_text(self) -> bool:
        """Text is read (split by the tokenizer) and written (joined) on this side: the
        one rule for every protocol. A tokenizer needs a vocabulary (checked above)."""
        return self.tokenizer is not None

    @property
    def size(self) -> int:
        assert self.cardinality is not None  # set by the validator
        return self.cardinality

    @cached_property
    def token_index(self) -> dict[str, int] | None:
        """Vocabulary token -> id, built once (None without a vocabulary)."""
        if self.vocabulary is None:
            return None
        return {token: i for i, token in enumerate(self.vocabulary)}

    def id_of(self, token: str) -> int | None:
        index = self.token_index
        return None if index is None else index.get(token)


class Roles(BaseModel):
    """What each model tensor is, for models whose order differs from the default
    (encoder `[memory?, *states]`, decoder `[token, memory?, *states] ->
    [probabilities, *states]`). A list names them by position; an object by tensor
    name (Keras input/output names, or SavedModel signature keys)."""

    model_config = ConfigDict(extra="forbid")

    encoder_outputs: list[EncoderRole] | dict[str, EncoderRole] | None = None
    decoder_inputs: list[DecoderInputRole] | dict[str, DecoderInputRole] | None = None
    decoder_outputs: list[DecoderOutputRole] | dict[str, DecoderOutputRole] | None = None


class InputEncoding(BaseModel):
    """The one-sided form's `input` (kept valid)."""

    model_config = ConfigDict(extra="forbid")

    encoding: Literal["one_hot", "index"]
    cardinality: int = Field(ge=1, description="number of distinct input tokens")
