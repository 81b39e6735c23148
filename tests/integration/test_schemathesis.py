"""Schemathesis over the whole OpenAPI document, with every check it has, against a real
server process on the shipped models over real HTTP: the document must say what the
server does (statuses, bodies, headers, content types, which requests are valid), and
every error body has the documented shape (error_body_shape, our own check).

The server runs with API keys on (so the schema declares its security and
`ignored_auth` has something to check) and with small limits (so the generated
boundary values reach them: the schema states them as maxItems/maximum from the same
settings). Three tests, each with a bounded number of generated examples
(SCHEMATHESIS_MAX_EXAMPLES, default 20, per operation; derandomized when CI is set):

- the schema as it is: schemathesis's examples, coverage (boundary values, missing and
  wrong-typed fields, unsupported methods) and fuzzing phases;
- aimed at what exists: random path parameters almost never name a real model or
  session and random tokens are almost never valid ones, so every case gets a real
  model name or a fresh session of a real model, and (if it was generated as valid)
  a whole valid body or valid tokens, sources, states, tensors or `max_steps` in place
  of some generated fields. The requests then reach the models, the tokenizers and the
  session code instead of stopping at a 404 or at the first token;
- stateful: sequences of calls that follow the document's links (a created session's
  id into its routes), for the checks that need them (use_after_free,
  ensure_resource_availability).

Exclusions (EXCLUDED below, each with its reason): a schema-valid request that the
server refuses for a rule JSON Schema cannot state (one that depends on the model, on
the session's state, or on two fields at once). Each is recognised by the server's own
message for that rule, and excuses only positive_data_acceptance for that response.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api.errors import answers_plain
from service.app import create_app
from service.config import Settings
from tests.harness import Server
from tests.harness.early import Plan
from tests.integration.conftest import EARLY

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
KEY = "fuzz:schemathesis-fuzz-key-0123456789"
AUTH = {"Authorization": "Bearer " + KEY.split(":", 1)[1]}
# small enough that generated boundary values reach them; the work and probability
# bounds are reachable too (8 sequences x 40 steps x 51 classes), so their exclusions
# are exercised
LIMITS = {
    "max_batch_size": 8,
    "max_sequence_length": 64,
    "max_decode_steps": 40,
    "max_steps_per_request": 256,
    "max_probabilities_per_request": 4096,
}
# the key may use the admin routes too, so the fuzzing reaches a successful reload
SETTINGS = {**LIMITS, "api_keys": KEY, "admin_keys": "fuzz", "default_model": "reverse"}
ERROR_KEYS = {"code", "message", "field"}

# The document as the app builds it with the server's settings (no models needed, no
# TensorFlow), so that every operation is its own test item;
# test_the_server_serves_this_schema checks that the server process serves exactly this.
# (schemathesis.pytest.from_fixture, which would read it from the server, fails on
# pytest 9.2: it sets Function._nodeid, gone in 9.2.)
OPENAPI = create_app(Settings(**SETTINGS)).openapi()  # type: ignore[arg-type]
schema = schemathesis.openapi.from_dict(OPENAPI)


EARLY.plan("fuzz_server", Plan({f"SERVICE_{k.upper()}": str(v) for k, v in SETTINGS.items()}))


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[str, Server]]:
    """Its own server: what the fuzzing creates (sessions) stays out of other tests."""
    server = EARLY.server("fuzz_server")
    try:
        yield server.url, server
    finally:
        EARLY.release("fuzz_server")


@pytest.fixture(scope="module")
def http(fuzz_server: tuple[str, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_server[0], headers=AUTH, timeout=60) as client:
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


def test_every_check_runs() -> None:
    """call_and_validate without `checks=` runs every enabled built-in check; all are."""
    load_all_checks()
    names = {check.__name__ for check in CHECKS.get_all()}
    assert names >= {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
    }
    config = schema.config.checks_config_for(operation=None, phase=None)
    assert all(config.get_by_name(name=name).enabled for name in names)


# ------------------------------------------------------------------ checks


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
    if answers_plain(case.operation.path):  # the Open Inference Protocol's and TF Serving's
        assert isinstance(error, str) and error, f"'error' is {error!r}, not a message"
        return
    assert isinstance(error, dict), f"'error' is {type(error).__name__}, not an object"
    extra = set(error) - ERROR_KEYS
    assert not extra, f"unexpected keys in 'error': {sorted(extra)}"
    assert isinstance(error.get("code"), str) and error["code"], f"code: {error.get('code')!r}"
    assert isinstance(error.get("message"), str) and error["message"], "no message"
    assert "field" not in error or isinstance(error["field"], str), f"field: {error['field']!r}"


# Schema-valid requests the server rightly refuses, by a rule JSON Schema cannot state:
# the server's message for that rule (a regular expression) -> why no schema says it.
EXCLUDED = {
    # depends on the model (GET /v1/models/{name} says which it has)
    r"token (\d+|<an integer of about \d+ digits>) is out of range": "a token id beyond "
    "this model's vocabulary (the schema says ids are >= 0; the upper bound is per model)",
    r"is not in the (source|target) vocabulary": "a token or character not in this "
    "model's vocabulary",
    r"is a string but the model has no vocabulary": "a string token for a model of ids",
    r"text is accepted only where the model's \w+ declares a tokenizer": "text for a model "
    "without a tokenizer",
    r"the model was trained on sources of \d+: source.length": "a source longer than this "
    "model's source.length",
    r"max_steps: not used by": "max_steps on a step model",
    r"is a step model, which /predict runs on the given inputs": "beam or sample on a step "
    "model's predict",
    r"whose decoder attends over the encoded source": "an attention model's session "
    "created without a source",
    r"is a step model with no encoder": "a source for a step model's session",
    r"expected \d+ state tensors|expected a list of \d+ \(state shape": "a state of "
    "another shape than this model's",
    r"is not an input of '|is not an output of '": "a V2 input or output this model does "
    "not have ('text' where it has no tokenizer)",
    # two fields at once
    r"values, but shape \[[\d, ]*\] holds": "a V2 shape whose product is not the number "
    "of data values",
    r"only with strategy '(beam|sample)'": "a decoding option of another strategy than the "
    "one given (or the default greedy)",
    r"at most beam_width": "num_return_sequences above beam_width",
    r"return_probabilities: not with strategy 'beam'": "probabilities asked of a beam search",
    r"a streamed request decodes one input": "a stream asked for several inputs",
    r'Idempotency-Key: not with "stream": true': "an Idempotency-Key on a streamed generate",
    r"is asked for twice": "a V2 output named twice (uniqueItems cannot compare names)",
    r"\(SERVICE_MAX_STEPS_PER_REQUEST\)|\(SERVICE_MAX_PROBABILITIES_PER_REQUEST\)": "the "
    "work bound multiplies sequences by max_steps (and by the model's classes)",
    # the session's history
    r"was already used on this session for a different request": "an Idempotency-Key "
    "sent again on the same session with another request (the stateful test reuses values)",
    r"has not started or has ended": "a V2 sequence continued that was never started",
    r"steps the sequence by its 'tokens'": "a step model's V2 sequence given no input",
}
# JSON Schema calls 2.0 an integer; the server (pydantic, strict) does not
INTEGRAL_FLOAT = (
    r"not a float such as 2\.0|got float|Input should be a valid integer|is not a U?INT\d+ value"
)


def error_message(response: Any) -> str:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(error["message"] if isinstance(error, dict) else error)


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


def exclusion(case: Any, response: Any) -> str | None:
    """Why a refused schema-valid request is no failure of the document (None: it is)."""
    if case.media_type == "application/octet-stream":
        # any bytes fit `format: binary`; binary tensor data is a JSON header, its length
        # in a header, then the tensors' bytes, which no schema can say
        return "binary tensor data that is not"
    message = error_message(response)
    for pattern, reason in EXCLUDED.items():
        if re.search(pattern, message):
            return reason
    if re.search(INTEGRAL_FLOAT, message) and _has_integral_float(case.body):
        return "an integral float for an integer"
    return None


def accepted_unless_excluded(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, but for the EXCLUDED refusals."""
    if response.status_code in (400, 422) and exclusion(case, response) is not None:
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


