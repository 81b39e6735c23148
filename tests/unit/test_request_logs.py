"""X-Request-ID, the access log line and the JSON log format, through HTTP (in-process
ASGI) on numpy fakes, with the server's own log handler on the root logger."""

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from service.api.middleware import access_log
from service.app import create_app
from service.config import Settings
from service.observability import logs
from service.sessions.memory import MemorySessionStore
from service.sessions.store import log_id
from tests import fakes

pytestmark = pytest.mark.unit

KEY = "request-log-key-0123456789"
HEX_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_FIELDS = {"method", "path", "route", "status", "duration_ms", "model", "client"}


class Output:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        """Every line, each one JSON object."""
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def output() -> Iterator[Output]:
    out = Output()
    handler = logs.handler("json", out.stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def serve(**settings: Any) -> TestClient:
    config = Settings(**settings)
    store = MemorySessionStore(config.session_ttl_seconds, config.max_sessions)
    app = create_app(config, registry=fakes.registry(), store=store)
    worker = logging.getLogger("service")

    async def boom() -> None:
        worker.warning("about to fail")
        await to_thread.run_sync(worker.warning, "from a worker thread")
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    return TestClient(app, raise_server_exceptions=False)


def test_the_request_id_is_echoed_or_made() -> None:
    with serve() as client:
        given = "req-1:a/b=c~" + "x" * 100
        r = client.get("/v1/models", headers={"X-Request-ID": given})
        assert r.status_code == 200 and r.headers["x-request-id"] == given
        made = client.get("/v1/models").headers["x-request-id"]
        assert HEX_ID.fullmatch(made)
        assert client.get("/v1/models").headers["x-request-id"] != made
        for bad in ("has space", "x" * 129, "tab\there", "caf\u00e9".encode("latin-1")):
            r = client.get("/v1/models", headers={"X-Request-ID": bad})  # type: ignore[dict-item]
            assert HEX_ID.fullmatch(r.headers["x-request-id"]), bad
        assert r.headers.get_list("x-request-id") == [r.headers["x-request-id"]]  # just one


def test_every_answer_carries_it_refusals_before_routing_included() -> None:
    settings = {"api_keys": f"ops:{KEY}", "max_body_bytes": 1024, "cors_origins": "https://a.b"}
    with serve(**settings) as client:
        rid = {"X-Request-ID": "r-1"}
        keyed = {**rid, "X-API-Key": KEY}
        answers = {
            401: client.post("/predict", json={"inputs": [[1]]}, headers=rid),
            404: client.get("/no/such/path", headers=keyed),
            413: client.post("/predict", content=b"[" * 2000, headers=keyed),
            403: client.get("/v1/models", headers={**keyed, "Origin": "https://evil.example"}),
            500: client.get("/boom", headers=keyed),
            200: client.get("/healthz", headers=rid),
        }
        for status, r in answers.items():
            assert r.status_code == status, r.text
            assert r.headers["x-request-id"] == "r-1", status
        preflight = client.options(
            "/predict",
            headers={
                "Origin": "https://a.b",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Request-ID",
            },
        )
        assert preflight.status_code == 200
        assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
        r = client.get("/v1/models", headers={**keyed, "Origin": "https://a.b"})
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()


def test_json_lines_carry_the_request_id_of_their_request(output: Output) -> None:
    with serve() as client:
        r = client.post(
            "/v1/models/counter/predict", json={"inputs": [[1]]}, headers={"X-Request-ID": "p-1"}
        )
        assert r.status_code == 200
        created = client.post("/v1/sessions", json={"model": "stepper"}).json()
        sid = created["session_id"]
        r = client.post(
            f"/v1/sessions/{sid}/step", json={"inputs": [1]}, headers={"X-Request-ID": "s-1"}
        )
        assert r.status_code == 200
        assert client.get("/boom", headers={"X-Request-ID": "b-1"}).status_code == 500
        client.get("/nowhere", headers={"X-Request-ID": "n-1"})
    thread = threading.Thread(target=logging.getLogger("service").warning, args=("no request",))
    thread.start()
    thread.join()
    records = output.records()  # every line parses
    assert sid not in output.stream.getvalue()
    access = {r["request_id"]: r for r in records if r["logger"] == "service.access"}
    assert set(access["p-1"]) >= ACCESS_FIELDS
    assert access["p-1"]["route"] == "/v1/models/{name}/predict"
    assert access["p-1"]["model"] == "counter" and access["p-1"]["status"] == 200
    assert access["p-1"]["method"] == "POST" and access["p-1"]["duration_ms"] > 0
    assert access["s-1"]["path"] == f"/v1/sessions/{log_id(sid)}/step"
    assert access["s-1"]["route"] == "/v1/sessions/{session_id}/step"
    assert access["s-1"]["model"] == "stepper" and access["s-1"]["client"] == "testclient:50000"
    assert access["n-1"]["route"] == "unmatched" and access["n-1"]["status"] == 404
    assert access["b-1"]["status"] == 500 and access["b-1"]["route"] == "/boom"
    during = [r for r in records if r.get("request_id") == "b-1"]
    messages = [r["message"] for r in during]
    assert messages[:3] == ["about to fail", "from a worker thread", "unexpected error"]
    assert "RuntimeError: a bug" in during[2]["exc_info"] and during[2]["level"] == "ERROR"
    (outside,) = [r for r in records if r["message"] == "no request"]
    assert "request_id" not in outside and outside["level"] == "WARNING"
    assert outside["time"].endswith("+00:00")


def test_json_lines_leave_out_uvicorn_s_coloured_copy(output: Output) -> None:
    logging.getLogger("uvicorn.error").warning(
        "Started %s", "server", extra={"color_message": "\x1b[1mStarted\x1b[0m %s"}
    )
    (record,) = output.records()
    assert record == {
        "level": "WARNING",
        "logger": "uvicorn.error",
        "message": "Started server",
        "time": record["time"],
    }


def test_the_text_format_stays_readable() -> None:
    out = Output()
    handler = logs.handler("text", out.stream)
    logging.getLogger().addHandler(handler)
    try:
        with serve() as client:
            client.post(
                "/v1/models/counter/predict", json={"inputs": [[1]]}, headers={"X-Request-ID": "t1"}
            )
    finally:
        logging.getLogger().removeHandler(handler)
    access = [line for line in out.lines() if "HTTP/1.1" in line]
    assert access == [
        line
        for line in access
        if re.fullmatch(
            r'INFO: {5}testclient:50000 - "POST /v1/models/counter/predict HTTP/1\.1" 200 '
            r"\d+\.\d ms model=counter \[t1\]",
            line,
        )
    ]
    assert len(access) == 1
    assert "INFO:     ready: models counter, stepper, words" in out.lines()  # no id: no suffix


def test_no_access_line_when_it_is_off(output: Output) -> None:
    with serve(access_log=False) as client:
        assert client.get("/v1/models").status_code == 200
    assert not [r for r in output.records() if r["logger"] == "service.access"]


def test_configure_sends_every_logger_through_one_handler() -> None:
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in logs.LOGGERS)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        logs.configure(Settings(log_format="json", log_level="debug"), relay_stderr=False)
        (handler,) = root.handlers
        assert root.level == logging.WARNING
        for name in logs.LOGGERS:
            logger = logging.getLogger(name)
            assert logger.propagate and not logger.handlers and logger.level == logging.DEBUG
        out = io.StringIO()
        handler.setStream(out)  # type: ignore[attr-defined]
        logging.getLogger("tensorflow").warning("from a library")
        logging.getLogger("tensorflow").info("not shown: other libraries log warnings only")
        (line,) = out.getvalue().splitlines()
        assert json.loads(line)["logger"] == "tensorflow"
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        logging.captureWarnings(False)


