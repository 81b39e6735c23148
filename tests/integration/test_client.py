"""service.client against a real server process over real HTTP, on the shipped models."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidInput,
    ModelDetail,
    NotFound,
    PredictResponse,
    Session,
    StepResponse,
    TokenEvent,
    Unauthorized,
)
from tests.harness import Server
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.integration

SOURCE = [20, 36, 40, 10, 34, 28]
KEY = API_KEYS["client"]


@pytest.fixture
def client(server_url: str) -> Iterator[Client]:
    with Client(server_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def keyed_url(keyed_server: tuple[str, Server]) -> str:
    """The session's server with keys, KEY among them."""
    return keyed_server[0]


def test_models_and_their_detail(client: Client) -> None:
    listed = {m.name: m for m in client.models().models}
    assert {"reverse", "dates", "memory"} <= set(listed)
    assert listed["memory"].kind == "step" and listed["reverse"].default_version == "1"
    detail = client.model("dates")
    assert isinstance(detail, ModelDetail) and detail.versions == ["1"]
    assert detail.source.tokenizer == "char" and detail.memory_shape == [32, 64]
    version = client.model("reverse", 1)
    assert version.version == "1" and version.state_shapes == [[128], [128]]


def test_greedy_predict_equals_a_raw_post(client: Client, http: httpx.Client) -> None:
    body = {"inputs": [SOURCE, [1, 2, 3, 4, 5, 6]], "max_steps": 3}
    raw = PredictResponse.model_validate(http.post("/predict", json=body).json())
    typed = client.predict([SOURCE, [1, 2, 3, 4, 5, 6]], max_steps=3)
    assert typed == raw and typed.outputs == [[40, 36, 20], [3, 2, 1]]
    texts = client.predict(["21 Nov 2026", "11/21/26"], model="dates", version=1)
    assert texts.outputs == ["2026-11-21", "2026-11-21"]
    with_probabilities = client.predict([SOURCE], model="reverse", return_probabilities=True)
    assert with_probabilities.probabilities is not None
    assert len(with_probabilities.probabilities[0][0]) == 51


def test_a_session_from_creation_to_deletion(client: Client) -> None:
    session = client.session("memory")
    assert session.info.steps == 0 and session.info.model == "memory"
    stepped = session.step([3, 0, 1])
    assert stepped.outputs == [0, 1, 2] and stepped.steps == 3 and session.info.steps == 3
    assert session.step([2], return_probabilities=True).probabilities is not None
    generated = session.generate()
    assert generated.steps == 4 + len(generated.outputs)
    read = session.state()
    assert read.state is not None and [len(t) for t in read.state] == [20, 20]
    zeros = [[0.0] * 20, [0.0] * 20]
    assert session.set_state(zeros).steps == read.steps  # steps kept
    assert session.state().state == zeros
    reset = session.reset()
    assert reset.steps == 0 and session.info.steps == 0
    # and stepping from zeros again gives what a fresh session gives
    assert session.step([3, 0, 1]).outputs == [0, 1, 2]
    again = Session.open(client, session.id)
    assert again.info.steps == 3 and again.info.state is None
    session.delete()
    with pytest.raises(NotFound):
        session.state()
    with pytest.raises(NotFound):
        session.delete()


def test_seq2seq_sessions_generate_from_their_source(client: Client) -> None:
    with client.session("reverse", source=SOURCE) as session:
        assert session.generate(max_steps=3).outputs == [40, 36, 20]
    with client.session("dates", source="21 Nov 2026", version="1") as session:
        answer = session.generate()
        assert answer.text == "2026-11-21" and session.info.steps == answer.steps
        assert session.state().memory is not None  # attention: the encoded source
    with client.session("reverse", state=[[0.5] * 128, [0.0] * 128]) as session:
        assert session.state().state == [[0.5] * 128, [0.0] * 128]


def test_the_context_manager_deletes_the_session(client: Client) -> None:
    with client.session("memory") as session:
        session.step([3])
    with pytest.raises(NotFound):
        client.open_session(session.id)
    # a session deleted inside the block: leaving it is fine
    with client.session("memory") as session:
        session.delete()
    # an error in the block is the one raised, and the session is deleted all the same
    with pytest.raises(Conflict), client.session("memory") as session:
        session.generate()  # a fresh step-model session has nothing to feed back
    with pytest.raises(NotFound):
        client.open_session(session.id)


