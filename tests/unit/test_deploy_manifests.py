"""The Kubernetes and KServe manifests agree with the code, and `make deploy-check`'s
renderer and validators do what they say (they catch what they must)."""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "scripts" / "deploy_check.py")
assert spec is not None and spec.loader is not None
deploy_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deploy_check)

RENDERED: dict[str, list[dict[str, Any]]] = deploy_check.rendered()
OVERLAYS = [name for name in RENDERED if name != "kserve"]
PROBES = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's containers in an object (a pod template's, a runtime's, a model's)."""
    if doc["kind"] in ("Deployment", "StatefulSet"):
        return list(doc["spec"]["template"]["spec"]["containers"])
    if doc["kind"] == "ServingRuntime":
        return list(doc["spec"]["containers"])
    if doc["kind"] == "InferenceService":
        return [doc["spec"]["predictor"]["model"]]
    return []


def service_env(doc: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e["value"]
        for c in containers(doc)
        for e in c.get("env", [])
        if e["name"].startswith("SERVICE_")
    }


def the_service(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return deployment


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_setting_the_manifests_set_exists_and_is_valid(name: str) -> None:
    known = {f"SERVICE_{field.upper()}" for field in Settings.model_fields}
    for doc in RENDERED[name]:
        env = service_env(doc)
        assert set(env) <= known, f"{doc['kind']}: unknown settings {set(env) - known}"
        # as the server would read them: pydantic validates every value
        Settings(**{key.removeprefix("SERVICE_").lower(): value for key, value in env.items()})


def test_the_overlays_choose_their_session_backends() -> None:
    single = service_env(the_service(RENDERED["single-redis"]))
    cluster = service_env(the_service(RENDERED["redis-cluster"]))
    assert single["SERVICE_SESSION_BACKEND"] == "redis"
    assert single["SERVICE_REDIS_URL"] == "redis://seq2seq-redis:6379/0"
    redis_services = [
        d["metadata"]["name"] for d in RENDERED["single-redis"] if d["kind"] == "Service"
    ]
    assert "seq2seq-redis" in redis_services  # the URL names the overlay's Redis
    assert cluster["SERVICE_SESSION_BACKEND"] == "redis-cluster"
    assert cluster["SERVICE_REDIS_WAIT_REPLICAS"] == "1"


@pytest.mark.parametrize("name", list(RENDERED))
def test_probes_and_ports_match_the_server(name: str) -> None:
    from tests.unit.test_metrics_fakes import app_client

    with app_client() as client:  # the app on the unit tests' models, loaded and ready
        answers = {path: client.get(path).status_code for path in PROBES}
    assert answers == dict.fromkeys(PROBES, 200)
    for doc in RENDERED[name]:
        for c in containers(doc):
            if "image" not in c or not c["image"].startswith("seq2seq-serving"):
                continue
            env = service_env(doc)
            port = int(env["SERVICE_PORT"])
            declared = {p["containerPort"] for p in c["ports"]}
            assert declared == {port}
            named = {p.get("name"): p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                assert named.get(get["port"], get["port"]) == port
                if probe == "livenessProbe":
                    assert get["path"] in ("/healthz", "/v2/health/live")
                else:
                    assert get["path"] in ("/readyz", "/v2/health/ready")


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_kubernetes_service_reaches_the_containers_port(name: str) -> None:
    docs = RENDERED[name]
    (service,) = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "seq2seq-serving"
    ]
    deployment = the_service(docs)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    port_names = {p["name"] for c in containers(deployment) for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def image_names() -> set[str]:
    """The names the Dockerfile's image is built under: compose's and the container test's."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = re.fullmatch(r"\$\{API_IMAGE:-([^:}]+):[^}]+\}", compose["services"]["api"]["image"])
    assert built is not None and "build" in compose["services"]["api"]
    test = re.search(r"API_IMAGE=([^:\s]+):", (ROOT / "scripts" / "container-test").read_text())
    assert test is not None
    return {built.group(1), test.group(1)}


def test_the_image_is_the_one_the_dockerfile_builds_and_runs_as_its_user() -> None:
    (name,) = image_names()
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    for docs in RENDERED.values():
        for doc in docs:
            for c in containers(doc):
                if "image" in c and c["image"].split(":")[0] == name:
                    user = (
                        c.get("securityContext", {}).get("runAsUser")
                        or (doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
                    )
                    assert user == uid
    images = {
        c["image"].split(":")[0]
        for docs in RENDERED.values()
        for d in docs
        for c in containers(d)
        if "image" in c
    }
    assert name in images


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_grace_period_outlasts_the_drain(name: str) -> None:
    deployment = the_service(RENDERED[name])
    env = service_env(deployment)
    drain = float(env["SERVICE_SHUTDOWN_DELAY_SECONDS"]) + float(
        env["SERVICE_SHUTDOWN_TIMEOUT_SECONDS"]
    )
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_autoscaler_scales_on_a_metric_the_service_exports(name: str) -> None:
    from service.observability.metrics import Metrics

    exported = Metrics().render().decode()
    (hpa,) = [d for d in RENDERED[name] if d["kind"] == "HorizontalPodAutoscaler"]
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == ["seq2seq_queued_rows"]
    assert "# TYPE seq2seq_queued_rows gauge" in exported
    assert deploy_check.check_adapter(RENDERED[name]) == []


def test_every_rendered_object_is_valid() -> None:
    schemas = deploy_check.kserve_schemas()
    for docs in RENDERED.values():
        for doc in docs:
            if doc["apiVersion"].startswith("serving.kserve.io/"):
                assert deploy_check.validate_kserve(doc, schemas) == []
            else:
                assert deploy_check.validate_core(doc) == []


def test_the_validators_catch_unknown_fields_wrong_types_and_unknown_kinds() -> None:
    deployment = copy.deepcopy(the_service(RENDERED["single-redis"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    assert "readinesProbe" in " ".join(deploy_check.validate_core(deployment))
    pdb = copy.deepcopy(
        next(d for d in RENDERED["single-redis"] if d["kind"] == "PodDisruptionBudget")
    )
    pdb["spec"]["maxUnavailable"] = [1]
    assert deploy_check.validate_core(pdb)
    assert deploy_check.validate_core(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    )

    schemas = deploy_check.kserve_schemas()
    (runtime,) = [d for d in RENDERED["kserve"] if d["kind"] == "ServingRuntime"]
    (isvc,) = [d for d in RENDERED["kserve"] if d["kind"] == "InferenceService"]
    typo = copy.deepcopy(isvc)
    typo["spec"]["predictor"]["model"]["protocolVersions"] = ["v2"]  # the field is singular
    assert "protocolVersions" in " ".join(deploy_check.validate_kserve(typo, schemas))
    wrong = copy.deepcopy(runtime)
    wrong["spec"]["protocolVersions"] = "v2"  # a list
    assert deploy_check.validate_kserve(wrong, schemas)
    bad_name = copy.deepcopy(isvc)
    bad_name["metadata"]["name"] = {"not": "a string"}
    assert deploy_check.validate_kserve(bad_name, schemas)
    other = copy.deepcopy(isvc)
    other["apiVersion"] = "serving.kserve.io/v2"
    assert deploy_check.validate_kserve(other, schemas)


def test_a_kustomization_field_the_renderer_does_not_render_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: prod-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        deploy_check.render(tmp_path)


def by_object(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed"
)
@pytest.mark.parametrize("name", OVERLAYS)
def test_the_renderer_gives_what_kustomize_gives(name: str) -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(deploy_check.OVERLAYS / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert by_object(list(yaml.safe_load_all(done.stdout))) == by_object(RENDERED[name])
