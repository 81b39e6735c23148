"""Small numpy models for unit tests: no TensorFlow anywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.inference.model.interface import LoadedModel, ModelSpec, States
from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import InputEncoding
from service.inference.model.registry import Registry
from service.inference.reference.compute import ReferenceCompute

VOCAB = ["<s>", "a", "b", "c", "d", "e", "f", "</s>"]


class CounterCompute(ReferenceCompute):
    """Output token = (input token + 1 + offset) % V, where offset = round(h[0]).

    The encoder puts sum(source) % V into h, so sources steer the decode; c counts
    steps, so every step visibly changes the state. State shapes: (3,) and (2, 2).
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.card = spec.manifest.output_cardinality
        self.calls = 0

    def encode(self, sources: np.ndarray) -> States:
        total = (sources.sum(axis=1) % self.card).astype(np.float32)
        h = np.repeat(total[:, None], 3, axis=1)
        states = [h, np.zeros((len(sources), 2, 2), np.float32)]
        if self.spec.memory_shape is not None:  # the source ids, twice, as a (time, 2) memory
            states.append(np.repeat(sources[:, :, None], 2, axis=2).astype(np.float32))
        return states

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        self.calls += 1
        h, c, *memory = states
        offset = np.rint(h[:, 0]).astype(np.int64)
        chosen = (tokens.astype(np.int64) + 1 + offset) % self.card
        probs = np.full((len(tokens), self.card), 0.01, np.float32)
        probs[np.arange(len(tokens)), chosen] = 0.9
        return probs, [h.copy(), c + 1.0, *memory]


def manifest(
    kind: str = "seq2seq",
    vocabulary: bool = False,
    end_token: int | None = None,
    cardinality: int = 8,
) -> Manifest:
    return Manifest(
        kind=kind,  # type: ignore[arg-type]
        input=InputEncoding(encoding="one_hot", cardinality=cardinality),
        output_cardinality=cardinality,
        start_token=0 if kind == "seq2seq" else None,
        end_token=end_token,
        max_steps=3,
        vocabulary=VOCAB if vocabulary else None,
    )


def model(name: str = "counter", version: int = 1, **kwargs: object) -> LoadedModel:
    m = manifest(**kwargs)  # type: ignore[arg-type]
    spec = ModelSpec(name, version, m, ((3,), (2, 2)))
    return LoadedModel(spec, CounterCompute(spec))


SOURCE_CHARS = [" ", "a", "b", "c", "d", "e"]
TARGET_CHARS = ["\t", "\n", "x", "y", "z"]


def chars(name: str = "chars", memory: bool = False) -> LoadedModel:
    """keras-io's layout: characters in, other characters out, sources padded to 4."""
    m = Manifest.model_validate(
        {
            "kind": "seq2seq",
            "source": {
                "encoding": "one_hot",
                "vocabulary": SOURCE_CHARS,
                "tokenizer": "char",
                "pad_token": " ",
                "length": 4,
                "unk_token": "e" if name == "chars_unk" else None,
            },
            "target": {"encoding": "one_hot", "vocabulary": TARGET_CHARS, "tokenizer": "char"},
            "start_token": "\t",
            "end_token": "\n",
            "max_steps": 6,
        }
    )
    spec = ModelSpec(name, 1, m, ((3,), (2, 2)), (4, 2) if memory else None)
    return LoadedModel(spec, CounterCompute(spec))


def tagger() -> LoadedModel:
    """A step model whose outputs are not its inputs: words in, tags out."""
    m = Manifest.model_validate(
        {
            "kind": "step",
            "source": {
                "encoding": "index",
                "vocabulary": ["[UNK]", "the", "cat", "sat"],
                "tokenizer": "whitespace",
                "unk_token": "[UNK]",
            },
            "target": {
                "encoding": "one_hot",
                "vocabulary": ["DET", "NOUN", "VERB"],
                "tokenizer": "whitespace",
            },
        }
    )
    spec = ModelSpec("tagger", 1, m, ((3,), (2, 2)))
    return LoadedModel(spec, CounterCompute(spec))


def text_registry() -> Registry:
    return Registry(
        {
            "chars": {1: chars()},
            "chars_unk": {1: chars("chars_unk")},
            "attend": {1: chars("attend", memory=True)},
            "tagger": {1: tagger()},
        },
        default_model="chars",
    )


def registry() -> Registry:
    return Registry(
        {
            "counter": {1: model(version=1), 2: model(version=2)},
            "words": {1: model("words", vocabulary=True, end_token=7)},
            "stepper": {1: model("stepper", kind="step")},
        }
    )
