"""Command line: `python -m service serve|train`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def _serve(args: argparse.Namespace) -> int:
    from service.app import create_app
    from service.config import Settings
    from service.inference.manifest import ManifestError
    from service.inference.store import check_store

    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("model_store", args.model_store),
        )
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:  # fail fast, before TensorFlow loads, on what can be checked without it
        names = {name for name, _, _, _ in check_store(settings.model_store)}
        if settings.default_model is not None and settings.default_model not in names:
            raise ManifestError(
                f"{settings.model_store}: SERVICE_DEFAULT_MODEL '{settings.default_model}' is "
                f"not in the store (models: {', '.join(sorted(names))})"
            )
    except ManifestError as exc:
        print(f"cannot serve the model store: {exc}", file=sys.stderr)
        return 2
    from service.server import run

    run(create_app(settings), settings)
    return 0


def _train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.problem == "reverse":
        from service.training import reverse

        reverse.train(
            out,
            seed=args.seed,
            examples=args.examples,
            epochs=args.epochs,
            eval_size=args.eval_size,
        )
    else:
        from service.training import memory

        memory.train(out, seed=args.seed, max_epochs=args.epochs)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--host", help="bind address (SERVICE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SERVICE_PORT, default 8000)")
    serve.add_argument(
        "--model-store", help="model store directory (SERVICE_MODEL_STORE, default ./model_store)"
    )
    serve.set_defaults(run=_serve)

    train = commands.add_parser("train", help="train a shipped model from scratch")
    train.add_argument("problem", choices=["reverse", "memory"])
    train.add_argument("--out", required=True, help="version directory to write")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="reverse: max epochs (default 6); memory: max epochs (default 3000)",
    )
    train.add_argument("--examples", type=int, default=100_000, help="reverse: training examples")
    train.add_argument("--eval-size", type=int, default=10_000, help="reverse: fresh eval sources")
    train.set_defaults(run=_train)

    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up chatter out
    if args.command == "train" and args.epochs is None:
        args.epochs = 6 if args.problem == "reverse" else 3000
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
