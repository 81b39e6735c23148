"""API keys, session ownership, Origin and Host checks, Idempotency-Key: through HTTP
(in-process ASGI) on numpy fakes."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.middleware.access_log import redact
from service.api.middleware.observe import relative
from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from service.sessions.store import log_id
from tests import fakes
from tests.unit.test_api_fakes import error

pytestmark = pytest.mark.unit

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


def serve(**settings: Any) -> tuple[TestClient, MemorySessionStore]:
    config = Settings(**settings)
    store = MemorySessionStore(
        config.session_ttl_seconds,
        config.max_sessions,
        max_per_owner=config.max_sessions_per_key,
        keys_per_session=config.idempotency_keys_per_session,
    )
    return TestClient(create_app(config, registry=fakes.registry(), store=store)), store


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    client, _ = serve(api_keys=f"alice:{ALICE},bob:{BOB}", max_sessions_per_key=2)
    with client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(client: TestClient, key: str = ALICE, **headers: str) -> str:
    r = client.post("/v1/sessions", json={"model": "stepper"}, headers={**bearer(key), **headers})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def test_without_keys_configured_everything_is_open() -> None:
    client, _ = serve()
    with client:
        assert client.post("/v1/sessions", json={"model": "stepper"}).status_code == 201
        assert client.get("/v1/stats").status_code == 200


def test_a_missing_or_wrong_key_is_401_with_a_challenge(keyed: TestClient) -> None:
    r = keyed.post("/v1/sessions", json={"model": "stepper"})
    assert "API key is required" in error(r, 401, "Authorization")
    assert r.headers["www-authenticate"] == 'Bearer realm="seq2seq-serving"'
    for headers in (bearer("wrong-key-0123456789abcdef"), {"X-API-Key": ALICE[:-1]}):
        r = keyed.get("/v1/models", headers=headers)
        assert "not valid" in error(r, 401, "Authorization")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert ALICE not in r.text
    assert keyed.get("/v1/models", headers=bearer(ALICE)).status_code == 200
    assert keyed.get("/v1/models", headers={"X-API-Key": BOB}).status_code == 200
    assert keyed.get("/v1/models", headers={"Authorization": f"Basic {ALICE}"}).status_code == 401


def test_health_and_docs_stay_open_stats_are_protected_by_default(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"):
        assert keyed.get(path).status_code == 200, path
    error(keyed.get("/v1/stats"), 401)
    assert keyed.get("/v1/stats", headers=bearer(BOB)).status_code == 200
    client, _ = serve(api_keys=ALICE, protect_stats=False)
    with client:
        assert client.get("/v1/stats").status_code == 200
        error(client.get("/v1/models"), 401)


def test_another_keys_session_is_not_found(keyed: TestClient) -> None:
    sid = create(keyed, ALICE)
    unknown = error(keyed.get("/v1/sessions/no-such-id", headers=bearer(BOB)), 404, "session_id")
    for method, path, body in (
        ("GET", "", None),
        ("POST", "/step", {"inputs": [1]}),
        ("POST", "/generate", {}),
        ("PUT", "/state", {"state": [[0, 0, 0], [[0, 0], [0, 0]]]}),
        ("POST", "/reset", None),
        ("DELETE", "", None),
    ):
        r = keyed.request(method, f"/v1/sessions/{sid}{path}", json=body, headers=bearer(BOB))
        message = error(r, 404, "session_id")
        assert message == unknown.replace("'no-such-id'", repr(sid))  # reveals nothing more
    r = keyed.post(f"/v1/sessions/{sid}/step", json={"inputs": [1]}, headers=bearer(ALICE))
    assert r.json()["steps"] == 1  # untouched by bob, still alice's
    assert keyed.delete(f"/v1/sessions/{sid}", headers=bearer(ALICE)).status_code == 204


def test_sessions_per_key_are_capped_429(keyed: TestClient) -> None:
    first = create(keyed, ALICE)
    create(keyed, ALICE)
    r = keyed.post("/v1/sessions", json={"model": "stepper"}, headers=bearer(ALICE))
    assert "SERVICE_MAX_SESSIONS_PER_KEY" in error(r, 429)
    assert int(r.headers["retry-after"]) >= 1
    create(keyed, BOB)  # bob has his own quota
    keyed.delete(f"/v1/sessions/{first}", headers=bearer(ALICE))
    create(keyed, ALICE)


def test_keys_file_with_names_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# operators\nops:{ALICE}\n\n{BOB}\n")
    client, store = serve(api_keys_file=path)
    with client:
        sid = create(client, BOB)
        assert create(client, ALICE)
        owner = store._sessions[sid].owner
        assert owner is not None and owner.startswith("key-") and BOB not in owner
        assert {s.owner for s in store._sessions.values()} == {"ops", owner}


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_keys": "short"}, "at least 16"),
        ({"api_keys": f"a:{ALICE},a:{BOB}"}, "names used twice: a"),
        ({"api_keys_file": Path("/no/such/keys")}, "SERVICE_API_KEYS_FILE /no/such/keys"),
        (
            {"api_keys": f"a:{ALICE},{BOB}", "admin_keys": "a, b"},
            "SERVICE_ADMIN_KEYS names b, but no API key has that name",
        ),
        ({"admin_keys": "ops"}, "SERVICE_ADMIN_KEYS names ops, but no API keys are configured"),
    ],
)
def test_unusable_key_configurations_are_refused_at_start(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        create_app(Settings(**settings), registry=fakes.registry())
    assert ALICE not in str(refused.value) and BOB not in str(refused.value)


def test_a_cross_site_request_is_403_before_any_work() -> None:
    client, store = serve()
    with client:
        r = client.post(
            "/v1/sessions",
            content=b'{"model": "stepper"}',
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert "http://evil.example" in error(r, 403, "Origin")
        assert "SERVICE_CORS_ORIGINS" in r.json()["error"]["message"]
        assert len(store._sessions) == 0
        r = client.options(
            "/v1/sessions",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        # no Origin (curl, SDKs): unaffected
        assert client.post("/v1/sessions", json={"model": "stepper"}).status_code == 201


def test_allowed_origins_get_cors_headers_and_preflight_answers() -> None:
    client, _ = serve(cors_origins="https://app.example, http://localhost:3000", api_keys=ALICE)
    with client:
        r = client.options(
            "/v1/sessions",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert r.status_code == 200, r.text  # preflights carry no key
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()
        r = client.post(
            "/v1/sessions",
            json={"model": "stepper"},
            headers={"Origin": "https://app.example", **bearer(ALICE)},
        )
        assert r.status_code == 201
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = client.get("/v1/models", headers={"Origin": "https://app.example"})
        assert r.status_code == 401  # a browser page can read why
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()
        error(client.get("/v1/models", headers={"Origin": "https://other.example"}), 403)


def test_same_origin_pages_are_trusted_only_on_hosts_that_cannot_be_rebound() -> None:
    client, _ = serve()
    with client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
            r = client.get("/v1/models", headers={"Host": host, "Origin": f"http://{host}"})
            assert r.status_code == 200, host
        # DNS rebinding: the attacker's name points at this server
        rebound = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
        error(client.get("/v1/models", headers=rebound), 403, "Origin")
    client, _ = serve(allowed_hosts="models.internal")
    with client:
        named = {"Host": "models.internal", "Origin": "http://models.internal"}
        assert client.get("/v1/models", headers=named).status_code == 200


def test_allowed_hosts_refuse_other_host_headers() -> None:
    client, _ = serve(allowed_hosts="models.internal,*.example.com")
    with client:
        for host in ("models.internal", "api.example.com:8443"):
            assert client.get("/v1/models", headers={"Host": host}).status_code == 200
        r = client.get("/v1/models", headers={"Host": "evil.example"})
        assert "SERVICE_ALLOWED_HOSTS" in error(r, 400, "Host")
        assert client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_a_retried_step_is_answered_from_the_first_and_applied_once() -> None:
    client, store = serve()
    with client:
        sid = create(client)
        step = f"/v1/sessions/{sid}/step"
        first = client.post(step, json={"inputs": [1, 2]}, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        again = client.post(step, json={"inputs": [1, 2]}, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert client.get(f"/v1/sessions/{sid}").json()["steps"] == 2
        # the same request as JSON written differently is the same request
        spaced = b'{ "inputs" : [1,2] }'
        r = client.post(step, content=spaced, headers={"Idempotency-Key": "k-1"})
        assert r.content == first.content
        r = client.post(step, json={"inputs": [3]}, headers={"Idempotency-Key": "k-1"})
        assert "already used on this session" in error(r, 422, "Idempotency-Key")
        r = client.post(step, json={"inputs": [3]})  # no key: applied
        assert r.json()["steps"] == 3


def test_every_change_accepts_a_key_and_errors_are_not_remembered() -> None:
    client, store = serve()
    with client:
        sid = create(client)
        base = f"/v1/sessions/{sid}"
        r = client.post(f"{base}/step", json={"inputs": [99]}, headers={"Idempotency-Key": "s"})
        error(r, 422, "inputs[0]")
        r = client.post(f"{base}/step", json={"inputs": [1]}, headers={"Idempotency-Key": "s"})
        assert r.json()["steps"] == 1  # the refused request applied nothing, kept nothing
        for method, path, body in (
            ("POST", "/generate", {"max_steps": 2}),
            ("PUT", "/state", {"state": [[2, 0, 0], [[0, 0], [0, 0]]]}),
            ("POST", "/reset", None),
        ):
            key = {"Idempotency-Key": f"k{path}"}
            first = client.request(method, base + path, json=body, headers=key)
            before = store._sessions[sid].revision
            again = client.request(method, base + path, json=body, headers=key)
            assert again.content == first.content and again.status_code == first.status_code
            assert store._sessions[sid].revision == before, path  # nothing saved again
        r = client.post(f"{base}/reset", headers={"Idempotency-Key": "x" * 256})
        assert "1 to 255 printable ASCII" in error(r, 422, "Idempotency-Key")


def test_only_the_last_keys_per_session_are_kept() -> None:
    client, _ = serve(idempotency_keys_per_session=2)
    with client:
        sid = create(client)
        step = f"/v1/sessions/{sid}/step"
        for key in ("a", "b", "c"):
            client.post(step, json={"inputs": [1]}, headers={"Idempotency-Key": key})
        client.post(step, json={"inputs": [1]}, headers={"Idempotency-Key": "b"})
        assert client.get(f"/v1/sessions/{sid}").json()["steps"] == 3
        r = client.post(step, json={"inputs": [1]}, headers={"Idempotency-Key": "a"})
        assert r.json()["steps"] == 4  # forgotten: applied as new


def test_another_key_cannot_read_a_remembered_answer(keyed: TestClient) -> None:
    sid = create(keyed, ALICE)
    step = f"/v1/sessions/{sid}/step"
    headers = {"Idempotency-Key": "k", **bearer(ALICE)}
    assert keyed.post(step, json={"inputs": [1]}, headers=headers).status_code == 200
    headers = {"Idempotency-Key": "k", **bearer(BOB)}
    error(keyed.post(step, json={"inputs": [1]}, headers=headers), 404, "session_id")


def test_access_log_shows_a_hash_of_session_ids(caplog: pytest.LogCaptureFixture) -> None:
    sid = "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA"
    assert redact(f"/v1/sessions/{sid}/step?x=1") == f"/v1/sessions/{log_id(sid)}/step?x=1"
    assert redact("/v1/sessions") == "/v1/sessions"
    client, _ = serve()
    with client, caplog.at_level("INFO", logger="service.access"):
        assert client.post(f"/v1/sessions/{sid}/step?x=1", json={"inputs": [1]}).status_code == 404
    (record,) = [r for r in caplog.records if r.name == "service.access"]
    assert f"/v1/sessions/{log_id(sid)}/step?x=1" in record.getMessage()
    assert sid not in record.getMessage() and sid not in str(record.__dict__)


def test_the_openapi_schema_documents_the_answers_given_before_routing() -> None:
    client, _ = serve(api_keys=ALICE, allowed_hosts="models.internal")
    with client:
        paths = client.get("/openapi.json", headers={"Host": "models.internal"}).json()["paths"]
    step = paths["/v1/sessions/{session_id}/step"]["post"]["responses"]
    assert {"400", "401", "403"} <= set(step)
    assert step["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    readyz = paths["/readyz"]["get"]["responses"]
    assert "401" not in readyz and "400" not in readyz and "403" in readyz
    client, _ = serve()
    with client:
        paths = client.get("/openapi.json").json()["paths"]
    assert "401" not in paths["/v1/models"]["get"]["responses"]


def test_only_the_keys_named_in_admin_keys_may_use_the_admin_routes() -> None:
    client, _ = serve(api_keys=f"alice:{ALICE},bob:{BOB}", admin_keys="alice")
    with client:
        error(client.post("/v1/admin/reload"), 401, "Authorization")
        r = client.post("/v1/admin/reload", headers=bearer(BOB))
        assert "SERVICE_ADMIN_KEYS" in error(r, 403, "Authorization")
        assert r.json()["error"]["code"] == "forbidden" and BOB not in r.text
        # the same route by another spelling of its path: the same check
        r = client.post("/v1/admin/reload/", headers=bearer(BOB), follow_redirects=True)
        error(r, 403, "Authorization")
        # alice passes (the fakes have no model store: the route itself answers 409)
        assert "not a model store" in error(
            client.post("/v1/admin/reload", headers=bearer(ALICE)), 409
        )
        assert client.get("/v1/models", headers=bearer(BOB)).status_code == 200
    unnamed = "key-" + hashlib.sha256(BOB.encode()).hexdigest()[:8]
    client, _ = serve(api_keys=f"alice:{ALICE},{BOB}", admin_keys=unnamed)
    with client:
        error(client.post("/v1/admin/reload", headers=bearer(ALICE)), 403)
        error(client.post("/v1/admin/reload", headers=bearer(BOB)), 409)


def test_with_no_admin_keys_named_no_key_may_and_without_keys_anyone_may(
    keyed: TestClient,
) -> None:
    for key in (ALICE, BOB):
        error(keyed.post("/v1/admin/reload", headers=bearer(key)), 403, "Authorization")
    client, _ = serve()
    with client:
        error(client.post("/v1/admin/reload"), 409)  # unchanged: the route answers


def test_probes_tell_their_details_only_to_a_valid_key(
    keyed: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = bearer("wrong-key-0123456789abcdef")
    for headers in ({}, wrong, {"X-API-Key": "short"}):
        r = keyed.get("/readyz", headers=headers)
        assert r.status_code == 200 and r.json() == {"status": "ready", "detail": {}}, r.text
        r = keyed.get("/healthz", headers=headers)
        assert r.status_code == 200 and r.json() == {"status": "ok", "detail": {}}, r.text
    for headers in (bearer(ALICE), {"X-API-Key": BOB}):
        detail = keyed.get("/readyz", headers=headers).json()["detail"]
        assert detail["models"]["counter"] == ["1", "2"] and detail["sessions"] == 0
    runtime = keyed.app.state.runtime  # type: ignore[attr-defined]
    failures = {"counter/1 predict": "RuntimeError"}
    monkeypatch.setattr(runtime.engines, "failures", lambda: failures)
    for path in ("/healthz", "/readyz"):
        r = keyed.get(path)
        assert r.status_code == 503 and r.json() == {"status": "failed", "detail": {}}
        assert r.headers["retry-after"] == "1"
        r = keyed.get(path, headers=bearer(ALICE))
        assert r.status_code == 503 and "counter/1 predict" in r.json()["detail"]["failed"]
    monkeypatch.undo()
    runtime.start_draining()
    r = keyed.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "draining", "detail": {}}
    assert keyed.get("/readyz", headers=bearer(ALICE)).json()["detail"]["shutdown"]


def test_without_keys_the_probes_tell_their_details_as_before() -> None:
    client, _ = serve()
    with client:
        detail = client.get("/readyz").json()["detail"]
        assert set(detail) == {"models", "session_store", "sessions"}


def test_a_redirect_never_names_the_host_the_client_sent() -> None:
    client, _ = serve()
    with client:
        for path, location in (
            ("/v1/models/", "/v1/models"),
            ("/v1/models/counter/?a=1&b=%0A", "/v1/models/counter?a=1&b=%0A"),
            ("/healthz/", "/healthz"),
        ):
            r = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
            assert r.status_code == 307 and r.headers["location"] == location, path
            assert "evil.example" not in str(r.headers)
        r = client.get("/v1/models/", headers={"Host": "evil.example"}, follow_redirects=True)
        assert r.status_code == 200 and r.json()["models"]
    assert relative(b"http://evil.example//other.example/x?y#z") == b"/other.example/x?y#z"
    assert relative(b"https://h") == b"/" and relative(b"/v1/models?a") == b"/v1/models?a"


def test_the_openapi_document_says_who_may_use_the_admin_routes() -> None:
    keyed = create_app(Settings(api_keys=f"alice:{ALICE}", admin_keys="alice")).openapi()
    forbidden = keyed["paths"]["/v1/admin/reload"]["post"]["responses"]["403"]
    assert forbidden["description"].startswith("forbidden: ")
    assert "SERVICE_ADMIN_KEYS" in forbidden["description"]
    assert forbidden["content"]["application/json"]["example"]["error"]["code"] == "forbidden"
    models = keyed["paths"]["/v1/models"]["get"]["responses"]["403"]
    assert models["content"]["application/json"]["example"]["error"]["code"] == "origin_not_allowed"
    open_ = create_app(Settings()).openapi()["paths"]["/v1/admin/reload"]["post"]["responses"]
    assert open_["403"]["description"].startswith("origin_not_allowed")
