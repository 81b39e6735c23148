"""Schemathesis over the whole OpenAPI schema, against a real server process on the
shipped models over real HTTP: no request may get a 5xx, and every JSON body with an
"error" key has the documented shape (ErrorBody).

Two passes over every operation, each with a bounded number of generated examples
(SCHEMATHESIS_MAX_EXAMPLES, default 20, per operation; derandomized when CI is set):

- the schema as it is: schemathesis's coverage phase (boundary values, missing and
  wrong-typed fields, unsupported methods, content types) then random valid and
  invalid requests;
- aimed at what exists: random path parameters and model names almost never name a real
  model or session, and random tokens are almost never valid ones, so there every case
  gets a real model name or a fresh session of a real model, and either a whole valid
  body or valid tokens, sources, states or `max_steps` in place of some generated fields
  (the others stay as generated). The fuzzed requests then reach the models, the
  tokenizers and the session code instead of stopping at a 404 or at the first token.

Nothing is excluded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.config import Settings
from service.errors import plain_errors
from tests.integration.conftest import Server, free_port, start_server, wait_ready

pytestmark = pytest.mark.integration

IN_CI = bool(os.environ.get("CI"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # the machine is shared: timing says nothing here
    derandomize=IN_CI,
    database=None,
    suppress_health_check=list(HealthCheck),
)
MODELS = ("reverse", "dates", "memory")
ERROR_KEYS = {"code", "message", "field"}

# The schema as the app builds it (no models needed, no TensorFlow), so that every
# operation is its own test item; test_the_server_serves_this_schema checks that the
# server process serves exactly this. (schemathesis.pytest.from_fixture, which would read
# it from the server, fails on pytest 9.2: it sets Function._nodeid, gone in 9.2.)
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[str, Server]]:
    """Its own server: what the fuzzing creates (sessions) stays out of other tests."""
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        yield url, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(fuzz_server: tuple[str, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_server[0], timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def models(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """What the server says of each shipped model (sides, state shapes)."""
    info = {}
    for name in MODELS:
        r = http.get(f"/v1/models/{name}")
        assert r.status_code == 200, r.text
        info[name] = r.json()
    return info


def test_the_server_serves_this_schema(http: httpx.Client) -> None:
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(OPENAPI))


# the probes answer 503 with their own body (Health), documented as such
OWN_ERROR_BODIES = {"/healthz", "/readyz"}


def error_body_shape(ctx: Any, response: Any, case: Any) -> None:
    """A JSON object with an "error" key is ErrorBody: {"error": {"code": str, "message":
    str, "field"?: str}}, nothing else, and only on a 4xx or 5xx; and every 4xx or 5xx
    (but the probes') has one, as the README promises ("every error has the same shape").
    On the paths of the Open Inference Protocol and TF Serving: {"error": "<message>"}."""
    failed = (
        response.status_code >= 400
        and case.operation.path not in OWN_ERROR_BODIES
        and case.method.upper() != "HEAD"  # no body by definition
    )
    content_type = response.headers.get("content-type", [""])[0]
    if "json" not in content_type or not response.content:
        assert not failed, f"{response.status_code} without a JSON body ({content_type!r})"
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code}: not JSON: {response.content!r}") from None
    if not isinstance(body, dict) or "error" not in body:
        assert not failed, f"{response.status_code} without an 'error': {response.text[:200]}"
        return
    error = body["error"]
    assert set(body) == {"error"}, f"keys beside 'error': {sorted(body)}"
    assert response.status_code >= 400, f"an error body with status {response.status_code}"
    if plain_errors(case.operation.path):  # the Open Inference Protocol's and TF Serving's
        assert isinstance(error, str) and error, f"'error' is {error!r}, not a message"
        return
    assert isinstance(error, dict), f"'error' is {type(error).__name__}, not an object"
    extra = set(error) - ERROR_KEYS
    assert not extra, f"unexpected keys in 'error': {sorted(extra)}"
    assert isinstance(error.get("code"), str) and error["code"], f"code: {error.get('code')!r}"
    assert isinstance(error.get("message"), str) and error["message"], "no message"
    assert "field" not in error or isinstance(error["field"], str), f"field: {error['field']!r}"


CHECKS = [not_a_server_error, error_body_shape]


def call(case: schemathesis.Case, server: tuple[str, Server]) -> None:
    try:
        case.call_and_validate(base_url=server[0], timeout=60, checks=CHECKS)
    except (Exception, BaseExceptionGroup) as exc:  # checks fail with a BaseExceptionGroup
        # the server's own account of a 5xx: its traceback
        exc.add_note("server log (tail):\n" + server[1].output()[-4000:])
        raise


@schema.parametrize()
@FUZZ
def test_schema_gets_no_server_errors(
    case: schemathesis.Case, fuzz_server: tuple[str, Server]
) -> None:
    call(case, fuzz_server)


# ------------------------------------------------------------------ aimed pass


def tokens(info: dict[str, Any], max_size: int = 12) -> st.SearchStrategy[Any]:
    """A valid source for a model: text where it has a tokenizer, ids, or vocabulary
    strings (one side's size and length bound it)."""
    side = info["source"]
    size = min(max_size, side["length"] or max_size)
    ids = st.lists(st.integers(0, side["cardinality"] - 1), min_size=1, max_size=size)
    vocabulary = side["vocabulary"]
    if not vocabulary:
        return ids
    words = st.lists(st.sampled_from(vocabulary), min_size=1, max_size=size)
    joiner = "" if side["tokenizer"] == "char" else " "
    return ids | words | words.map(joiner.join)


def state(info: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    """A state of the model's shapes, any finite float32 values."""
    values = st.floats(width=32, allow_nan=False, allow_infinity=False)
    shapes = info["state_shapes"]
    assert all(len(shape) == 1 for shape in shapes)  # the shipped models: LSTM (h, c)
    return st.tuples(*(st.lists(values, min_size=s[0], max_size=s[0]) for s in shapes)).map(list)


def session_body(info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    body: dict[str, Any] = {"model": info["name"]}
    if info["kind"] == "seq2seq":
        body["source"] = data.draw(tokens(info), label="session source")
    elif data.draw(st.booleans(), label="initial state"):
        body["state"] = data.draw(state(info), label="session state")
    return body


def aim(
    case: schemathesis.Case,
    data: st.DataObject,
    http: httpx.Client,
    models: dict[str, dict[str, Any]],
) -> None:
    """Point the case at a real model or a fresh session of one, and make its body valid,
    or some of its fields (drawn: shrinks and replays like the rest of the case)."""
    name = data.draw(st.sampled_from(MODELS), label="model")
    info = models[name]
    params = case.path_parameters
    if params is not None:
        if "name" in params:
            params["name"] = name
        if "version" in params:
            params["version"] = "1"
        if "session_id" in params:
            created = http.post("/v1/sessions", json=session_body(info, data))
            assert created.status_code == 201, created.text
            params["session_id"] = created.json()["session_id"]
    body = case.body
    if not isinstance(body, dict):
        return
    path = case.operation.path
    if data.draw(st.booleans(), label="valid body"):
        body.clear()
        body.update(valid_body(path, info, data))
        return
    # or only some fields made valid, the others left as generated
    if path in ("/predict", "/v1/sessions"):
        body["model"] = name
    if "inputs" in body and data.draw(st.booleans(), label="valid inputs"):
        body["inputs"] = data.draw(inputs(path, info), label="inputs")
    if "max_steps" in body and data.draw(st.booleans(), label="valid max_steps"):
        body["max_steps"] = data.draw(st.integers(1, 40), label="max_steps")
    if "state" in body and data.draw(st.booleans(), label="valid state"):
        body["state"] = data.draw(state(info), label="state")


def inputs(path: str, info: dict[str, Any]) -> st.SearchStrategy[Any]:
    one = tokens(info)
    return one if path.endswith("/step") else st.lists(one, min_size=1, max_size=8)


def valid_body(path: str, info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A request body the operation accepts for this model (for /generate on a step model
    with nothing to feed back yet, a 409; that is documented)."""
    if path == "/v1/sessions":
        return session_body(info, data)
    if path.endswith("/state"):
        return {"state": data.draw(state(info), label="state")}
    optional: dict[str, st.SearchStrategy[Any]] = {"return_probabilities": st.booleans()}
    body: dict[str, Any] = {}
    if path.endswith("/predict") or path.endswith("/step"):
        body["inputs"] = data.draw(inputs(path, info), label="inputs")
    if path.endswith("/predict") or path.endswith("/generate"):
        optional["max_steps"] = st.integers(1, 40)
    if path == "/predict":
        body["model"] = info["name"]
        optional["version"] = st.sampled_from(["1", 1])
    for key, values in optional.items():
        if data.draw(st.booleans(), label=f"with {key}"):
            body[key] = data.draw(values, label=key)
    return body


@schema.given(data=st.data())  # (with given, schemathesis runs no coverage phase: see above)
@schema.parametrize()
@FUZZ
def test_real_models_and_sessions_get_no_server_errors(
    case: schemathesis.Case,
    data: st.DataObject,
    http: httpx.Client,
    models: dict[str, dict[str, Any]],
    fuzz_server: tuple[str, Server],
) -> None:
    aim(case, data, http, models)
    call(case, fuzz_server)
