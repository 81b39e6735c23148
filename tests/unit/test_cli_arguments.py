"""What the client commands make of their command line, before any request."""

from __future__ import annotations

import argparse

import pytest

from service.cli import register
from service.cli.arguments import decoding, tokens

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "as_text", "expected"),
    [
        ("20 36 40 10 34 28", False, [20, 36, 40, 10, 34, 28]),
        (" 20,36, 40 ", False, [20, 36, 40]),
        ("7", False, [7]),
        ("21 Nov 2026", False, "21 Nov 2026"),
        ("11/21/26", False, "11/21/26"),
        ("2026.11.21", False, "2026.11.21"),
        ("-1 2", False, "-1 2"),  # not token ids: the server says what is wrong
        ("21 11 2026", True, "21 11 2026"),
    ],
)
def test_ids_or_text(text: str, as_text: bool, expected: list[int] | str) -> None:
    assert tokens(text, as_text) == expected


def test_decoding_options_keep_zeros_and_drop_what_was_not_given() -> None:
    args = parse("predict", "1 2", "--strategy", "sample", "--seed", "0", "--temperature", "0")
    assert decoding(args) == {"strategy": "sample", "seed": 0, "temperature": 0.0}
    args = parse("session", "generate", "abc", "--max-steps", "3", "--scores")
    assert decoding(args) == {"max_steps": 3, "return_scores": True}
    assert decoding(parse("predict", "1 2")) == {}


def test_the_global_options_on_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_API_KEY", "from-the-environment")
    for argv in (["models"], ["predict", "1"], ["session", "show", "abc"]):
        args = parse(*argv, "--url", "http://h:1", "--json")
        assert (args.url, args.json, args.api_key) == ("http://h:1", True, "from-the-environment")
