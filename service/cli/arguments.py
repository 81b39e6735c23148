"""The client commands' arguments, and what they mean for the request."""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_URL = "http://127.0.0.1:8000"  # service.client's, without importing httpx here
URL_ENV, KEY_ENV = "SEQ2SEQ_URL", "SEQ2SEQ_API_KEY"
# "20 36 40" or "20,36,40": token ids; anything else is text
_IDS = re.compile(r"\s*\d+(?:[\s,]+\d+)*\s*")
DECODING = (
    "max_steps",
    "strategy",
    "beam_width",
    "length_penalty",
    "num_return_sequences",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "return_scores",
    "return_probabilities",
)


def tokens(text: str, as_text: bool = False) -> list[int] | str:
    """A command-line sequence: integers separated by spaces (or commas) are token ids,
    anything else (or anything, with --text) is text for a model with a tokenizer."""
    if not as_text and _IDS.fullmatch(text):
        return [int(t) for t in re.split(r"[\s,]+", text.strip())]
    return text


def decoding(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding options given on the command line (unset ones: the server's)."""
    given = {name: getattr(args, name, None) for name in DECODING}
    return {
        name: value for name, value in given.items() if value is not None and value is not False
    }


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the server (${URL_ENV}, default {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get(KEY_ENV),
        help=f"sent as 'Authorization: Bearer' (${KEY_ENV}: keeps it out of the process list)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help="print the server's JSON answer (with --stream: one JSON object per line)",
    )
    common.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    common.add_argument(
        "--retries", type=int, default=3, help="retries on 429, 503 and lost connections"
    )
    return common


def _decoding(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument("--max-steps", type=int, help="decode steps (default: the model's)")
    group.add_argument("--strategy", choices=["greedy", "beam", "sample"])
    group.add_argument("--beam-width", type=int, help="beam: hypotheses kept")
    group.add_argument("--length-penalty", type=float, help="beam: GNMT alpha")
    group.add_argument("--num-return-sequences", type=int, help="beam: the n best")
    group.add_argument("--temperature", type=float, help="sample")
    group.add_argument("--top-k", type=int, help="sample")
    group.add_argument("--top-p", type=float, help="sample")
    group.add_argument("--seed", type=int, help="sample: the same seed, the same output")
    group.add_argument(
        "--scores", dest="return_scores", action="store_true", help="log-probabilities"
    )
    group.add_argument(
        "--probabilities",
        dest="return_probabilities",
        action="store_true",
        help="each step's probabilities (shown with --json)",
    )
    group.add_argument("--stream", action="store_true", help="print the tokens as they are decoded")


def _text(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", action="store_true", help="read inputs as text, even digits")


def add_predict(commands: Commands) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "predict",
        parents=[_common()],
        help="decode sequences on a running server",
        description="Token ids separated by spaces (e.g. '20 36 40 10 34 28'), or text.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="one sequence each")
    parser.add_argument("--model", help="default: the server's default model")
    parser.add_argument("--version", help="default: the newest")
    _text(parser)
    _decoding(parser)
    return parser


def add_session(commands: Commands) -> dict[str, argparse.ArgumentParser]:
    session = commands.add_parser("session", help="create and use sessions on a running server")
    actions = session.add_subparsers(dest="action", required=True)
    common = _common()

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, parents=[common], help=summary)
        if name != "create":
            parser.add_argument("session_id", metavar="ID")
        return parser

    create = action("create", "create a session and print its id")
    create.add_argument("--model", required=True)
    create.add_argument("--version", help="default: the newest")
    create.add_argument("--source", help="seq2seq models: the source to encode")
    _text(create)
    step = action("step", "feed values, one output each")
    step.add_argument("inputs", metavar="INPUTS", help="e.g. '3 0 1', or text")
    step.add_argument(
        "--probabilities",
        dest="return_probabilities",
        action="store_true",
        help="each step's probabilities (shown with --json)",
    )
    _text(step)
    steps = action("steps", "feed each INPUTS in turn over one WebSocket, an answer each")
    steps.add_argument("inputs", nargs="+", metavar="INPUTS", help="e.g. '3 0 1' '4 1', or texts")
    steps.add_argument(
        "--probabilities",
        dest="return_probabilities",
        action="store_true",
        help="each step's probabilities (shown with --json)",
    )
    _text(steps)
    generate = action("generate", "decode on from the session's state")
    _decoding(generate)
    show = action("show", "the session's metadata")
    show.add_argument("--state", action="store_true", help="and its state tensors")
    return {
        "create": create,
        "step": step,
        "steps": steps,
        "generate": generate,
        "show": show,
        "reset": action("reset", "zeros, steps back to 0"),
        "delete": action("delete", "delete the session"),
    }


def add_models(commands: Commands) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", parents=[_common()], help="the models a running server serves"
    )
    parser.add_argument("name", nargs="?", help="one model's detail")
    parser.add_argument("--version", help="with NAME: one version's detail")
    return parser
