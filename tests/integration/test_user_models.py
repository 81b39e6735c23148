"""Models as users build them (tests/user_models.py), served over real HTTP: `/predict`
equals the tutorials' decode loop on the same files, and a session stepped one token per
request equals one call over the whole history."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests import user_models
from tests.floats import assert_close
from tests.harness import Server, zygote
from tests.harness.early import Plan
from tests.harness.jobs import Job
from tests.integration.conftest import EARLY
from tests.user_models import UserModel
from tests.user_store import built, weights_hash

pytestmark = pytest.mark.integration

BUILT: dict[str, UserModel] = {}


def user_store(selected: set[str]) -> Job:
    """tests/user_store.py in a process of its own, into a new directory."""
    out = Path(tempfile.mkdtemp(prefix="user-store-"))
    argv = [sys.executable, "-m", "tests.user_store", str(out)]
    return Job(argv, out=out, nice=10, cleanup=out)


def written_store(_: Path) -> Path:
    """The store user_store wrote (once it has ended)."""
    job: Job = EARLY.job("user_store")
    assert job.out is not None
    return job.out / "store"


# written, and served, in the background (slow start-ups allowed: many models)
EARLY.add_job("user_store", user_store)
EARLY.plan("user_models_server", Plan(store=written_store, timeout=300, after="user_store"))


@pytest.fixture(scope="module")
def store(user_store: Job) -> Path:
    """The store, once written, and in BUILT the same models built here (the same seed,
    the same weights: checked), for the tutorials' decode loops."""
    result = user_store.result(timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert user_store.out is not None
    models = built()
    written = (user_store.out / "weights.txt").read_text()
    assert weights_hash(models.values()) == written, "the served models are not these"
    BUILT.update(models)
    BUILT["chars_h5"] = BUILT["chars"]
    # keras-io saves only the training model: `import` split it
    done = json.loads((user_store.out / "import.json").read_text())
    assert done["returncode"] == 0, done["stdout"] + done["stderr"]
    assert "split check: max |training - step-by-step|" in done["stdout"]
    assert "servable" in done["stdout"] and "sample:" in done["stdout"]
    BUILT["chars_imported"] = BUILT["chars"]
    return user_store.out / "store"


@pytest.fixture(scope="module")
def user_store() -> Job:
    return EARLY.job("user_store")


@pytest.fixture(scope="module")
def user_models_server() -> Iterator[Server]:
    try:
        yield EARLY.server("user_models_server")
    finally:
        EARLY.release("user_models_server")


@pytest.fixture(scope="module")
def url(store: Path, user_models_server: Server) -> str:
    return user_models_server.url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def _side(model: UserModel, which: str) -> dict[str, Any]:
    m = model.manifest
    if which in m:
        side: dict[str, Any] = m[which]
        return side
    return {"encoding": m["input"]["encoding"], "cardinality": m["input"]["cardinality"]}


def source_ids(model: UserModel, source: Any) -> list[int]:
    """What the service must feed the encoder, worked out here from the manifest."""
    side = _side(model, "source")
    vocab = side.get("vocabulary")
    if isinstance(source, str):
        pieces: list[Any] = list(source) if side["tokenizer"] == "char" else source.split()
    else:
        pieces = list(source)
    ids = []
    for piece in pieces:
        if isinstance(piece, int):
            ids.append(piece)
        else:
            assert vocab is not None
            ids.append(vocab.index(piece if piece in vocab else side["unk_token"]))
    if side.get("length"):
        assert vocab is not None
        ids += [vocab.index(side["pad_token"])] * (side["length"] - len(ids))
    return ids


def expected_output(model: UserModel, source: Any, tokens: list[int]) -> Any:
    side = _side(model, "target")
    vocab = side.get("vocabulary")
    if vocab is None:
        return tokens
    if isinstance(source, str) and side.get("tokenizer"):
        m = model.manifest
        dropped = {vocab.index(m["start_token"]), vocab.index(m["end_token"])}
        if side.get("pad_token"):
            dropped.add(vocab.index(side["pad_token"]))
        joiner = "" if side["tokenizer"] == "char" else " "
        return joiner.join(vocab[i] for i in tokens if i not in dropped)
    return [vocab[i] for i in tokens]


NAMES = [
    "chars",
    "chars_h5",
    "chars_imported",
    "words",
    "reordered",
    "simple_rnn",
    "stacked",
    "bidirectional",
]


@pytest.mark.parametrize("name", NAMES)
def test_predict_equals_the_tutorial_loop(http: httpx.Client, name: str) -> None:
    model = BUILT[name]
    max_steps = model.manifest["max_steps"]
    r = http.post(
        f"/v1/models/{name}/predict",
        json={"inputs": model.sources, "return_probabilities": True},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    for i, source in enumerate(model.sources):  # batched in the server, one by one here
        tokens, probs = user_models.tutorial_decode(model, source_ids(model, source), max_steps)
        assert body["outputs"][i] == expected_output(model, source, tokens), (name, source)
        assert_close(body["probabilities"][i], np.asarray(probs), f"{name} {source!r}")


@pytest.mark.parametrize("name", NAMES)
def test_session_one_token_per_request_equals_one_call(http: httpx.Client, name: str) -> None:
    model = BUILT[name]
    source = model.sources[0]
    feed = [2, 3, 4]  # target-side ids, teacher forced
    one = http.post("/v1/sessions", json={"model": name, "source": source}).json()["session_id"]
    many = http.post("/v1/sessions", json={"model": name, "source": source}).json()["session_id"]
    whole = http.post(
        f"/v1/sessions/{one}/step", json={"inputs": feed, "return_probabilities": True}
    ).json()
    outputs, probabilities = [], []
    for token in feed:
        r = http.post(
            f"/v1/sessions/{many}/step", json={"inputs": [token], "return_probabilities": True}
        )
        assert r.status_code == 200, r.text
        outputs += r.json()["outputs"]
        probabilities += r.json()["probabilities"]
    assert outputs == whole["outputs"]
    assert_close(probabilities, whole["probabilities"])
    a = http.get(f"/v1/sessions/{one}", params={"include_state": "true"}).json()
    b = http.get(f"/v1/sessions/{many}", params={"include_state": "true"}).json()
    for x, y in zip(a["state"], b["state"], strict=True):
        assert_close(x, y)
    assert (a.get("memory") is None) == ("memory" not in model.encoder_outputs)


@pytest.mark.parametrize("name", ["chars", "words", "reordered"])
def test_session_generate_equals_predict(http: httpx.Client, name: str) -> None:
    model = BUILT[name]
    for source in model.sources[:2]:
        predicted = http.post(f"/v1/models/{name}/predict", json={"inputs": [source]}).json()
        sid = http.post("/v1/sessions", json={"model": name, "source": source}).json()
        r = http.post(f"/v1/sessions/{sid['session_id']}/generate", json={})
        assert r.status_code == 200, r.text
        answer = predicted["outputs"][0]
        if isinstance(source, str):
            assert r.json()["text"] == answer
        else:
            assert r.json()["outputs"] == answer


def test_model_info_reports_roles_memory_and_sides(http: httpx.Client) -> None:
    words = http.get("/v1/models/words").json()
    assert words["memory_shape"] == [6, 24] and words["state_shapes"] == [[24]]
    assert words["source"]["tokenizer"] == "whitespace" and words["target"]["encoding"] == "index"
    reordered = http.get("/v1/models/reordered").json()
    assert reordered["decoder_output"] == "logits" and reordered["memory_shape"] == [6, 20]
    assert http.get("/v1/models/stacked").json()["state_shapes"] == [[16]] * 4
    assert http.get("/v1/models/bidirectional").json()["state_shapes"] == [[24], [24]]


def test_text_errors_over_http(http: httpx.Client) -> None:
    r = http.post("/v1/models/chars/predict", json={"inputs": ["abcdefghi"]})
    assert r.status_code == 422 and "at most 8" in r.json()["error"]["message"]
    r = http.post("/v1/models/chars/predict", json={"inputs": ["abz"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "inputs[0][2]"
    assert "'z' at position 2" in r.json()["error"]["message"]


def test_import_and_check_refuse_with_reasons(store: Path, tmp_path: Path) -> None:
    """A model `import` cannot split, and a directory `check` cannot serve: exit status 2
    and a message saying why, nothing written."""
    import keras

    x = keras.Input((None, 4))
    keras.Model(x, keras.layers.Dense(3)(keras.layers.LSTM(5)(x))).save(tmp_path / "one.keras")
    done = zygote.run(
        [
            sys.executable,
            "-m",
            "service",
            "import",
            str(tmp_path / "one.keras"),
            "--out",
            str(tmp_path / "out" / "1"),
            "--start",
            "0",
        ],
        timeout=300,
    )
    assert done.returncode == 2 and "it has 1 input(s), not two" in done.stderr
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "store" / "m" / "1"
    broken.mkdir(parents=True)
    (broken / "model.json").write_text(json.dumps(BUILT["chars"].manifest))
    (broken / "encoder.keras").write_bytes(b"not a model")
    (broken / "decoder.keras").write_bytes(b"not a model")
    done = zygote.run([sys.executable, "-m", "service", "check", str(broken)], timeout=300)
    assert done.returncode == 2 and "encoder.keras: cannot load" in done.stderr
