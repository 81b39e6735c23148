"""Every model file format through `load_graph`: real Keras 2 files (`.h5` and SavedModel
directories built by tf_keras in a subprocess, `tests/keras2_files.py`) give the outputs
Keras 2's own `predict` gave, in the model's input and output order; Keras 3 files load;
unreadable files are a `ModelFileError` naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tensorflow as tf

from service.inference.model.formats import ModelFile, ModelFileError
from service.inference.model.formats.graph import Graph, TensorInfo
from service.inference.model.formats.load import load_graph
from service.inference.model.formats.saved_model import SavedModelGraph
from tests.floats import assert_close

pytestmark = pytest.mark.integration

F32 = "float32"


def info(name: str, *shape: int | None) -> TensorInfo:
    return TensorInfo(name, (None, *shape), F32)


# (inputs, outputs) of each Keras 2 model, in its own order; the names are Keras 2's
# (auto-numbered in tests/keras2_files.py), which its SavedModel signature keys repeat
KERAS2_MODELS: dict[str, tuple[list[TensorInfo], list[TensorInfo]]] = {
    "tutorial_training": (
        [info("input_1", None, 51), info("input_2", None, 51)],
        [info("dense", None, 51)],
    ),
    "tutorial_encoder": (
        [info("input_1", None, 51)],
        [info("lstm", 128), info("lstm_1", 128)],
    ),
    "tutorial_decoder": (
        [info("input_2", None, 51), info("input_3", 128), info("input_4", 128)],
        [info("dense", None, 51), info("lstm_1", 128), info("lstm_1_1", 128)],
    ),
    "attention_training": (
        [info("source", None), info("shifted_target", None)],
        [info("probs", None, 40)],
    ),
    "attention_encoder": (
        [info("source", None)],
        [info("enc_gru", None, 32), info("enc_gru_1", 32)],
    ),
    "attention_decoder": (  # not alphabetical: signature keys sort otherwise
        [info("token", 1), info("encoder_outputs", None, 32), info("h", 32)],
        [info("probs", 1, 40), info("dec_gru", 32)],
    ),
    "bidirectional": (
        [info("source", None, 8), info("h0", 12), info("c0", 12)],
        [info("per_step", None, 3), info("h", 24), info("c", 24)],
    ),
    "sequential": ([info("embedding_input", 5)], [info("dense_2", 3)]),
}


@pytest.fixture(scope="session")
def predictions(keras2_dir: Path) -> dict[str, np.ndarray]:
    with np.load(keras2_dir / "predictions.npz") as data:
        return dict(data)


def inputs_of(predictions: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    return [predictions[f"{name}.in.{i}"] for i in range(len(KERAS2_MODELS[name][0]))]


def assert_outputs(
    actual: list[Any], predictions: dict[str, np.ndarray], name: str, what: str
) -> None:
    assert len(actual) == len(KERAS2_MODELS[name][1])
    for i, tensor in enumerate(actual):
        assert_close(np.asarray(tensor), predictions[f"{name}.out.{i}"], f"{what} output {i}")


def order(graph: Graph) -> tuple[str, str]:
    """Where a SavedModel's input and output order came from."""
    assert isinstance(graph, SavedModelGraph)
    return graph.input_order, graph.output_order


def keras2_file(keras2_dir: Path, name: str, fmt: str) -> ModelFile:
    if fmt == "h5":
        return ModelFile(name, "h5", keras2_dir / f"{name}.h5")
    return ModelFile(name, "saved_model", keras2_dir / name)


KERAS2_FILES = [
    (name, fmt)
    for name in KERAS2_MODELS
    for fmt in ("h5", "saved_model")
    # the joined training models (never served) as .h5 only: a SavedModel takes ~4 s to write
    if not (name.endswith("_training") and fmt == "saved_model")
]


@pytest.mark.parametrize(("name", "fmt"), KERAS2_FILES)
def test_keras2_file_gives_keras2_predictions_in_model_order(
    keras2_dir: Path, predictions: dict[str, np.ndarray], name: str, fmt: str
) -> None:
    graph = load_graph(keras2_file(keras2_dir, name, fmt))
    inputs, outputs = KERAS2_MODELS[name]
    assert list(graph.inputs) == inputs
    assert list(graph.outputs) == outputs
    assert_outputs(graph(inputs_of(predictions, name)), predictions, name, f"{name} {fmt}")
    if fmt == "saved_model":  # a Sequential config names no input and output layers
        expected = ("call_signature", "signature_keys") if name == "sequential" else None
        assert order(graph) == (expected or ("keras_metadata", "keras_metadata"))