# %0A and %0D (a forged second line), ESC (a terminal's colours), NUL, DEL, C1's NEL
# and the Unicode line separator (line breaks to some readers), a bidirectional override,
# and a quote and spaces (a forged field of the line)
FORGED = (
    "/v1/models/x%0AINFO:%20%20%20%20%20127.0.0.1:1%20-%20%22POST%20/v1/admin/reload"
    "%20HTTP/1.1%22%20200%200.1%20ms%0D%1B[31m%00%7F%C2%85%E2%80%A8%E2%80%AE"
)


def test_a_client_cannot_forge_a_line_of_the_text_log() -> None:
    out = Output()
    handler = logs.handler("text", out.stream)
    logging.getLogger().addHandler(handler)
    try:
        with serve() as client:
            query = "q=%0AINFO:%20x%0D%1B"
            r = client.get(f"{FORGED}?{query}", headers={"X-Request-ID": "f1"})
            assert r.status_code == 404
            logging.getLogger("service").warning("a client's value: %s", "a\nINFO: b\r\x1b\u2028")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.lines()
    assert all(re.match(r"(INFO|WARNING):\s", line) for line in lines), lines
    (access,) = [line for line in lines if line.endswith("[f1]")]
    sent = FORGED.replace("[", "%5B")  # the path as a URL carries it
    assert f'"GET {sent}?{query} HTTP/1.1" 404 ' in access
    assert "WARNING:  a client's value: a\\nINFO: b\\r\\x1b\\u2028" in lines


