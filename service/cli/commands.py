"""What the client commands do: one call on the client each, then its answer printed:
the server's JSON with --json, else for a person (render.py). Errors go to stderr as
`error <status> <code>: <message>`, with exit status 1 (2: refused before sending)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from functools import partial

from pydantic import BaseModel, ValidationError

from service.cli import render
from service.cli.arguments import decoding, tokens
from service.client import (
    Client,
    ClientError,
    ConnectionFailed,
    PredictResponse,
    ServiceError,
    StepResponse,
    TokenEvent,
)


class Usage(Exception):
    """A command line that cannot make a request."""


def _json(answer: BaseModel) -> None:
    # the fields the server sent, as it sent them (nulls included where it sends them)
    print(answer.model_dump_json(exclude_unset=True), flush=True)


def _streamed(
    events: Iterator[TokenEvent | PredictResponse] | Iterator[TokenEvent | StepResponse],
    as_json: bool,
) -> BaseModel | None:
    """Prints the tokens as they come (--json: every event); the final answer, for the
    caller to print (None with --json: printed already)."""
    shown = False
    for event in events:
        if as_json:
            _json(event)
        elif isinstance(event, TokenEvent):
            sys.stdout.write((" " if shown else "") + render.token(event))
            sys.stdout.flush()
            shown = True
        else:
            if shown:
                print()
            return event
    return None


def predict(client: Client, args: argparse.Namespace) -> None:
    inputs = [tokens(text, args.text) for text in args.inputs]
    options = decoding(args)
    if args.stream:
        if len(inputs) != 1:
            raise Usage("--stream decodes one input at a time")
        events = client.stream(inputs[0], args.model, args.version, **options)
        answer = _streamed(events, args.json)
    else:
        answer = client.predict(inputs, args.model, args.version, **options)
    if isinstance(answer, PredictResponse):
        _show(args, answer, lambda: render.predict(answer, inputs))


def models(client: Client, args: argparse.Namespace) -> None:
    if args.name is None:
        listing = client.models()
        _show(args, listing, lambda: render.models(listing))
    else:
        detail = client.model(args.name, args.version) if args.version else client.model(args.name)
        _show(args, detail, lambda: render.model(detail))


def session(client: Client, args: argparse.Namespace) -> None:
    if args.action == "create":
        source = None if args.source is None else tokens(args.source, args.text)
        created = client.session(args.model, source=source, version=args.version)
        _show(args, created.info, lambda: created.id)
        return
    if args.action == "delete":  # without reading it first: a corrupt session too
        client.delete_session(args.session_id)
        if not args.json:
            render.console().print(f"deleted {args.session_id}")
        return
    opened = client.open_session(args.session_id)
    if args.action == "step":
        stepped = opened.step(tokens(args.inputs, args.text), args.return_probabilities)
        _show(args, stepped, lambda: render.step(stepped))
    elif args.action == "steps":  # one WebSocket; each answer printed as it comes
        inputs = [tokens(text, args.text) for text in args.inputs]
        for answer in opened.stream_steps(inputs, args.return_probabilities):
            _show(args, answer, partial(render.step, answer))
    elif args.action == "generate":
        options = decoding(args)
        max_steps = options.pop("max_steps", None)
        if args.stream:
            final = _streamed(opened.stream_generate(max_steps, **options), args.json)
            if isinstance(final, StepResponse):
                _show(args, final, lambda: render.step(final))
        else:
            generated = opened.generate(max_steps, **options)
            _show(args, generated, lambda: render.step(generated))
    elif args.action == "show":
        info = opened.state() if args.state else opened.info
        _show(args, info, lambda: render.session(info))
    else:
        info = opened.reset()
        _show(args, info, lambda: f"reset {info.session_id}: steps {info.steps}")


def _show(args: argparse.Namespace, answer: BaseModel, human: Callable[[], object]) -> None:
    if args.json:
        _json(answer)
    else:
        render.console().print(human())


def _error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(name: str, args: argparse.Namespace) -> int:
    command = {"predict": predict, "models": models}.get(name, session)
    try:
        with Client(args.url, args.api_key, args.timeout, args.retries) as client:
            command(client, args)
    except ServiceError as exc:
        _error(str(exc))
        return 1
    except ConnectionFailed as exc:
        _error(f"error: cannot reach the server: {exc}")
        return 1
    except ClientError as exc:
        _error(f"error: {exc}")
        return 1
    except (ValidationError, Usage) as exc:  # refused before anything was sent
        _error(f"error: invalid request: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
