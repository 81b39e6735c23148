"""A typed client for the service's native API, synchronous and asynchronous, on httpx.

It speaks the server's own wire models (service/wire/native.py, service/wire/decoding.py)
and imports nothing else of the server: no FastAPI, no TensorFlow.

    with Client("http://127.0.0.1:8000") as client:
        client.predict([[20, 36, 40, 10, 34, 28]], model="reverse").outputs  # [[40, 36, 20]]
        with client.session("memory") as session:
            session.step([3, 0, 1]).outputs  # [0, 1, 2]
            [a.outputs for a in session.stream_steps([[2], [0]])]  # over one WebSocket
"""

from service.client.async_client import AsyncClient
from service.client.async_session import AsyncSession, SessionStart
from service.client.async_socket import AsyncSessionSocket
from service.client.errors import (
    AnswerNotKept,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    InternalError,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    ProtocolError,
    RateLimited,
    ServiceError,
    SessionCapReached,
    SessionCorrupt,
    StoreUnavailable,
    Unauthorized,
    Unavailable,
    VersionGone,
)
from service.client.events import PredictEvent, StepEvent
from service.client.options import DecodingOptions, PredictOptions
from service.client.sync_client import DEFAULT_URL, Client
from service.client.sync_session import Session
from service.client.sync_socket import SessionSocket
from service.wire.decoding import TokenEvent
from service.wire.model_info import ModelDetail, ModelList, ModelVersionInfo
from service.wire.native import PredictResponse, SessionInfo, StepResponse

__all__ = [
    "DEFAULT_URL",
    "AnswerNotKept",
    "AsyncClient",
    "AsyncSession",
    "AsyncSessionSocket",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "DecodingOptions",
    "Forbidden",
    "Gone",
    "InternalError",
    "InvalidInput",
    "ModelDetail",
    "ModelList",
    "ModelVersionInfo",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "PredictEvent",
    "PredictOptions",
    "PredictResponse",
    "ProtocolError",
    "RateLimited",
    "ServiceError",
    "Session",
    "SessionCapReached",
    "SessionCorrupt",
    "SessionInfo",
    "SessionSocket",
    "SessionStart",
    "StepEvent",
    "StepResponse",
    "StoreUnavailable",
    "TokenEvent",
    "Unauthorized",
    "Unavailable",
    "VersionGone",
]
