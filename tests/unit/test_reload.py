"""Reloader on numpy fakes: a store of directories whose model.json says "ok" or not."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.errors import NotFound, NotReady
from service.inference.model.interface import GREEDY, LoadedModel, States
from service.inference.model.manifest import ManifestError
from service.inference.model.registry import Registry
from service.inference.serving.engine import BatchSettings, Engines, PredictJob
from service.inference.serving.reload import Reloader
from tests import fakes

pytestmark = pytest.mark.unit


class FakeLoader:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, directory: Path, name: str, version: int) -> LoadedModel:
        self.calls.append((name, version))
        text = (directory / "model.json").read_text() if (directory / "model.json").exists() else ""
        if text != "ok":
            raise ManifestError(f"{directory}/model.json: not a manifest")
        return fakes.model(name, version)


def put(root: Path, name: str, version: int | str, text: str = "ok") -> Path:
    directory = root / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(text)
    return directory


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def setup(
    root: Path, executor: ThreadPoolExecutor, models: dict[str, Sequence[int]]
) -> tuple[Registry, Engines, Reloader, FakeLoader]:
    loaded = {}
    for name, versions in models.items():
        loaded[name] = {v: fakes.model(name, v) for v in versions}
        for v in versions:
            put(root, name, v)
    registry = Registry(loaded)
    engines = Engines(registry.all(), executor, BatchSettings())
    loader = FakeLoader()
    return registry, engines, Reloader(root, registry, engines, load=loader), loader


async def test_new_version_becomes_default_and_removed_one_is_unloaded(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    registry, engines, reloader, _ = setup(tmp_path, executor, {"counter": [1]})
    first = registry.get("counter")
    put(tmp_path, "counter", 2)
    (tmp_path / "counter" / ".3-copying").mkdir()  # dot-names are not versions yet
    report = await reloader.reload()
    assert report.loaded == [("counter", 2)] and report.unloaded == [] and report.refused == []
    assert registry.get("counter").spec.version == 2 and registry.versions("counter") == [1, 2]
    engines.get(registry.get("counter"))  # its engine exists before it is visible
    shutil.rmtree(tmp_path / "counter" / "1")
    report = await reloader.reload()
    assert report.unloaded == [("counter", 1)] and registry.versions("counter") == [2]
    with pytest.raises(NotFound):
        registry.get("counter", 1)
    with pytest.raises(NotReady):
        engines.get(first)
    assert await reloader.reload() == type(report)()  # nothing changed


async def test_broken_version_is_refused_and_retried_only_when_its_files_change(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    registry, _, reloader, loader = setup(tmp_path, executor, {"counter": [1]})
    directory = put(tmp_path, "counter", 2, "{half a file")
    report = await reloader.reload()
    assert report.loaded == []
    [refusal] = report.refused
    assert (refusal.model, refusal.version) == ("counter", "2")
    assert refusal.error == "counter/2/model.json: not a manifest"  # no host paths
    assert str(tmp_path) not in refusal.error
    assert registry.refused("counter") == [("2", refusal.error)]
    assert registry.get("counter").spec.version == 1
    with pytest.raises(NotFound, match="refused: counter/2/model.json"):
        registry.get("counter", 2)
    await reloader.reload()
    assert loader.calls == [("counter", 2)]  # unchanged: not tried again
    (directory / "model.json").write_text("ok")
    os.utime(directory / "model.json", ns=(1, 1))  # the size alone changes too; be sure
    report = await reloader.reload()
    assert report.loaded == [("counter", 2)] and report.refused == []
    assert registry.refused("counter") == [] and registry.get("counter").spec.version == 2


async def test_refusal_of_a_removed_version_is_forgotten(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    registry, _, reloader, _ = setup(tmp_path, executor, {"counter": [1]})
    put(tmp_path, "counter", 2, "broken")
    assert len((await reloader.reload()).refused) == 1
    shutil.rmtree(tmp_path / "counter" / "2")
    assert (await reloader.reload()).refused == [] and registry.refused("counter") == []


async def test_a_model_directory_that_cannot_be_scanned_is_left_as_served(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    registry, _, reloader, _ = setup(tmp_path, executor, {"counter": [1], "words": [1]})
    put(tmp_path, "counter", "2.tmp")  # not a version number
    shutil.rmtree(tmp_path / "counter" / "1")
    put(tmp_path, "words", 2)
    report = await reloader.reload()
    assert report.loaded == [("words", 2)] and report.unloaded == []
    [refusal] = report.refused
    assert refusal.model == "counter" and refusal.version is None
    assert refusal.error == "counter/2.tmp: version directories must be integers"
    assert registry.versions("counter") == [1]
    assert registry.refused("counter") == [(None, refusal.error)]


async def test_a_missing_or_empty_store_unloads_nothing(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    store = tmp_path / "store"
    registry, _, reloader, _ = setup(store, executor, {"counter": [1]})
    shutil.rmtree(store / "counter" / "1")  # an empty model directory: no versions anywhere
    report = await reloader.reload()
    assert report.unloaded == [] and report.store_error is not None
    assert "no model versions" in report.store_error and str(tmp_path) not in report.store_error
    shutil.rmtree(store)
    report = await reloader.reload()
    assert report.store_error == "SERVICE_MODEL_STORE: model store directory does not exist"
    assert registry.versions("counter") == [1]


async def test_new_and_removed_model_names(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    registry, _, reloader, _ = setup(tmp_path, executor, {"counter": [1], "words": [1]})
    shutil.rmtree(tmp_path / "words")
    put(tmp_path, "fresh", 3)
    put(tmp_path, "broken", 1, "")
    report = await reloader.reload()
    assert report.loaded == [("fresh", 3)] and report.unloaded == [("words", 1)]
    assert registry.names() == ["counter", "fresh"]
    with pytest.raises(NotFound, match="'broken' is not served: its store entry was refused"):
        registry.get("broken")
    with pytest.raises(NotFound, match="'words' not found"):
        registry.get("words")


class BlockingCompute(fakes.CounterCompute):
    """Blocks its first step until released, to hold a batch on the compute thread."""

    def __init__(self, model: LoadedModel) -> None:
        super().__init__(model.spec)
        self.started = threading.Event()
        self.release = threading.Event()

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        self.started.set()
        assert self.release.wait(10)
        return super().step(tokens, states)


async def test_unload_waits_for_queued_and_running_batches(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    put(tmp_path, "counter", 1)
    put(tmp_path, "counter", 2)
    plain = fakes.model("counter", 1)
    compute = BlockingCompute(plain)
    old = LoadedModel(plain.spec, compute)
    registry = Registry({"counter": {1: old, 2: fakes.model("counter", 2)}})
    engines = Engines(registry.all(), executor, BatchSettings())
    reloader = Reloader(tmp_path, registry, engines, load=FakeLoader())
    engine = engines.get(old)
    running = asyncio.create_task(engine.predict(PredictJob([[1]], 2, [GREEDY]), False))
    await asyncio.to_thread(compute.started.wait, 5)
    queued = asyncio.create_task(
        engine.predict(PredictJob([[2]], 2, [GREEDY]), False)
    )  # waits for the first
    shutil.rmtree(tmp_path / "counter" / "1")
    reload = asyncio.create_task(reloader.reload())
    await asyncio.sleep(0.1)
    assert not reload.done()  # draining: v1 is gone from the registry, not yet closed
    assert registry.versions("counter") == [2]
    compute.release.set()
    assert (await running)[0].outputs == [2, 4] and (await queued)[0].outputs == [3, 6]
    assert (await reload).unloaded == [("counter", 1)]


def test_admin_reload_needs_a_model_store_and_readiness_drains() -> None:
    app = create_app(Settings(), registry=fakes.registry())
    with TestClient(app) as client:
        r = client.post("/v1/admin/reload")
        assert r.status_code == 409 and "not a model store" in r.json()["error"]["message"]
        assert client.get("/readyz").status_code == 200
        r = client.get("/v1/models/counter")
        assert r.status_code == 200 and r.json()["failed_versions"] == []
        app.state.runtime.start_draining()
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "draining"
        assert r.headers["retry-after"] == "1"
        assert client.post("/v1/models/counter/predict", json={"inputs": [[1]]}).status_code == 200
