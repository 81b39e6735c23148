"""Which error shape a path answers in: the V2 and TF Serving routers declare theirs
(service/api/errors.py `declare_plain`); every other path answers the native shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.errors import answers_plain

PLAIN = [
    "/v2/models/nope",
    "/v2/models/a\nb/versions/1",  # decoded %0A: still the protocol's path
    "/v2/no/such/route",
    "/v1/models/reverse:classify",  # a verb TF Serving has and this server does not serve
    "/v1/models/reverse/versions/9/metadata",
    "/v1/models/x/versions/\r:predict",
    "/v1/models/:x\r;/versions/94/metadata",  # a name no route serves
    "/v1/models/a:b:predict",
]
NATIVE = ["/v1/models/nope", "/v1/sessions/x", "/predict", "/v1/nothing", "/healthz"]


@pytest.mark.parametrize("path", PLAIN)
def test_the_protocols_paths_answer_plain_errors(client: TestClient, path: str) -> None:
    assert answers_plain(path) and answers_plain("/v2")
    answer = client.get(path.replace("\n", "%0A").replace("\r", "%0D"))
    assert answer.status_code >= 400
    assert isinstance(answer.json()["error"], str), answer.text


@pytest.mark.parametrize("path", NATIVE)
def test_other_paths_answer_native_errors(client: TestClient, path: str) -> None:
    assert not answers_plain(path)
    answer = client.get(path, headers={"Accept": "application/json"})
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) >= {"code", "message"}, answer.text
