"""The client commands of `python -m service`: predict, session, models. They talk to a
running server through service.client and never import TensorFlow; this module imports
nothing but argparse until a command runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from service.cli.arguments import add_models, add_predict, add_session


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from service.cli.commands import run

        return run(name, args)

    return run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client commands to `python -m service`'s subcommands."""
    add_predict(commands).set_defaults(handler=_runner("predict"))
    for action, parser in add_session(commands).items():
        parser.set_defaults(handler=_runner(f"session {action}"))
    add_models(commands).set_defaults(handler=_runner("models"))