def _segment_parameters() -> dict[tuple[str, str], set[str]]:
    """(method, path) -> its path parameters whose schema excludes ':' (`{x:segment}`)."""
    found: dict[tuple[str, str], set[str]] = {}
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            names = {
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "path" and ":" in p.get("schema", {}).get("pattern", "")
            }
            if names:
                found[(method.upper(), path)] = names
    return found


SEGMENT_PARAMETERS = _segment_parameters()


def tf_serving_path(case: schemathesis.Case) -> bool:
    """A `{x:segment}` parameter holding ':' (negative data: its schema's pattern excludes
    it) makes the path another route's (TF Serving's `{name}:{verb}`, or none), whose
    answers are not this operation's. (Values may come percent-encoded already.)"""
    names = SEGMENT_PARAMETERS.get((case.method.upper(), case.path), set())
    values = case.path_parameters or {}
    return any(":" in unquote(str(values.get(name, ""))) for name in names)


def call(case: schemathesis.Case, server: tuple[str, Server]) -> None:
    if tf_serving_path(case):  # another route's answer: refused, in some protocol's shape
        response = case.call(base_url=server[0], headers=AUTH, timeout=60)
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json(), response.text
        return
    try:
        case.call_and_validate(
            base_url=server[0],
            headers=AUTH,
            timeout=60,
            # every check schemathesis has, positive_data_acceptance with the exclusions
            excluded_checks=[positive_data_acceptance],
            additional_checks=[accepted_unless_excluded, error_body_shape],
        )
    except (Exception, BaseExceptionGroup) as exc:  # checks fail with a BaseExceptionGroup
        # the server's own account of a 5xx: its traceback
        exc.add_note("server log (tail):\n" + server[1].output()[-4000:])
        raise


