"""Loading real Keras files: what start-up accepts and what it refuses."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.inference.compiled.loader import load_store
from service.inference.model.manifest import ManifestError
from service.inference.serving.decoding import greedy_decode
from tests.floats import assert_close
from tests.harness import ROOT, STORE, zygote

pytestmark = pytest.mark.integration


def copy_reverse(tmp_path: Path) -> Path:
    version = tmp_path / "store" / "reverse" / "1"
    shutil.copytree(STORE / "reverse" / "1", version)
    return version


def edit_manifest(version: Path, **changes: Any) -> None:
    path = version / "model.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def refused(version: Path) -> str:
    with pytest.raises(ManifestError) as info:
        load_store(version.parent.parent)
    message = str(info.value)
    assert str(version) in message
    return message


def test_missing_decoder_file(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    (version / "decoder.keras").unlink()
    assert "missing model file decoder.keras" in refused(version)


def test_unreadable_model_file(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    (version / "encoder.keras").write_bytes(b"not a keras archive")
    assert "encoder.keras: cannot load" in refused(version)


def test_manifest_cardinality_contradicts_model(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    edit_manifest(version, input={"encoding": "one_hot", "cardinality": 60})
    assert "does not fit the manifest's source (expected (batch, time, 60) one-hot)" in refused(
        version
    )


def test_manifest_output_cardinality_contradicts_model(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    edit_manifest(version, output_cardinality=40)
    assert "the decoder outputs 51 probabilities, the manifest's output_cardinality is 40" in (
        refused(version)
    )


def test_wrong_kind_for_files(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    edit_manifest(version, kind="step")
    assert "missing model file step.keras" in refused(version)


def test_unsafe_lambda_layer_is_refused(tmp_path: Path) -> None:
    import keras

    token = keras.Input((1, 5))
    h, c = keras.Input((4,)), keras.Input((4,))
    out, h2, c2 = keras.layers.LSTM(4, return_state=True, return_sequences=True)(
        token, initial_state=[h, c]
    )
    probs = keras.layers.Lambda(lambda x: x * 1.0)(keras.layers.Dense(5)(out))
    version = tmp_path / "store" / "unsafe" / "1"
    version.mkdir(parents=True)
    keras.Model([token, h, c], [probs, h2, c2]).save(version / "step.keras")
    (version / "model.json").write_text(
        json.dumps(
            {
                "kind": "step",
                "input": {"encoding": "one_hot", "cardinality": 5},
                "output_cardinality": 5,
            }
        )
    )
    assert "step.keras: cannot load" in refused(version)


def build_two_layer_embedding_model(version: Path) -> tuple[Any, Any]:
    """An untrained 2-layer LSTM seq2seq over integer tokens: four state tensors."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    vocab, units = 7, 16
    embed = layers.Embedding(vocab, 8)
    source = keras.Input((None,), dtype="int32")
    seq, h1, c1 = layers.LSTM(units, return_sequences=True, return_state=True)(embed(source))
    _, h2, c2 = layers.LSTM(units, return_state=True)(seq)
    encoder = keras.Model(source, [h1, c1, h2, c2])
    lstm1 = layers.LSTM(units, return_sequences=True, return_state=True)
    lstm2 = layers.LSTM(units, return_sequences=True, return_state=True)
    dense = layers.Dense(vocab, activation="softmax")
    token = keras.Input((1,), dtype="int32")
    states = [keras.Input((units,)) for _ in range(4)]
    x, s1, s2 = lstm1(embed(token), initial_state=states[:2])
    x, s3, s4 = lstm2(x, initial_state=states[2:])
    decoder = keras.Model([token, *states], [dense(x), s1, s2, s3, s4])
    version.mkdir(parents=True)
    encoder.save(version / "encoder.keras")
    decoder.save(version / "decoder.keras")
    (version / "model.json").write_text(
        json.dumps(
            {
                "kind": "seq2seq",
                "input": {"encoding": "index", "cardinality": vocab},
                "output_cardinality": vocab,
                "start_token": 0,
                "end_token": 6,
                "max_steps": 8,
                "vocabulary": ["<s>", "a", "b", "c", "d", "e", "</s>"],
            }
        )
    )
    return encoder, decoder


def test_multi_layer_index_model_matches_a_keras_loop(tmp_path: Path) -> None:
    version = tmp_path / "store" / "deep" / "1"
    encoder, decoder = build_two_layer_embedding_model(version)
    model = load_store(tmp_path / "store").get("deep")
    assert model.spec.state_shapes == ((16,), (16,), (16,), (16,))
    sources = [[1, 2, 3], [5, 4], [2, 2, 2]]
    outputs, probs = greedy_decode(model.compute, sources, 8, True)
    assert probs is not None
    for source, out, prob in zip(sources, outputs, probs, strict=True):
        states = [np.asarray(s) for s in encoder(np.asarray([source], np.int32))]
        token, expected = 0, []
        for step in range(8):
            result = decoder([np.asarray([[token]], np.int32), *states])
            p = np.asarray(result[0])[0, -1]
            states = [np.asarray(s) for s in result[1:]]
            token = int(np.argmax(p))
            expected.append(token)
            assert_close(prob[step], p)
            if token == 6:
                break
        assert out == expected


def test_serve_refuses_a_broken_store_with_a_clear_message(tmp_path: Path) -> None:
    version = copy_reverse(tmp_path)
    (version / "decoder.keras").unlink()
    result = zygote.run(
        [
            sys.executable,
            "-m",
            "service",
            "serve",
            "--port",
            "1",
            "--model-store",
            str(version.parent.parent),
        ],
        timeout=120,
    )
    assert result.returncode != 0
    assert f"{version}: missing model file decoder.keras" in result.stdout + result.stderr


def test_importing_the_package_does_not_import_tensorflow() -> None:
    code = (
        "import sys, service, service.app, service.__main__, service.dataplane.session_ops, "
        "service.inference.model.store; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "service.app.create_app(); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