def test_typed_errors(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.predict([SOURCE], model="nope")
    assert missing.value.status == 404 and "'nope'" in missing.value.message
    with pytest.raises(NotFound):
        client.model("reverse", 99)
    with pytest.raises(NotFound):
        client.open_session("no-such-session")
    with pytest.raises(InvalidInput) as invalid:
        client.predict([[20, 99]], model="reverse")
    assert invalid.value.status == 422 and invalid.value.field == "inputs[0][1]"
    assert str(invalid.value).startswith("error 422 invalid_input: inputs[0][1]: token 99")
    with pytest.raises(InvalidInput) as shape:
        client.session("memory", state=[[0.0] * 3, [0.0] * 20])
    assert shape.value.field is not None and shape.value.field.startswith("state")


def test_api_keys(keyed_url: str) -> None:
    with Client(keyed_url) as anonymous, pytest.raises(Unauthorized) as refused:
        anonymous.models()
    assert refused.value.status == 401 and refused.value.field == "Authorization"
    assert refused.value.headers["www-authenticate"].startswith("Bearer")
    wrong = Client(keyed_url, api_key="not-the-key-at-all-0000")
    with wrong, pytest.raises(Unauthorized, match="not valid"):
        wrong.predict([SOURCE])
    with Client(keyed_url, api_key=KEY) as c:
        assert c.predict([SOURCE]).outputs == [[40, 36, 20]]
        with c.session("memory") as session:
            assert session.step([3]).steps == 1


class LoseTheFirstStepAnswer(httpx.BaseTransport):
    """Sends every request to the server, but loses the answer to the first step, as a
    connection reset would after the server applied it."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.steps: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if request.url.path.endswith("/step"):
            response.read()
            self.steps.append((request, response))
            if len(self.steps) == 1:
                raise httpx.ReadError("connection reset", request=request)
        return response

    def close(self) -> None:
        self.real.close()


def test_a_step_whose_answer_was_lost_is_retried_and_applied_once(server_url: str) -> None:
    transport = LoseTheFirstStepAnswer()
    with Client(server_url, transport=transport, max_retry_wait=0) as c, c.session("memory") as s:
        answer = s.step([3, 0])
        assert answer.outputs == [0, 1] and answer.steps == 2
        assert s.state(include_state=False).steps == 2  # not 4
    (first, _), (retry, replayed) = transport.steps
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_the_async_client(server_url: str) -> None:
    async with AsyncClient(server_url, timeout=60) as c:
        assert "memory" in {m.name for m in (await c.models()).models}
        assert (await c.model("reverse")).default_version == "1"
        assert (await c.predict([SOURCE])).outputs == [[40, 36, 20]]
        async with c.session("memory") as session:
            assert (await session.step([3, 0, 1])).outputs == [0, 1, 2]
            assert (await session.state()).steps == 3
            assert (await session.reset()).steps == 0
        with pytest.raises(NotFound):
            await c.open_session(session.id)
        created = await c.session("reverse", source=SOURCE)
        assert (await created.generate(max_steps=3)).outputs == [40, 36, 20]
        await created.delete()


# Beam search, sampling and streaming (the decoding options and server-sent events).


def test_client_beam_returns_the_n_best(client: Client) -> None:
    greedy = client.predict([SOURCE])
    beam = client.predict(
        [SOURCE], strategy="beam", beam_width=4, num_return_sequences=2, return_scores=True
    )
    assert beam.sequences is not None and len(beam.sequences[0]) == 2
    assert beam.sequences[0][0] == beam.outputs[0] == greedy.outputs[0]
    assert beam.scores is not None and beam.scores[0][0] >= beam.scores[0][1]


def test_client_sample_with_a_seed_is_repeatable(client: Client) -> None:
    first = client.predict([SOURCE], strategy="sample", seed=7, temperature=1.5)
    again = client.predict([SOURCE], strategy="sample", seed=7, temperature=1.5)
    assert first.seed == again.seed == 7 and first.outputs == again.outputs
    with client.session("reverse", source=SOURCE) as session:
        drawn = session.generate(max_steps=3, strategy="sample", seed=7, temperature=1.5)
        assert drawn.seed == 7 and len(drawn.outputs) == 3


def test_client_stream_tokens_then_the_result(client: Client) -> None:
    events = list(client.stream(SOURCE, model="reverse", return_scores=True))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert [(t.index, t.token) for t in tokens] == [(0, 40), (1, 36), (2, 20)]
    assert all(t.score is not None for t in tokens)
    assert isinstance(events[-1], PredictResponse) and events[-1].outputs == [[40, 36, 20]]
    assert len(events) == 4
    texts = [e for e in client.stream("21 Nov 2026", model="dates") if isinstance(e, TokenEvent)]
    assert "".join(t.text or "" for t in texts).strip() == "2026-11-21"


def test_client_stream_generate(client: Client) -> None:
    with client.session("reverse", source=SOURCE) as session:
        events = list(session.stream_generate(max_steps=3))
        assert [e.token for e in events if isinstance(e, TokenEvent)] == [40, 36, 20]
        assert isinstance(events[-1], StepResponse) and events[-1].steps == 3
        assert session.info.steps == 3


def test_client_stream_errors_before_the_stream_are_typed(client: Client) -> None:
    with pytest.raises(NotFound):
        list(client.stream(SOURCE, model="nope"))
    with pytest.raises(InvalidInput):
        list(client.stream([20, 99], model="reverse"))


async def test_client_stream_async(server_url: str) -> None:
    async with AsyncClient(server_url, timeout=60) as c:
        events = [e async for e in c.stream(SOURCE)]
        assert [type(e) for e in events] == [TokenEvent] * 3 + [PredictResponse]
        async with c.session("reverse", source=SOURCE) as session:
            streamed = [e async for e in session.stream_generate(max_steps=3)]
            assert [type(e) for e in streamed] == [TokenEvent] * 3 + [StepResponse]
