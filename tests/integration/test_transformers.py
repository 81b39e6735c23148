"""Transformer decoders (manifest `decoder_kind: transformer`) served over real HTTP, on
keras-io's two layouts: its custom layers shipped as the model's code file (prefix mode),
and KerasHub's layers (cached mode: a key/value cache). `/predict`, beam, sampling,
streaming, sessions and the V2 and TF Serving doors equal keras-io's own loop (the whole
trained model re-run on the padded prefix per token)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from httpx_sse import connect_sse

from service.inference.compiled import model_code
from service.inference.compiled.loader import load_store
from service.inference.model.manifest import ManifestError
from tests import transformer_models as tm
from tests.conftest import REDIS
from tests.floats import assert_close
from tests.harness import Server, redis_env
from tests.harness.early import Plan
from tests.harness.jobs import Job
from tests.integration.conftest import EARLY

# keras-io's trained model nests the decoder, which Keras says drops the memory's mask
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning"),
    # and loading its custom layers (no build()) makes it warn that they are built as is
    pytest.mark.filterwarnings("ignore:.*does not have a `build\\(\\)` method:UserWarning"),
]

NAME = "keras_io_transformer"
HUB = "keras_hub_transformer"
IMPORTED = "keras_io_imported"  # keras-io's trained model split by `service import`
CHAIN = "keras_hub_chain_imported"  # KerasHub's, one model with no nested decoder, split
BOTH = [NAME, HUB]
SOURCES = [[5, 6, 7], [8], [9, 10, 11, 12, 13, 14, 15, 4], [6, 7, 8, 9], [15, 14], [12, 13]]


def transformer_store(_: set[str]) -> Job:
    """tests/transformer_models.py in a process of its own, into a new directory."""
    out = Path(tempfile.mkdtemp(prefix="transformer-store-"))
    argv = [sys.executable, "-m", "tests.transformer_models", str(out)]
    return Job(argv, out=out, nice=10, cleanup=out)


def written_store(_: Path) -> Path:
    job: Job = EARLY.job("transformer_store")
    assert job.out is not None
    return job.out / "store"


# written, and served, in the background while the tests before these run
EARLY.add_job("transformer_store", transformer_store)


def replica_env() -> dict[str, str]:
    """Two replicas sharing sessions in the session's Redis."""
    return redis_env(REDIS.get(), SERVICE_TRUST_MODEL_CODE="true")


def replica_store(directory: Path) -> Path:
    """The two models the replica test continues sessions of (loading fewer: a faster start)."""
    for name in BOTH:
        (directory / name).symlink_to(written_store(directory) / name)
    return directory


EARLY.plan(
    "transformer_server", Plan(store=written_store, env=replica_env, after="transformer_store")
)


def sliced_replica_env() -> dict[str, str]:
    """The replica also runs every job of more than one step in slices (slices of 1 us)
    and keeps no key/value caches (its graphs give back prefix states, as beam search's
    do), so a session continued there is also one decoded in slices from caches built
    from the prefix, by the graphs SERVICE_SESSION_KV_CACHE_MB=0 serves with."""
    return {**replica_env(), "SERVICE_BATCH_SLICE_MS": "0.001", "SERVICE_SESSION_KV_CACHE_MB": "0"}


EARLY.plan(
    "transformer_replica",
    Plan(store=replica_store, env=sliced_replica_env, after="transformer_store"),
)


@pytest.fixture(scope="module")
def transformer_store() -> Job:
    job: Job = EARLY.job("transformer_store")
    return job


