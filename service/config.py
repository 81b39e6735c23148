"""All configuration: one settings class, environment prefix SERVICE_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Warmup = Literal["all", "background", "lazy"]
Xla = Literal["auto", "on", "off"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    model_store: Path = Path("model_store")
    default_model: str | None = Field(
        default=None,
        description="model for /predict without 'model'; unset: the only seq2seq model",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = Field(
        default=True, description="one log line per request, written once it is answered"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for every logger"
    )

    max_batch_size: int = Field(default=256, ge=1, description="sequences per request")
    max_sequence_length: int = Field(default=1024, ge=1, description="tokens per sequence")
    max_decode_steps: int = Field(default=512, ge=1, description="upper bound for max_steps")
    # 256 rows x 256 steps; ~0.2 s of compute for the reverse model on one core
    max_steps_per_request: int = Field(
        default=65_536, ge=1, description="model steps (tokens encoded + fed + decoded) per request"
    )
    # ~5 MB of JSON
    max_probabilities_per_request: int = Field(
        default=262_144, ge=1, description="probability values in one response"
    )
    max_beam_width: int = Field(
        default=16, ge=1, description="upper bound for beam_width and num_return_sequences"
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="request body size; 413 beyond"
    )
    # slow and excess clients (api/http_protocol.py, api/connection_cap.py)
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="request line + headers; 431 beyond"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="from connection (or first byte) to headers; 408 after"
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="from headers to the whole body; 408 after"
    )
    # session steps over WebSocket (api/native/session_socket.py)
    ws_idle_timeout_seconds: float = Field(
        default=300.0, gt=0, description="a WebSocket with no message this long is closed (1000)"
    )
    ws_max_message_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="a WebSocket message over this closes the connection (1009); "
        "default: SERVICE_MAX_BODY_BYTES",
    )
    ws_ping_interval_seconds: float = Field(
        default=20.0,
        ge=0,
        description="ping an open WebSocket this often; no pong within as long: closed "
        "(1011). 0: no pings",
    )
    max_connections: int = Field(
        default=1000, ge=1, description="open connections; beyond: an idle one gives way, or 503"
    )
    probe_connections: int = Field(
        default=32, ge=0, description="connections beyond the cap kept for health probes"
    )

    session_backend: Literal["memory", "redis", "redis-cluster"] = Field(
        default="memory",
        description="memory: in-process; redis: one Redis shared by replicas; "
        "redis-cluster: a Redis Cluster",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="for the redis backends; redis-cluster: one or more start-up nodes, "
        "comma-separated",
    )
    redis_prefix: str = Field(default="s2s:", description="key prefix in Redis")
    session_ttl_seconds: float = Field(default=1800.0, gt=0, description="idle expiry")
    max_sessions: int = Field(default=100_000, ge=1, description="cap on live sessions")
    session_kv_cache_mb: int = Field(
        default=256,
        ge=0,
        description="MiB of Transformer sessions' key/value caches this process keeps between "
        "their requests (least recently used out first; 0: rebuilt in every request)",
    )

    compute_threads: int = Field(default=1, ge=1, description="threads running model calls")
    batch_max_rows: int = Field(default=256, ge=1, description="rows per batched graph call")
    batch_max_delay_ms: float = Field(
        default=0.0, ge=0, description="extra wait for a batch to fill (0: none)"
    )
    batch_slice_ms: float = Field(
        default=2.0,
        ge=0,
        description="compute per decoding slice while other work waits (10x when none "
        "does); other models' and requests' work runs between slices. 0: decodes run whole",
    )
    max_queue_rows: int = Field(
        default=4096, ge=1, description="queued rows per model and operation; 503 beyond"
    )

    # 1 and 1 measured best on 2 cores (one for TF, one for the event loop); 0 = TF default
    tf_intra_op_threads: int = Field(default=1, ge=0, description="0 = TensorFlow default")
    tf_inter_op_threads: int = Field(default=1, ge=0, description="0 = TensorFlow default")
    warmup: Warmup = Field(
        default="background",
        description="when a model's graphs compile. all: every graph before the model is "
        "served; background: what greedy /predict and session steps use before, the rest "
        "(beam, sampling, probabilities) right after on a low-priority thread; lazy: the rest "
        "on first use. A graph a request needs and finds uncompiled is compiled then, once",
    )

    xla: Xla = Field(
        default="auto",
        description="XLA-compiled graphs, per shape bucket (batch padded to a power of two). "
        "auto: XLA where it compiles, TF graphs for a model it cannot; on: a model XLA "
        "cannot compile is refused at start-up; off: TF graphs only",
    )

    trust_model_code: bool = Field(
        default=False,
        description="import the Python files a model's manifest lists in `code` (custom "
        "layers) before loading it; importing runs them. false: such a model is refused",
    )

    # security (docs/security.md)
    api_keys: str = Field(
        default="", description="comma-separated API keys; empty with no file: no authentication"
    )
    api_keys_file: Path | None = Field(
        default=None, description="one key per line, optional 'name:' prefix; '#' comments"
    )
    admin_keys: str = Field(
        default="",
        description="comma-separated names of the API keys allowed on /v1/admin/*; with keys "
        "on and none named, every key gets 403 there",
    )
    max_sessions_per_key: int = Field(
        default=0, ge=0, description="live sessions per key; 0: no limit"
    )
    protect_stats: bool = Field(
        default=True, description="with keys on, /metrics and /v1/stats need a key too"
    )
    cors_origins: str = Field(
        default="", description="comma-separated origins browsers may call from; others get 403"
    )
    allowed_hosts: str = Field(
        default="", description="comma-separated Host names accepted (DNS rebinding); empty: any"
    )
    idempotency_keys_per_session: int = Field(
        default=32, ge=1, description="answers kept per session for Idempotency-Key retries"
    )
    idempotency_max_bytes_per_session: int = Field(
        default=1024 * 1024,
        ge=0,
        description="bytes of those answers kept per session; oldest dropped first, a retry "
        "whose answer was dropped gets 409",
    )
    session_lock_wait_seconds: float = Field(
        default=10.0, gt=0, description="wait for a busy session before 503 + Retry-After"
    )
    redis_lock_ttl_seconds: float = Field(
        default=10.0, gt=0, description="Redis session lock expiry; renewed while held"
    )
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="replicas that must confirm each session write (WAIT, 1 s) before it "
        "is acknowledged; 0: acknowledged once the primary has it",
    )

    # operations
    model_poll_seconds: float = Field(
        default=10.0, ge=0, description="rescan the model store this often; 0: only on reload"
    )
    shutdown_delay_seconds: float = Field(
        default=0.0, ge=0, description="after SIGTERM: /readyz 503, still serving, this long"
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0, gt=0, description="after the delay: in-flight requests get this long"
    )

    @field_validator("xla", mode="before")
    @classmethod
    def _xla_known(cls, value: object) -> object:
        allowed = get_args(Xla)
        if value not in allowed:
            raise ValueError(f"SERVICE_XLA must be one of {', '.join(allowed)}, not {value!r}")
        return value

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup_known(cls, value: object) -> object:
        allowed = get_args(Warmup)
        if value not in allowed:
            raise ValueError(f"SERVICE_WARMUP must be one of {', '.join(allowed)}, not {value!r}")
        return value
