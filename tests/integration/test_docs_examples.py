"""Every curl, command-line and Python example in README.md and docs/*.md, run against a
live server on the shipped models, its printed answer compared with the text (as pydantic
tests the examples in its docs): the docs cannot drift from the service.

How the Markdown is read (sybil lexes the fenced code blocks):

- A ```` ```console ```` block is a shell session: each `$ ` line is a command (it goes on
  while a line ends in `\\` or a quote is open), the lines after it up to the next `$ `
  are what it prints. The block runs in one bash, so `SID=$(...)` carries to the next
  command.
- A ```` ```bash ```` or ```` ```python ```` block is run whole; what it prints is the
  fenced block right after it (```` ```json ```` or ```` ```text ````). Without one the
  example fails: an answer nobody wrote down is an answer nobody checks.
- A block in one of those languages that shows something else (make, docker, pip,
  training, files only the reader has) says so in an HTML comment right above it,
  `<!-- not-run: why -->`, so nothing is skipped silently. Every other language (json,
  text, ...) is data or an answer, never run. An example's commands must start with
  `curl`, `python` or `echo` (or assign one's output to a variable), so an unmarked
  `make` or `docker` line fails instead of running.
- `<!-- server: api-keys -->` above an example runs it against a second server with API
  keys on (`API_KEYS_ENV`, what docs/security.md says to start); `<!-- server: defaults
  -->` against one on the service's own defaults for what test servers set otherwise
  (XLA, background warm-up: `default_server`, serving `reverse`).

`http://localhost:8000` (and `localhost:8000`) in an example becomes the test server's
address; the command line reads the server from `SEQ2SEQ_URL`, set to it.

Answers are compared structurally when both sides are JSON, otherwise as text: floats
within rtol 1e-5 (float32 answers differ in the last bits between CPUs, tests/floats.py)
and atol 1e-6 (a log-probability near 0, such as -2.4e-07, is float32 rounding of a
probability near 1: its relative error is large, its absolute one about 1e-7), integers
exactly. `...` stands for what varies (ids, times, counts),
like doctest's ELLIPSIS: inside a string or a line, any text; `"..."` as a JSON value, any
value; `...` as a JSON array element, any number of elements; as an object member, any
other members; a line of only `...`, any lines.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sybil import Document
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from tests.integration.conftest import running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SHELL = {"console", "bash", "sh", "shell"}
PYTHON = {"python", "py"}
ANSWER = {"json", "text"}
COMMANDS = re.compile(r"^(?:[A-Z_]+=\$\()?(?:curl|python3?|echo)\b")
MARKER = re.compile(r"<!--\s*(not-run|server):\s*(.*?)\s*-->\s*\Z")

API_KEYS_ENV = {
    "SERVICE_API_KEYS": "ops:ops-key-0123456789abcdef,reader:reader-key-0123456789abcdef",
    "SERVICE_ADMIN_KEYS": "ops",
}
SERVERS = {"api-keys", "defaults"}
RTOL, ATOL = 1e-5, 1e-6
TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    language: str
    source: str
    line: int  # of the opening fence
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    where: str  # file:line, the test id
    language: str  # "shell" or "python"
    source: str
    expected: str | None  # None: a console block, whose answers are in the source
    server: str  # "shared", "api-keys" or "defaults"


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of a page, in order."""
    text = path.read_text()
    lexer = RawFencedCodeBlockLexer(re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE))
    found = [
        Block(
            language=region.lexemes["info"].strip().split(" ")[0],
            source=str(region.lexemes["source"]),
            line=text.count("\n", 0, region.start) + 1,
            start=region.start,
            end=region.end,
        )
        for region in lexer(Document(text, str(path)))
    ]
    return sorted(found, key=lambda b: b.start)


def collect(path: Path) -> Iterator[Example | str]:
    """A page's examples; a string for a block that breaks the rules (the test fails)."""
    text = path.read_text()
    page = blocks(path)
    name = path.relative_to(ROOT).as_posix()
    for i, block in enumerate(page):
        runs = block.language in SHELL | PYTHON
        before = text[page[i - 1].end if i else 0 : block.start]
        marker = MARKER.search(before)
        where = f"{name}:{block.line}"
        if not runs:
            if marker:
                yield f"{where}: a ```{block.language} block is never run; drop its marker"
            continue
        kind, argument = marker.groups() if marker else ("", "")
        if kind == "not-run":
            if not argument:
                yield f"{where}: say why the block is not run: <!-- not-run: why -->"
            continue
        if kind == "server" and argument not in SERVERS:
            yield f"{where}: unknown server {argument!r}; known: {sorted(SERVERS)}"
            continue
        server = argument if kind == "server" else "shared"
        language = "python" if block.language in PYTHON else "shell"
        if block.language == "console":
            try:
                pairs = console(block.source)
            except ValueError as error:
                yield f"{where}: {error}"
                continue
            commands = [command for command, _ in pairs]
            if not commands or not any(answer.strip() for _, answer in pairs):
                yield f"{where}: a console block needs `$ ` commands and what they print"
                continue
            expected = None
        else:
            following = page[i + 1] if i + 1 < len(page) else None
            between = text[block.end : following.start] if following else ""
            if following is None or between.strip() or following.language not in ANSWER:
                yield (
                    f"{where}: a ```{block.language} example needs its output in a ```json or "
                    "```text block right after it, or <!-- not-run: why --> above it"
                )
                continue
            commands = list(shell_commands(block.source)) if language == "shell" else []
            expected = following.source
        strange = [c for c in commands if not COMMANDS.match(c)]
        if strange:
            yield f"{where}: runs {strange[0]!r}; mark the block <!-- not-run: why -->"
            continue
        yield Example(where, language, block.source, expected, server)