@schema.parametrize()
@FUZZ
def test_the_schema_tells_the_truth(
    case: schemathesis.Case, fuzz_server: tuple[str, Server]
) -> None:
    call(case, fuzz_server)


# ------------------------------------------------------------------ aimed pass


def _ids(side: dict[str, Any], size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, side["cardinality"] - 1), min_size=1, max_size=size)


def tokens(info: dict[str, Any], side_name: str = "source") -> st.SearchStrategy[Any]:
    """A valid sequence for one side of a model: text where it has a tokenizer, ids, or
    vocabulary strings (the side's length and the sequence limit bound it)."""
    side = info[side_name]
    size = min(12, side["length"] or 12)
    ids = _ids(side, size)
    vocabulary = side["vocabulary"]
    if not vocabulary:
        return ids
    words = st.lists(st.sampled_from(vocabulary), min_size=1, max_size=size)
    if not side["tokenizer"]:
        return ids | words
    joiner = "" if side["tokenizer"] == "char" else " "
    text = words.map(joiner.join).filter(str.strip)
    return ids | words | text


def state(info: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    """A state of the model's shapes, any finite float32 values."""
    values = st.floats(width=32, allow_nan=False, allow_infinity=False)
    shapes = info["state_shapes"]
    assert all(len(shape) == 1 for shape in shapes)  # the shipped models: LSTM (h, c)
    return st.tuples(*(st.lists(values, min_size=s[0], max_size=s[0]) for s in shapes)).map(list)


def seq2seq(info: dict[str, Any]) -> bool:
    return bool(info["kind"] == "seq2seq")


def session_body(info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    body: dict[str, Any] = {"model": info["name"]}
    if seq2seq(info):
        body["source"] = data.draw(tokens(info), label="session source")
    elif data.draw(st.booleans(), label="initial state"):
        body["state"] = data.draw(state(info), label="session state")
    return body


def max_steps(info: dict[str, Any]) -> st.SearchStrategy[int | None]:
    """Decode steps within the work bound (seq2seq only)."""
    if not seq2seq(info):
        return st.none()
    return st.none() | st.integers(1, 4)


def batch(info: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(tokens(info), min_size=1, max_size=3)


def native_body(path: str, info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A request body the native operation accepts for this model (for /generate on a
    step model with nothing to feed back yet, a 409; that is documented)."""
    if path == "/v1/sessions":
        return session_body(info, data)
    if path.endswith("/state"):
        return {"state": data.draw(state(info), label="state")}
    body: dict[str, Any] = {}
    if path.endswith("/predict"):
        body["inputs"] = data.draw(batch(info), label="inputs")
    if path.endswith("/step"):
        side = "target" if seq2seq(info) else "source"
        body["inputs"] = data.draw(tokens(info, side), label="inputs")
    if path.endswith("/predict") or path.endswith("/generate"):
        body["max_steps"] = data.draw(max_steps(info), label="max_steps")
    if path == "/predict":
        body["model"] = info["name"]
        body["version"] = data.draw(st.sampled_from([None, "1", 1]), label="version")
    if data.draw(st.booleans(), label="with return_probabilities"):
        body["return_probabilities"] = True
    return {k: v for k, v in body.items() if v is not None}


def tf_body(info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    rows = data.draw(batch(info), label="instances")
    form = data.draw(st.sampled_from(["instances", "inputs", "named"]), label="format")
    body: dict[str, Any] = {"inputs": {"tokens": rows}} if form == "named" else {form: rows}
    body["max_steps"] = data.draw(max_steps(info), label="max_steps")
    body["signature_name"] = data.draw(
        st.sampled_from([None, "", "serving_default"]), label="signature_name"
    )
    return {k: v for k, v in body.items() if v is not None}


def in_sequence(body: dict[str, Any]) -> bool:
    """Whether a V2 request's parameters name a sequence (Triton: 0 and "" do not)."""
    parameters = body.get("parameters")
    return isinstance(parameters, dict) and parameters.get("sequence_id") not in (None, 0, "")


def v2_body(info: dict[str, Any], data: st.DataObject, one_row: bool = False) -> dict[str, Any]:
    """A V2 inference request: token ids [batch, length] or texts, wanted outputs, and
    maybe a fresh sequence (batch 1, started here). `one_row`: for a request already in
    a sequence."""
    sequence = data.draw(st.booleans(), label="sequence")
    rows = 1 if sequence or one_row else data.draw(st.integers(1, 3), label="rows")
    source = info["source"]
    if source["tokenizer"] and data.draw(st.booleans(), label="text"):
        texts = [data.draw(tokens(info).filter(lambda t: isinstance(t, str))) for _ in range(rows)]
        tensor = {"name": "text", "datatype": "BYTES", "shape": [rows], "data": texts}
    else:
        length = data.draw(st.integers(1, min(12, source["length"] or 12)), label="length")
        ids = st.lists(
            st.integers(0, source["cardinality"] - 1),
            min_size=rows * length,
            max_size=rows * length,
        )
        datatype = data.draw(st.sampled_from(["INT64", "INT32"]), label="datatype")
        flat = data.draw(ids, label="ids")
        tensor = {"name": "tokens", "datatype": datatype, "shape": [rows, length], "data": flat}
    outputs = ["tokens", "probabilities"] + (["text"] if info["target"]["tokenizer"] else [])
    wanted = data.draw(st.lists(st.sampled_from(outputs), unique=True), label="outputs")
    body: dict[str, Any] = {"inputs": [tensor]}
    if wanted:
        body["outputs"] = [{"name": name} for name in wanted]
    parameters: dict[str, Any] = {}
    steps = data.draw(max_steps(info), label="max_steps")
    if steps is not None:
        parameters["max_steps"] = steps
    if sequence:
        sequence_id = data.draw(st.integers(1, 2**63), label="sequence_id")
        parameters.update(sequence_id=sequence_id, sequence_start=True)
        parameters["sequence_end"] = data.draw(st.booleans(), label="sequence_end")
    if parameters:
        body["parameters"] = parameters
    return body


def valid_body(path: str, info: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    if path.endswith("/infer"):
        return v2_body(info, data)
    if path.endswith(":predict"):
        return tf_body(info, data)
    return native_body(path, info, data)


def valid_inputs(path: str, body: dict[str, Any], info: dict[str, Any], data: st.DataObject) -> Any:
    if path.endswith("/infer"):
        # a generated sequence id (e.g. "0", a string) keeps the request in a sequence,
        # where the schema allows one row
        return v2_body(info, data, one_row=in_sequence(body))["inputs"]
    if path.endswith("/step"):
        return native_body(path, info, data)["inputs"]
    return data.draw(batch(info), label="inputs")


def aim(
    case: schemathesis.Case,
    data: st.DataObject,
    http: httpx.Client,
    models: dict[str, dict[str, Any]],
) -> None:
    """Point the case at a real model or a fresh session of one and, if it was generated
    as a valid request, make its body valid for that model, or some of its fields (drawn:
    shrinks and replays like the rest of the case). An invalid case keeps its invalid
    parts, so it stays invalid: the server must still refuse it."""
    meta = case.meta
    assert meta is not None
    name = data.draw(st.sampled_from(MODELS), label="model")
    info = models[name]
    params = case.path_parameters
    if params and not meta.is_negative_at(ParameterLocation.PATH):
        for key in ("name", "model_name"):
            if key in params:
                params[key] = name
        for key in ("version", "model_version"):
            if key in params:
                params[key] = "1"
        if "session_id" in params:
            created = http.post("/v1/sessions", json=session_body(info, data))
            assert created.status_code == 201, created.text
            params["session_id"] = created.json()["session_id"]
    body = case.body
    if meta.generation.mode.is_negative or not isinstance(body, dict):
        return
    path = case.operation.path
    if data.draw(st.booleans(), label="valid body"):
        body.clear()
        body.update(valid_body(path, info, data))
        return
    # or only some fields made valid, the others left as generated (a null stays null:
    # TF Serving's instances and inputs are exclusive, and null means absent)
    if path in ("/predict", "/v1/sessions"):
        body["model"] = name
    if body.get("inputs") is not None and data.draw(st.booleans(), label="valid inputs"):
        body["inputs"] = valid_inputs(path, body, info, data)
    if body.get("max_steps") is not None and data.draw(st.booleans(), label="valid max_steps"):
        body["max_steps"] = data.draw(st.integers(1, 4), label="max_steps")
    if body.get("state") is not None and data.draw(st.booleans(), label="valid state"):
        body["state"] = data.draw(state(info), label="state")


@schema.given(data=st.data())  # (with given, schemathesis runs no coverage phase: see above)
@schema.parametrize()
@FUZZ
def test_real_models_and_sessions_are_as_documented(
    case: schemathesis.Case,
    data: st.DataObject,
    http: httpx.Client,
    models: dict[str, dict[str, Any]],
    fuzz_server: tuple[str, Server],
) -> None:
    aim(case, data, http, models)
    call(case, fuzz_server)


# ------------------------------------------------------------------ stateful


# a valid new session of each model, in turn, for the stateful test
NEW_SESSIONS = [
    {"model": "reverse", "source": [20, 36, 40, 10, 34, 28]},
    {"model": "dates", "source": "21 Nov 2026"},
    {"model": "memory"},
]


def test_sequences_of_calls_are_as_documented(fuzz_server: tuple[str, Server]) -> None:
    """Sessions created (of real models: generated model names never are) and then used
    through the links of the answer: step, generate, state, reset, get, delete, and
    after a delete, use_after_free's 404."""
    url, server = fuzz_server
    turns = itertools.cycle(NEW_SESSIONS)

    class Calls(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            meta = case.meta
            if case.operation.path == "/v1/sessions" and meta and meta.generation.mode.is_positive:
                case.body = dict(next(turns))

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": url, "headers": AUTH, "timeout": 60}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            try:
                case.validate_response(
                    response,
                    excluded_checks=[positive_data_acceptance],
                    additional_checks=[accepted_unless_excluded, error_body_shape],
                    headers=AUTH,
                    transport_kwargs=kwargs,
                    recorder=self.recorder,
                )
            except (Exception, BaseExceptionGroup) as exc:
                exc.add_note("server log (tail):\n" + server.output()[-4000:])
                raise

    Calls.run(settings=settings(FUZZ, stateful_step_count=10))
