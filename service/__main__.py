"""Command line: `python -m service serve|train|check|import|predict|session|models`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.cli import register as register_client_commands


def _serve(args: argparse.Namespace) -> int:
    from service.app import create_app
    from service.config import Settings
    from service.inference.model.manifest import ManifestError
    from service.inference.model.store import check_store

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
        names = {checked[0] for checked in check_store(settings.model_store)}
        if settings.default_model is not None and settings.default_model not in names:
            raise ManifestError(
                f"{settings.model_store}: SERVICE_DEFAULT_MODEL '{settings.default_model}' is "
                f"not in the store (models: {', '.join(sorted(names))})"
            )
    except ManifestError as exc:
        print(f"cannot serve the model store: {exc}", file=sys.stderr)
        return 2
    from service.server import serve

    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. API keys that cannot be used
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    serve(app, settings)
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
    elif args.problem == "dates":
        from service.training import dates

        dates.train(out, seed=args.seed, epochs=args.epochs, eval_size=args.eval_size)
    elif args.problem == "dates-transformer":
        from service.training import dates_transformer

        dates_transformer.train(out, seed=args.seed, epochs=args.epochs, eval_size=args.eval_size)
    else:
        from service.training import memory

        memory.train(out, seed=args.seed, max_epochs=args.epochs)
    return 0


def _check(args: argparse.Namespace) -> int:
    from service.tools.check import check

    return check(Path(args.directory))


def _import(args: argparse.Namespace) -> int:
    from service.tools.importer import import_model

    return import_model(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--host", help="bind address (SERVICE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SERVICE_PORT, default 8000)")
    serve.add_argument(
        "--model-store", help="model store directory (SERVICE_MODEL_STORE, default ./model_store)"
    )
    serve.set_defaults(handler=_serve)

    train = commands.add_parser("train", help="train a shipped model from scratch")
    train.add_argument("problem", choices=["reverse", "memory", "dates", "dates-transformer"])
    train.add_argument("--out", required=True, help="version directory to write")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="max epochs (reverse 6, memory 3000, dates 12, dates-transformer 30)",
    )
    train.add_argument("--examples", type=int, default=100_000, help="reverse: training examples")
    train.add_argument(
        "--eval-size", type=int, default=10_000, help="reverse, dates: fresh eval sources"
    )
    train.set_defaults(handler=_train)

    checker = commands.add_parser(
        "check", help="validate a model version directory and show what would be served"
    )
    checker.add_argument("directory", help="e.g. model_store/NAME/1")
    checker.set_defaults(handler=_check)

    importer = commands.add_parser(
        "import",
        help="split a trained training model [source, decoder_input] -> probabilities into "
        "a servable encoder and decoder",
    )
    importer.add_argument("training_model", help="e.g. s2s_model.keras (as keras-io saves it)")
    importer.add_argument("--out", required=True, help="version directory, e.g. model_store/NAME/1")
    importer.add_argument(
        "--source-vocab", help="source tokens: one per line (\\t, \\n escapes) or .json"
    )
    importer.add_argument("--target-vocab", help="target tokens, same format")
    importer.add_argument("--tokenizer", choices=["char", "whitespace"], help="text in and out")
    importer.add_argument("--start", help="start token (a target token or an id)")
    importer.add_argument("--end", help="end token (a target token or an id)")
    importer.add_argument("--pad", help="source pad token (with --length)")
    importer.add_argument("--length", type=int, help="the source length the model was trained on")
    importer.add_argument("--max-steps", type=int, default=50, help="default decode steps")
    importer.add_argument("--description", help="shown in /v1/models")
    importer.add_argument(
        "--example",
        help="a source text (or ids, comma-separated) `check` decodes, kept in model.json",
    )
    importer.add_argument(
        "--code",
        action="append",
        help="a Python file registering the model's custom layers (repeatable): imported "
        "before loading, copied into --out and listed in the manifest's code",
    )
    importer.set_defaults(handler=_import)

    register_client_commands(commands)  # predict, session, models: service/cli

    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up chatter out
    if args.command == "train" and args.epochs is None:
        epochs = {"reverse": 6, "memory": 3000, "dates": 12, "dates-transformer": 30}
        args.epochs = epochs[args.problem]
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