@pytest.mark.parametrize("fmt", ["h5", "saved_model"])
@pytest.mark.parametrize("name", ["tutorial_decoder", "attention_decoder"])
def test_single_step_decoder_in_a_tf_function_with_open_batch(
    keras2_dir: Path, predictions: dict[str, np.ndarray], name: str, fmt: str
) -> None:
    graph = load_graph(keras2_file(keras2_dir, name, fmt))
    graph.single_step()  # the tutorial decoder's time axis is open: traced with one step
    signature = [tf.TensorSpec(i.shape, i.dtype) for i in graph.inputs]
    signature[0] = tf.TensorSpec((None, 1, *graph.inputs[0].shape[2:]), F32)

    @tf.function(input_signature=signature)
    def step(*tensors: tf.Tensor) -> list[tf.Tensor]:
        return graph(list(tensors))

    inputs = inputs_of(predictions, name)
    assert_outputs(step(*inputs), predictions, name, f"{name} {fmt} batch 4")
    for row in (0, 3):  # one row alone: the same graph, no retrace
        alone = step(*[x[row : row + 1] for x in inputs])
        for i, tensor in enumerate(alone):
            assert_close(tensor.numpy()[0], predictions[f"{name}.out.{i}"][row], f"row {row}")
    assert step.experimental_get_tracing_count() == 1