def complete(command: str) -> bool:
    if command.rstrip().endswith(("\\", "|", "&&")):
        return False
    try:
        shlex.split(command)
    except ValueError:  # a quote still open: the command goes on
        return False
    return True


def console(source: str) -> list[tuple[str, str]]:
    """A console block's (command, what it prints) pairs."""
    pairs: list[tuple[str, list[str]]] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if not pairs:
                raise ValueError(f"console block: {lines[i]!r} before the first `$ ` command")
            pairs[-1][1].append(lines[i])
            i += 1
            continue
        command = lines[i][2:]
        i += 1
        while not complete(command) and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        pairs.append((command, []))
    return [(command, "\n".join(answer)) for command, answer in pairs]


def shell_commands(source: str) -> Iterator[str]:
    command = ""
    for line in source.splitlines():
        if not command and (not line.strip() or line.lstrip().startswith("#")):
            continue
        command = f"{command}\n{line}" if command else line
        if complete(command):
            yield command
            command = ""
    if command:
        yield command


# ---------------------------------------------------------------- comparing answers


class AnyValue:
    """`"..."` in expected JSON: any one value."""


class Span:
    """A bare `...` in an expected JSON array: any number of elements."""


OTHER_MEMBERS = "\x00members"  # a bare `...` member of an expected JSON object


def parse_expected_json(text: str) -> Any:
    """JSON with `...` where it may stand; ValueError if it is not JSON."""
    out: list[str] = []
    stack: list[str] = []  # "{" or "["
    i, expect_key = 0, False
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
            expect_key = False
            continue
        if text.startswith("...", i):
            out.append('"\\u0000members": null' if expect_key else '"\\u0000span"')
            i += 3
            expect_key = False
            continue
        if c in "{[":
            stack.append(c)
        elif c in "}]":
            stack.pop()
        if c in "{,":
            expect_key = bool(stack) and stack[-1] == "{"
        elif not c.isspace():
            expect_key = False
        out.append(c)
        i += 1
    return _marks(json.loads("".join(out)))


def _marks(value: Any) -> Any:
    if isinstance(value, str):
        return {"\x00span": Span(), "...": AnyValue()}.get(value, value)
    if isinstance(value, list):
        return [_marks(v) for v in value]
    if isinstance(value, dict):
        return {k: _marks(v) for k, v in value.items()}
    return value


def same_number(actual: float, expected: float, exact: bool) -> bool:
    if exact:
        return actual == expected
    return math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL)


def text_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(piece) for piece in expected.split("...")), re.DOTALL)