@pytest.fixture(scope="module")
def built(transformer_store: Job) -> tuple[dict[str, tm.TransformerModel], Path]:
    """The store, once written, and the same models built here (seeded: the same
    weights, checked), for keras-io's loop."""
    job = transformer_store
    result = job.result(timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job.out is not None
    models = {m.name: m for m in (tm.keras_io(), tm.keras_hub(), tm.keras_hub_chain())}
    written = json.loads((job.out / "weights.json").read_text())
    assert {n: tm.weights_hash(m) for n, m in models.items()} == written, "not the served"
    models[IMPORTED] = models[NAME]
    models[CHAIN] = models.pop("keras_hub_chain")
    return models, job.out / "store"


@pytest.fixture(scope="module")
def transformer_server(built: tuple[dict[str, tm.TransformerModel], Path]) -> Iterator[Server]:
    try:
        yield EARLY.server("transformer_server")
    finally:
        EARLY.release("transformer_server")


@pytest.fixture(scope="module")
def transformer_replica(built: tuple[dict[str, tm.TransformerModel], Path]) -> Iterator[Server]:
    try:
        yield EARLY.server("transformer_replica")
    finally:
        EARLY.release("transformer_replica")


@pytest.fixture(scope="module")
def url(transformer_server: Server) -> str:
    return transformer_server.url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def predict(http: httpx.Client, name: str = NAME, **body: Any) -> dict[str, Any]:
    r = http.post(f"/v1/models/{name}/predict", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def words(ids: list[int], name: str = NAME) -> list[str]:
    vocabulary = tm.HUB_VOCAB if name in (HUB, CHAIN) else tm.VOCAB
    return [vocabulary[i] for i in ids]


@pytest.mark.parametrize("name", [*BOTH, IMPORTED, CHAIN])
def test_predict_equals_keras_io_loop(
    http: httpx.Client, built: tuple[dict[str, tm.TransformerModel], Path], name: str
) -> None:
    """Sources of six lengths in one request (one batch, each padded and masked)."""
    model = built[0][name]
    answer = predict(http, name, inputs=SOURCES, return_probabilities=True)
    for i, source in enumerate(SOURCES):
        tokens, probabilities = tm.keras_io_decode(model, source)
        assert answer["outputs"][i] == words(tokens, name), source
        assert_close(answer["probabilities"][i], probabilities, f"source {source}")


@pytest.mark.parametrize(
    ("name", "code", "cached"), [(IMPORTED, ["keras_io_layers.py"], False), (CHAIN, [], True)]
)
def test_import_splits_a_training_model(
    built: tuple[dict[str, tm.TransformerModel], Path],
    http: httpx.Client,
    name: str,
    code: list[str],
    cached: bool,
) -> None:
    """`service import` of a whole trained model: keras-io's (a nested decoder, its layers
    as a code file) and KerasHub's built as one model (the decoder a chain of layers, split
    off with the memory as its new input, and cached). Checked as served (mask carried),
    written with the code files listed; served like a model saved split (the prediction
    test above)."""
    done = json.loads((built[1].parent / "import.json").read_text())[name]
    assert done["returncode"] == 0, done["stdout"] + done["stderr"]
    assert "split check: max |training - served, teacher-forced| = " in done["stdout"]
    assert "decoder: transformer, window 8 target positions" in done["stdout"]
    manifest = json.loads((built[1] / name / "1" / "model.json").read_text())
    assert manifest["decoder_kind"] == "transformer" and manifest["code"] == code
    if code:  # given --example: check decodes it
        assert manifest["example"] == tm.EXAMPLE
        assert f"sample: {tm.EXAMPLE!r} -> '" in done["stdout"]
    else:
        assert "example" not in manifest
        assert "(no `example` in model.json: vocabulary tokens)" in done["stdout"]
    for file in code:
        assert (built[1] / name / "1" / file).is_file()
    assert http.get(f"/v1/models/{name}").json()["kv_cache"] is cached


@pytest.mark.parametrize("name", BOTH)
def test_the_source_mask_matters(
    built: tuple[dict[str, tm.TransformerModel], Path], name: str
) -> None:
    """Without the mask, the split decoder would not be the trained model: the test's
    models are ones where that shows (so the test above proves the mask is carried)."""
    model = built[0][name]
    source = tm.padded(SOURCES[0], tm.SEQ)
    memory = model.encoder(source)
    target = tm.padded([tm.START], tm.SEQ)
    trained = np.asarray(model.transformer([source, target]))[0, 0]
    bare = np.asarray(model.decoder([target, np.asarray(memory)]))[0, 0]
    assert np.abs(trained - bare).max() > 1e-3


def test_model_info(http: httpx.Client) -> None:
    info = http.get(f"/v1/models/{NAME}").json()
    assert info["decoder_kind"] == "transformer" and info["kv_cache"] is False
    assert info["state_shapes"] == [[tm.SEQ], [1]] and info["memory_shape"] == [tm.SEQ, 17]
    assert http.get("/v1/models/" + NAME).json()["max_steps"] == tm.SEQ
    hub = http.get(f"/v1/models/{HUB}").json()
    assert hub["decoder_kind"] == "transformer" and hub["kv_cache"] is True
    assert hub["state_shapes"] == [[tm.SEQ], [1]]  # the cache is never a session's state


@pytest.mark.parametrize("name", BOTH)
def test_beam_width_one_is_greedy_and_sampling_is_seeded(http: httpx.Client, name: str) -> None:
    greedy = predict(http, name, inputs=SOURCES, return_scores=True)
    beam = predict(http, name, inputs=SOURCES, strategy="beam", beam_width=1, return_scores=True)
    assert beam["outputs"] == greedy["outputs"]
    assert_close(beam["scores"], greedy["scores"])
    wide = predict(
        http, name, inputs=SOURCES, strategy="beam", beam_width=4, num_return_sequences=2
    )
    assert all(len(row) == 2 for row in wide["sequences"])
    hot = {"strategy": "sample", "temperature": 1.5, "seed": 11}
    first = predict(http, name, inputs=SOURCES, **hot)
    assert first["outputs"] == predict(http, name, inputs=SOURCES, **hot)["outputs"]


def test_a_stream_is_the_unstreamed_answer(http: httpx.Client) -> None:
    body = {"inputs": [SOURCES[2]], "return_scores": True}
    plain = predict(http, **body)
    path = f"/v1/models/{NAME}/predict"
    with connect_sse(http, "POST", path, json={**body, "stream": True}) as events:
        received = [(e.event, e.json()) for e in events.iter_sse()]
    assert received[-1][0] == "result" and received[-1][1]["outputs"] == plain["outputs"]
    assert [data["token"] for _, data in received[:-1]] == plain["outputs"][0]


@pytest.mark.parametrize("name", BOTH)
def test_sessions_in_pieces_equal_one_call(
    http: httpx.Client, built: tuple[dict[str, tm.TransformerModel], Path], name: str
) -> None:
    source = SOURCES[4]  # eight tokens, no end token, from both models
    tokens, probabilities = tm.keras_io_decode(built[0][name], source)
    assert len(tokens) == tm.SEQ and tm.END not in tokens

    def new() -> str:
        r = http.post("/v1/sessions", json={"model": name, "source": source})
        assert r.status_code == 201, r.text
        session_id: str = r.json()["session_id"]
        return session_id

    hits = kv_hits(http)
    whole, pieces = new(), new()
    five = http.post(f"/v1/sessions/{whole}/generate", json={"max_steps": 5}).json()
    one = http.post(f"/v1/sessions/{pieces}/generate", json={"max_steps": 1}).json()
    four = http.post(f"/v1/sessions/{pieces}/generate", json={"max_steps": 4}).json()
    assert five["outputs"] == one["outputs"] + four["outputs"] == words(tokens, name)[:5]
    state = http.get(f"/v1/sessions/{pieces}", params={"include_state": "true"}).json()
    assert state["state"][1] == [5.0]  # five tokens fed: [start] and four generated
    # teacher forcing: feed [start] and the loop's own tokens, read each step's distribution
    forced = new()
    fed = [tm.START, *tokens[:3]]
    r = http.post(
        f"/v1/sessions/{forced}/step",
        json={"inputs": words(fed, name), "return_probabilities": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == words(tokens[:4], name)
    assert_close(r.json()["probabilities"], probabilities[:4])
    # continued from where the step left it (with a key/value cache: from the caches
    # this server kept, not rebuilt): keras-io's distributions still
    body = {"max_steps": 2, "return_probabilities": True}
    r = http.post(f"/v1/sessions/{forced}/generate", json=body)
    assert r.json()["outputs"] == words(tokens[4:6], name)
    assert_close(r.json()["probabilities"], probabilities[4:6])
    cached = http.get(f"/v1/models/{name}").json()["kv_cache"]
    assert kv_hits(http) - hits == (2 if cached else 0)  # the second piece, the generate
    # reset clears the prefix: generating again gives the same tokens
    http.post(f"/v1/sessions/{pieces}/reset")
    again = http.post(f"/v1/sessions/{pieces}/generate", json={"max_steps": 5}).json()
    assert again["outputs"] == five["outputs"]


def kv_hits(http: httpx.Client) -> float:
    """Session requests that found their key/value caches kept by the server."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('seq2seq_session_kv_cache_lookups_total{result="hit"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("name", BOTH)
def test_a_session_continued_on_another_replica_equals_one_replica(
    http: httpx.Client, transformer_replica: Server, name: str
) -> None:
    """Sessions live in Redis as the tokens so far and the memory (never a cache): any
    replica continues any session, rebuilding what it needs."""
    body = {"model": name, "source": SOURCES[4]}
    alone = http.post("/v1/sessions", json=body).json()["session_id"]
    shared = http.post("/v1/sessions", json=body).json()["session_id"]
    five = http.post(f"/v1/sessions/{alone}/generate", json={"max_steps": 5}).json()
    two = http.post(f"/v1/sessions/{shared}/generate", json={"max_steps": 2}).json()
    with httpx.Client(base_url=transformer_replica.url, timeout=60) as other:
        three = other.post(f"/v1/sessions/{shared}/generate", json={"max_steps": 3})
        assert three.status_code == 200, three.text
        state = other.get(f"/v1/sessions/{shared}", params={"include_state": "true"}).json()
    assert two["outputs"] + three.json()["outputs"] == five["outputs"]
    mine = http.get(f"/v1/sessions/{alone}", params={"include_state": "true"}).json()
    for a, b in zip(mine["state"], state["state"], strict=True):
        assert_close(a, b)


def test_the_window_bounds_max_steps_and_sessions(http: httpx.Client) -> None:
    r = http.post(f"/v1/models/{NAME}/predict", json={"inputs": SOURCES, "max_steps": 9})
    assert r.status_code == 422 and "max_steps" in r.text and f"1..{tm.SEQ}" in r.text
    sid = http.post("/v1/sessions", json={"model": NAME, "source": SOURCES[0]}).json()
    step = f"/v1/sessions/{sid['session_id']}/step"
    assert http.post(step, json={"inputs": ["w1"] * 6}).status_code == 200
    r = http.post(step, json={"inputs": ["w1"] * 3})
    assert r.status_code == 422 and "2 left" in r.text, r.text
    generate = f"/v1/sessions/{sid['session_id']}/generate"
    assert http.post(generate, json={"max_steps": 3}).status_code == 422
    assert http.post(generate, json={"max_steps": 2}).status_code == 200
    bad = {"state": [[99.0] * tm.SEQ, [0.0]]}
    r = http.put(f"/v1/sessions/{sid['session_id']}/state", json=bad)
    assert r.status_code == 422 and "token ids" in r.text, r.text


def test_v2_and_tf_serving_equal_native_predict(http: httpx.Client) -> None:
    native = predict(http, inputs=SOURCES[:2])
    tfs = http.post(f"/v1/models/{NAME}:predict", json={"instances": SOURCES[:2]})
    assert tfs.status_code == 200, tfs.text
    assert tfs.json()["predictions"] == native["outputs"]
    for source, outputs in zip(SOURCES[:2], native["outputs"], strict=True):
        body = {
            "inputs": [
                {"name": "tokens", "shape": [1, len(source)], "datatype": "INT64", "data": source}
            ]
        }
        v2 = http.post(f"/v2/models/{NAME}/infer", json=body)
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == [tm.VOCAB.index(w) for w in outputs]


def copy_store(store: Path, tmp_path: Path, **changes: Any) -> Path:
    """keras-io's model alone, its manifest changed."""
    copy = tmp_path / "store"
    shutil.copytree(store / NAME, copy / NAME)
    path = copy / NAME / "1" / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return copy


def test_code_files_need_the_trust_setting(
    built: tuple[dict[str, tm.TransformerModel], Path], tmp_path: Path
) -> None:
    model_code.configure(False)
    with pytest.raises(ManifestError) as refused:
        load_store(copy_store(built[1], tmp_path))
    assert "SERVICE_TRUST_MODEL_CODE=true" in str(refused.value)
    assert "layers.py" in str(refused.value)


def test_a_window_past_the_position_table_is_refused(
    built: tuple[dict[str, tm.TransformerModel], Path], tmp_path: Path
) -> None:
    store = copy_store(built[1], tmp_path, max_steps=tm.SEQ + 4)
    model_code.configure(True)
    try:
        with pytest.raises(ManifestError) as refused:
            load_store(store)
    finally:
        model_code.configure(False)
    message = str(refused.value)
    assert f"window of {tm.SEQ + 4} target positions" in message and "max_steps" in message
