"""A real server process on the unit tests' numpy models: `python -m tests.harness.fake_server`.

The same `service.server.serve` as `python -m service serve` (uvicorn, its protocol,
connection guards, signals), with settings from the SERVICE_* environment, but no
TensorFlow: it starts in about a second and its memory is the server's own.
"""

from __future__ import annotations

from service.app import create_app
from service.config import Settings
from service.server import serve
from tests import fakes


def main() -> None:
    settings = Settings()
    serve(create_app(settings, registry=fakes.registry()), settings)


if __name__ == "__main__":
    main()