def json_mismatch(actual: Any, expected: Any, path: str = "$") -> str | None:
    """Where `actual` differs from `expected` (with its `...`), or None."""
    if isinstance(expected, AnyValue | Span):  # a bare `...` as a value: any value
        return None
    if isinstance(expected, str) and "..." in expected and isinstance(actual, str):
        return None if text_pattern(expected).fullmatch(actual) else f"{path}: {actual!r}"
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None:
        return None if actual is expected else f"{path}: {actual!r}, expected {expected!r}"
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        exact = isinstance(expected, int) and isinstance(actual, int)
        ok = same_number(actual, expected, exact)
        return None if ok else f"{path}: {actual!r}, expected {expected!r}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        others = expected.get(OTHER_MEMBERS, 0) is None
        keys = [k for k in expected if k != OTHER_MEMBERS]
        missing = [k for k in keys if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or (extra and not others):
            return f"{path}: keys {list(actual)}, expected {keys}{' and more' * others}"
        for k in keys:
            if (problem := json_mismatch(actual[k], expected[k], f"{path}.{k}")) is not None:
                return problem
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        return _list_mismatch(actual, expected, path, 0, 0)
    return None if actual == expected else f"{path}: {actual!r}, expected {expected!r}"


def _list_mismatch(actual: list[Any], expected: list[Any], path: str, a: int, e: int) -> str | None:
    if e == len(expected):
        return None if a == len(actual) else f"{path}: {len(actual) - a} more element(s)"
    if isinstance(expected[e], Span):
        for skip in range(len(actual) - a + 1):
            if _list_mismatch(actual, expected, path, a + skip, e + 1) is None:
                return None
        return f"{path}: no elements fit after [{a}]"
    if a == len(actual):
        return f"{path}: {len(actual)} element(s), expected more"
    problem = json_mismatch(actual[a], expected[e], f"{path}[{a}]")
    return problem or _list_mismatch(actual, expected, path, a + 1, e + 1)


NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def text_mismatch(actual: str, expected: str) -> str | None:
    """Text with `...`; numbers compared as numbers."""
    pieces = re.split(f"({NUMBER})", expected)
    pattern = ""
    for k, piece in enumerate(pieces):
        if k % 2:
            pattern += f"({NUMBER})"
        else:
            pattern += ".*?".join(re.escape(p) for p in piece.split("..."))
    match = re.fullmatch(pattern, actual, re.DOTALL)
    if match is None:
        return "the text differs"
    for got, want in zip(match.groups(), pieces[1::2], strict=True):
        exact = not re.search("[.eE]", got + want)
        if not same_number(float(got), float(want), exact):
            return f"{got} where the text says {want}"
    return None


def normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return "\n".join(lines).strip("\n")


def mismatch(actual: str, expected: str) -> str | None:
    actual, expected = normalise(actual), normalise(expected)
    try:
        want = parse_expected_json(expected)
        got = json.loads(actual)
    except (ValueError, IndexError):
        return text_mismatch(actual, expected)
    return json_mismatch(got, want)


# ---------------------------------------------------------------- running examples


def localise(source: str, url: str) -> str:
    host = url.removeprefix("http://")
    return source.replace("http://localhost:8000", url).replace("localhost:8000", host)


def environment(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQ2SEQ_", "TTY_"))}
    env.pop("FORCE_COLOR", None)
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "SEQ2SEQ_URL": url,
        "NO_COLOR": "1",
        "COLUMNS": "80",
    }


SEPARATOR = "\x1e-- next command --\x1e"


def run(example: Example, url: str) -> list[tuple[str, str, str]]:
    """(what was run, what it printed, what the text says it prints) per comparison."""
    source = localise(example.source, url)
    env = environment(url)
    if example.language == "python":
        printed = subprocess.run(
            [sys.executable, "-c", source],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert printed.returncode == 0, printed.stderr[-3000:]
        assert example.expected is not None
        return [(example.source, printed.stdout, example.expected)]
    if example.expected is None:
        pairs = console(source)
        expected = [answer for _, answer in console(example.source)]
    else:
        pairs = [(source, "")]
        expected = [example.expected]
    script = "exec 2>&1\n" + "".join(f"{c}\nprintf '\\n{SEPARATOR}\\n'\n" for c, _ in pairs)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    printed = done.stdout.split(f"\n{SEPARATOR}\n")[: len(pairs)]
    assert len(printed) == len(pairs), done.stdout[-3000:]
    return [(c, p, e) for (c, _), p, e in zip(pairs, printed, expected, strict=True)]


EXAMPLES: list[Example | str] = [item for page in PAGES for item in collect(page)]


def example_id(item: Example | str) -> str:
    return item.where if isinstance(item, Example) else ":".join(item.split(":", 2)[:2])


class ApiKeysServer:
    """The API-keys server, started in a thread while the default one starts, once."""

    def __init__(self, tmp: Path) -> None:
        store = tmp / "store"  # a small store: quick to load, enough for these examples
        shutil.copytree(ROOT / "model_store" / "memory", store / "memory")
        self.stack = ExitStack()
        self.url = ""
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._start, args=(store,), daemon=True)
        self.thread.start()

    def _start(self, store: Path) -> None:
        try:
            self.url, _ = self.stack.enter_context(running(API_KEYS_ENV, store=store))
        except Exception as error:  # reported by ready(), in the test that needs the server
            self.error = error

    def ready(self) -> str:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.url


@pytest.fixture(scope="session")
def api_keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiKeysServer | None]:
    """Session-scoped and asked for before `server_url`, so both servers load at once."""
    needed = any(isinstance(e, Example) and e.server == "api-keys" for e in EXAMPLES)
    if not needed:
        yield None
        return
    server = ApiKeysServer(tmp_path_factory.mktemp("docs-api-keys"))
    try:
        yield server
    finally:
        server.thread.join()
        server.stack.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=example_id)
def test_example_prints_what_the_docs_say(
    api_keys_server: ApiKeysServer | None,
    server_url: str,
    default_server: str,
    example: Example | str,
) -> None:
    if isinstance(example, str):
        pytest.fail(example)
    if example.server == "api-keys":
        assert api_keys_server is not None
        url = api_keys_server.ready()
    else:
        url = default_server if example.server == "defaults" else server_url
    for command, printed, expected in run(example, url):
        problem = mismatch(printed, expected)
        assert problem is None, (
            f"{example.where}: {problem}\n--- ran:\n{command}\n--- printed:\n{printed}\n"
            f"--- the docs say:\n{expected}"
        )


def test_every_page_is_read() -> None:
    """The README and the pages the site builds are the pages checked, with examples."""
    assert PAGES[0] == ROOT / "README.md" and (ROOT / "docs" / "index.md") in PAGES
    examples = [e for e in EXAMPLES if isinstance(e, Example)]
    assert {e.where.split(":")[0] for e in examples} >= {"README.md", "docs/api.md"}
    assert len(examples) >= 50