def test_saved_model_order_without_keras_metadata(
    keras2_dir: Path, predictions: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Without keras_metadata.pb the inputs come from the restored `__call__` signature,
    outputs from their shapes where those tell them apart, else the keys' order."""
    graphs = {}
    for name in ("attention_decoder", "tutorial_decoder"):
        shutil.copytree(keras2_dir / name, tmp_path / name)
        (tmp_path / name / "keras_metadata.pb").unlink()
        graphs[name] = graph = load_graph(ModelFile(name, "saved_model", tmp_path / name))
        assert order(graph)[0] == "call_signature"
        assert list(graph.inputs) == KERAS2_MODELS[name][0]
        assert list(graph.outputs) == KERAS2_MODELS[name][1]
        assert_outputs(graph(inputs_of(predictions, name)), predictions, name, name)
    assert order(graphs["attention_decoder"])[1] == "call_signature"
    # h and c have one shape: only the keys' natural order is left (right here)
    assert order(graphs["tutorial_decoder"])[1] == "signature_keys"


def drop_input_layer_entry(config: dict[str, Any]) -> None:
    """Older Keras 2 Sequential configs keep the input shape on the first layer only."""
    layers = config["config"]["layers"]
    assert layers.pop(0)["class_name"] == "InputLayer"
    layers[0]["config"]["batch_input_shape"] = [None, 5]


def add_causal_false(config: dict[str, Any]) -> None:
    """TF 2.3 to 2.9 wrote `causal` into Attention configs; Keras 3 refuses it."""
    (attention,) = [c for c in config["config"]["layers"] if c["class_name"] == "Attention"]
    attention["config"]["causal"] = False


@pytest.mark.parametrize(
    ("name", "edit"),
    [("sequential", drop_input_layer_entry), ("attention_decoder", add_causal_false)],
)
def test_older_keras2_configs(
    keras2_dir: Path, predictions: dict[str, np.ndarray], tmp_path: Path, name: str, edit: Any
) -> None:
    path = tmp_path / f"{name}.h5"
    shutil.copy(keras2_dir / f"{name}.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    graph = load_graph(ModelFile(name, "h5", path))
    assert [i.shape for i in graph.inputs] == [i.shape for i in KERAS2_MODELS[name][0]]
    assert_outputs(graph(inputs_of(predictions, name)), predictions, name, name)


def test_keras2_lambda_h5_is_refused_but_its_saved_model_loads(keras2_dir: Path) -> None:
    path = keras2_dir / "lambda.h5"
    with pytest.raises(ModelFileError) as refused:
        load_graph(ModelFile("lambda", "h5", path))
    message = str(refused.value)
    assert message.startswith(f"{path}: cannot load: ")
    assert "Lambda" in message and "safe_mode" in message
    graph = load_graph(ModelFile("lambda", "saved_model", keras2_dir / "lambda"))
    assert [i.name for i in graph.inputs] == ["x"]


def test_keras2_time_major_is_refused(keras2_dir: Path) -> None:
    path = keras2_dir / "time_major.h5"
    with pytest.raises(ModelFileError, match="time_major=True has no Keras 3 equivalent"):
        load_graph(ModelFile("time_major", "h5", path))


def keras3_decoder() -> Any:
    """An attention GRU decoder in Keras 3 (Attention's "dot" once broke `.h5` loading)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    token = keras.Input((1,), name="token", dtype="int32")
    enc = keras.Input((None, 8), name="enc")
    h = keras.Input((8,), name="h")
    seq, h_out = layers.GRU(8, return_sequences=True, return_state=True)(
        layers.Embedding(10, 4)(token), initial_state=h
    )
    context = layers.Attention()([seq, enc])
    probs = layers.Dense(10, activation="softmax")(layers.Concatenate()([seq, context]))
    return keras.Model([token, enc, h], [probs, h_out])


def test_keras3_files_load(tmp_path: Path) -> None:
    model = keras3_decoder()
    rng = np.random.default_rng(2)
    inputs = [
        rng.integers(0, 10, size=(3, 1)).astype(np.int32),
        rng.normal(size=(3, 4, 8)).astype(np.float32),
        rng.normal(size=(3, 8)).astype(np.float32),
    ]
    expected = [np.asarray(t) for t in model(inputs, training=False)]
    model.save(tmp_path / "decoder.keras")
    model.save(tmp_path / "decoder.h5")
    tf.saved_model.save(model, str(tmp_path / "plain"))
    model.export(str(tmp_path / "export"), verbose=False)
    files = [
        ModelFile("decoder", "keras", tmp_path / "decoder.keras"),
        ModelFile("decoder", "h5", tmp_path / "decoder.h5"),
        ModelFile("decoder", "saved_model", tmp_path / "plain"),
        ModelFile("decoder", "saved_model", tmp_path / "export"),
    ]
    shapes = ([(None, 1), (None, None, 8), (None, 8)], [(None, 1, 10), (None, 8)])
    for file in files:
        graph = load_graph(file)
        assert ([i.shape for i in graph.inputs], [o.shape for o in graph.outputs]) == shapes
        assert [i.dtype for i in graph.inputs] == ["int32", F32, F32]
        for i, (actual, desired) in enumerate(zip(graph(inputs), expected, strict=True)):
            assert_close(np.asarray(actual), desired, f"{file.path.name} output {i}")
    keras_file, export = load_graph(files[0]), load_graph(files[3])
    assert [i.name for i in keras_file.inputs] == ["token", "enc", "h"]
    assert [i.name for i in export.inputs] == ["token", "enc", "h"]  # keys, in call order
    assert [o.name for o in export.outputs] == ["output_0", "output_1"]


def test_tf_module_saved_model_keeps_its_argument_order(tmp_path: Path) -> None:
    class Module(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(2.0)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="zeta"),
                tf.TensorSpec([None, 3], tf.float32, name="alpha"),
            ]
        )
        def __call__(self, zeta: tf.Tensor, alpha: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": zeta * self.w, "x": alpha + zeta}

    tf.saved_model.save(Module(), str(tmp_path / "module"))
    graph: Graph = load_graph(ModelFile("step", "saved_model", tmp_path / "module"))
    assert [i.name for i in graph.inputs] == ["zeta", "alpha"]
    assert [o.name for o in graph.outputs] == ["x", "y"]  # a dict: keys' order
    zeta, alpha = np.ones((2, 3), np.float32), np.full((2, 3), 5.0, np.float32)
    x, y = graph([zeta, alpha])
    assert_close(x, zeta + alpha)
    assert_close(y, zeta * 2.0)


@pytest.mark.parametrize(
    ("fmt", "relative"),
    [("keras", "m.keras"), ("h5", "m.h5"), ("saved_model", "m"), ("h5", "empty.h5")],
)
def test_unreadable_file_names_the_file(tmp_path: Path, fmt: str, relative: str) -> None:
    path = tmp_path / relative
    if fmt == "saved_model":
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"not a saved model")
    elif relative == "empty.h5":  # a real HDF5 file without a model in it
        h5py.File(path, "w").close()
    else:
        path.write_bytes(b"not a model file")
    with pytest.raises(ModelFileError) as refused:
        load_graph(ModelFile("m", fmt, path))  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"{path}: cannot load: ")
