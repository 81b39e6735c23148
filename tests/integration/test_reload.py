"""Model versions appear and disappear in the store while a server process serves."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import STORE
from tests.harness.early import Plan, Prepared
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

SOURCE = [20, 36, 40, 10, 34, 28]
REVERSED = [40, 36, 20]


def publish(root: Path, name: str, version: int, source: Path) -> None:
    """The documented way: copy to a dot-name (never scanned), then rename."""
    staging = root / name / f".incoming-{version}"
    shutil.copytree(source, staging)
    staging.rename(root / name / str(version))


def two_models(root: Path) -> Path:
    for name in ("reverse", "memory"):
        shutil.copytree(STORE / name / "1", root / name / "1")
    return root


def memory_model(root: Path) -> Path:
    shutil.copytree(STORE / "memory" / "1", root / "memory" / "1")
    return root


EARLY.plan("reload_server", Plan({"SERVICE_MODEL_POLL_SECONDS": "0"}, store=two_models))
EARLY.plan("poller_server", Plan({"SERVICE_MODEL_POLL_SECONDS": "0.2"}, store=memory_model))


@pytest.fixture(scope="module")
def reload_server() -> Iterator[Prepared]:
    """A server of its own (its models change), on a store of its own, polling never."""
    try:
        yield EARLY.prepared("reload_server")
    finally:
        EARLY.release("reload_server")


@pytest.fixture(scope="module")
def store(reload_server: Prepared) -> Path:
    return reload_server.store


@pytest.fixture(scope="module")
def url(reload_server: Prepared) -> str:
    return reload_server.server.url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def reload(http: httpx.Client) -> dict[str, Any]:
    r = http.post("/v1/admin/reload")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ref(model: str, version: int) -> dict[str, str]:
    return {"model": model, "version": str(version)}


class Traffic:
    """Predicts in a loop on another thread, keeping every status and answer."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set():
                r = client.post("/v1/models/reverse/predict", json={"inputs": [SOURCE]})
                self.answers.append((r.status_code, r.json().get("outputs")))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def test_new_version_is_swapped_in_and_removed_version_drains(
    http: httpx.Client, store: Path, url: str
) -> None:
    r = http.post("/v1/sessions", json={"model": "reverse", "source": SOURCE})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    assert r.json()["version"] == "1"
    with Traffic(url) as traffic:
        publish(store, "reverse", 2, STORE / "reverse" / "1")
        body = reload(http)
        assert body["loaded"] == [ref("reverse", 2)] and body["unloaded"] == []
        assert body["failed"] == [] and body["store_error"] is None
        info = http.get("/v1/models/reverse").json()
        assert info["default_version"] == "2" and info["versions"] == ["1", "2"]
        for version in (1, 2):
            r = http.post(
                f"/v1/models/reverse/versions/{version}/predict", json={"inputs": [SOURCE]}
            )
            assert r.status_code == 200 and r.json()["outputs"] == [REVERSED], r.text
        r = http.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 1})
        assert r.status_code == 200 and r.json()["outputs"] == REVERSED[:1], r.text

        shutil.rmtree(store / "reverse" / "1")
        body = reload(http)
        assert body["loaded"] == [] and body["unloaded"] == [ref("reverse", 1)]
        time.sleep(0.3)  # some traffic after the swap too
    r = http.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 1})
    assert r.status_code == 410, r.text
    error = r.json()["error"]
    assert error["code"] == "model_version_gone" and "no longer serves" in error["message"]
    r = http.post("/v1/models/reverse/versions/1/predict", json={"inputs": [SOURCE]})
    assert r.status_code == 404, r.text
    assert http.get("/v1/models/reverse").json()["versions"] == ["2"]
    assert len(traffic.answers) > 5
    assert {status for status, _ in traffic.answers} == {200}
    assert all(outputs == [REVERSED] for _, outputs in traffic.answers)
    r = http.post("/v1/sessions", json={"model": "reverse", "source": SOURCE})
    assert r.status_code == 201 and r.json()["version"] == "2"