def test_the_access_line_escapes_raw_bytes_and_json_keeps_the_values(output: Output) -> None:
    text = Output()
    handler = logs.handler("text", text.stream)
    logging.getLogger().addHandler(handler)
    scope = {
        "type": "http",
        "method": "GET",
        "path": '/v1/models/a b"\n\r\x1b\u2028',
        "query_string": b"x=\n\r\x1b\x85&y=%0A",
        "client": ("127.0.0.1", 1),
    }
    try:
        access_log.write(scope, "unmatched", "", 404, 0.001, "r1")
    finally:
        logging.getLogger().removeHandler(handler)
    target = "/v1/models/a%20b%22%0A%0D%1B%E2%80%A8?x=%0A%0D%1B%85&y=%0A"
    assert text.lines() == [f'INFO:     127.0.0.1:1 - "GET {target} HTTP/1.1" 404 1.0 ms [r1]']
    (record,) = output.records()
    assert record["path"] == target and "\n" not in output.stream.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    ("path", "model", "rid"),
    [
        ("/v1/models/reverse/predict", "reverse", "abc"),
        ("/v1/sessions/x/step?a=%22b", "", None),  # no request id: a line outside a request
        ("/caf\u00e9/\u2028", "m\u00e9", "r-1"),  # not ASCII: escaped alike
    ],
)
def test_the_direct_json_access_line_equals_the_generic_one(
    path: str, model: str, rid: str | None
) -> None:
    formatter = logs.json_formatter()
    scope = {"path": path, "method": "POST", "client": ("10.0.0.1", 5), "query_string": b""}
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger(logs.ACCESS_LOGGER)
    log.addHandler(handler)
    try:
        access_log.write(scope, "/route/{x}", model, 201, 0.0012345, rid or "")
    finally:
        log.removeHandler(handler)
    (record,) = records
    if rid is None:
        del record.request_id
    direct = formatter.format(record)
    generic = logs.JsonFormatter.format(formatter, record)
    assert direct == generic
    assert json.loads(direct)["path"] == json.loads(generic)["path"]


def test_a_path_left_as_it_is_is_what_quote_would_leave() -> None:
    # the access line skips quote() for such a path: the same text either way
    from urllib.parse import quote

    for code in range(0x20, 0x7F):
        c = chr(code)
        assert bool(access_log.AS_IS.fullmatch(c)) == (quote(c, safe=access_log.PATH_SAFE) == c)
    assert not access_log.AS_IS.fullmatch("/caf\u00e9") and not access_log.AS_IS.fullmatch("/a b")
