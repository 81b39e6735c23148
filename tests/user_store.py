"""The store of tests/user_models.py's models, written by a process of its own (started in
the background, tests/harness/early.py): `python -m tests.user_store OUT`.

OUT/store holds every model built with seed 7, `chars` once more as `.h5` files, and
`chars_imported`: keras-io's training model (keras-io saves only that one) split by
`service import`. OUT/import.json is what the import said; OUT/weights.txt a hash of every
built model's weights, which the tests compare with the same models built in their own
process (Keras's seeded initialisers give the same weights in any process).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tests import user_models
from tests.user_models import UserModel

ROOT = Path(__file__).resolve().parents[1]
SEED = 7


def built() -> dict[str, UserModel]:
    """Every user model, built with the seed (in any process, the same weights)."""
    import keras

    keras.utils.set_random_seed(SEED)
    return {model.name: model for model in (build() for build in user_models.ALL)}


def weights_hash(models: Iterable[UserModel]) -> str:
    digest = hashlib.sha256()
    for model in models:
        for weights in model.encoder.get_weights() + model.decoder.get_weights():
            digest.update(np.asarray(weights).tobytes())
    return digest.hexdigest()


def write(store: Path, name: str, model: UserModel, ext: str = "keras") -> None:
    directory = store / name / "1"
    directory.mkdir(parents=True)
    model.encoder.save(directory / f"encoder.{ext}")
    model.decoder.save(directory / f"decoder.{ext}")
    (directory / "model.json").write_text(json.dumps(model.manifest))


def import_chars(chars: UserModel, out: Path, store: Path) -> subprocess.CompletedProcess[str]:
    """`service import` of keras-io's training model, into store/chars_imported/1."""
    training = out / "s2s_model.keras"
    chars.training.save(training)
    vocab = out / "target.txt"
    vocab.write_text(
        "\n".join(t.replace("\t", "\\t").replace("\n", "\\n") for t in user_models.TARGET_CHARS)
        + "\n"
    )
    (out / "source.json").write_text(json.dumps(user_models.SOURCE_CHARS))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "import",
            str(training),
            "--out",
            str(store / "chars_imported" / "1"),
            "--source-vocab",
            str(out / "source.json"),
            "--target-vocab",
            str(vocab),
            "--tokenizer",
            "char",
            "--start",
            "\\t",
            "--end",
            "\\n",
            "--pad",
            " ",
            "--length",
            "8",
            "--max-steps",
            "7",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def main(out: Path) -> None:
    store = out / "store"
    models = built()
    for name, model in models.items():
        write(store, name, model)
    write(store, "chars_h5", models["chars"], "h5")
    done = import_chars(models["chars"], out, store)
    answer = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    (out / "import.json").write_text(json.dumps(answer))
    (out / "weights.txt").write_text(weights_hash(models.values()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