def test_broken_version_is_refused_until_its_files_change(http: httpx.Client, store: Path) -> None:
    source = STORE / "memory" / "1"
    half = store / "memory" / "2"  # copied in place, not renamed: caught mid-copy
    half.mkdir()
    shutil.copy(source / "model.json", half)
    whole = (source / "step.keras").read_bytes()
    (half / "step.keras").write_bytes(whole[: len(whole) // 2])
    body = reload(http)
    assert body["loaded"] == [] and body["unloaded"] == []
    [failed] = body["failed"]
    assert failed["model"] == "memory" and failed["version"] == "2"
    assert failed["error"].startswith("memory/2/step.keras: cannot load"), failed
    assert str(store) not in failed["error"]
    info = http.get("/v1/models/memory").json()
    assert info["default_version"] == "1" and info["versions"] == ["1"]
    assert info["failed_versions"] == [{"version": "2", "error": failed["error"]}]
    r = http.post("/v1/models/memory/predict", json={"inputs": [[3, 0, 1, 2]]})
    assert r.status_code == 200 and r.json()["outputs"] == [[0, 1, 2, 3]]
    r = http.get("/v1/models/memory/versions/2")
    assert r.status_code == 404 and "refused" in r.json()["error"]["message"]
    assert http.get("/readyz").status_code == 200
    assert reload(http)["failed"] == [failed]  # unchanged files: not tried again

    (half / "step.keras").write_bytes(whole)  # the copy completes
    body = reload(http)
    assert body["loaded"] == [ref("memory", 2)] and body["failed"] == []
    info = http.get("/v1/models/memory").json()
    assert info["default_version"] == "2" and info["failed_versions"] == []


def test_model_names_come_and_go(http: httpx.Client, store: Path) -> None:
    garbled = store / "garbled" / "1"
    garbled.mkdir(parents=True)
    (garbled / "model.json").write_text('{"kind": "seq2seq",')
    publish(store, "echo", 1, STORE / "memory" / "1")
    body = reload(http)
    assert body["loaded"] == [ref("echo", 1)]
    assert [(f["model"], f["version"]) for f in body["failed"]] == [("garbled", "1")]
    assert "garbled/1/model.json" in body["failed"][0]["error"]
    r = http.get("/v1/models/garbled")
    assert r.status_code == 404 and "refused" in r.json()["error"]["message"]
    r = http.post("/v1/models/echo/predict", json={"inputs": [[4, 0, 1, 2]]})
    assert r.status_code == 200 and r.json()["outputs"] == [[0, 1, 2, 4]]

    shutil.rmtree(store / "echo")
    shutil.rmtree(store / "garbled")
    body = reload(http)
    assert body["unloaded"] == [ref("echo", 1)] and body["failed"] == []
    assert http.get("/v1/models/echo").status_code == 404
    names = [m["name"] for m in http.get("/v1/models").json()["models"]]
    assert "echo" not in names and "reverse" in names


def test_a_version_directory_that_is_not_a_number_leaves_its_model_as_it_is(
    http: httpx.Client, store: Path
) -> None:
    before = http.get("/v1/models/reverse").json()["versions"]
    (store / "reverse" / "2.tmp").mkdir()
    try:
        body = reload(http)
        assert body["unloaded"] == []
        assert body["failed"] == [
            {
                "model": "reverse",
                "version": None,
                "error": "reverse/2.tmp: version directories must be integers",
            }
        ]
        assert http.get("/v1/models/reverse").json()["versions"] == before
    finally:
        (store / "reverse" / "2.tmp").rmdir()
    assert reload(http)["failed"] == []


@pytest.fixture
def poller_server() -> Iterator[Prepared]:
    """A server polling its own store every 0.2 s."""
    try:
        yield EARLY.prepared("poller_server")
    finally:
        EARLY.release("poller_server")


def test_the_poller_picks_up_a_new_version_by_itself(poller_server: Prepared) -> None:
    store, server = poller_server.store, poller_server.server
    url = server.url
    publish(store, "memory", 2, STORE / "memory" / "1")
    deadline = time.monotonic() + 120
    while HTTP.get(f"{url}/v1/models/memory").json()["default_version"] != "2":
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    r = HTTP.post(f"{url}/v1/models/memory/predict", json={"inputs": [[3, 0, 1, 2]]})
    assert r.status_code == 200 and r.json()["version"] == "2"
    shutil.rmtree(store / "memory" / "1")
    while HTTP.get(f"{url}/v1/models/memory").json()["versions"] != ["2"]:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
