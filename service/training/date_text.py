"""Dates written in many human formats, paired with their ISO 8601 form, and their encodings.

Formats never conflict: "/" and "-" between numbers are always month-day-year, "." is always
day.month.year, and a four-digit year written first is always year-month-day. Two-digit years
50..99 mean 19xx and 00..49 mean 20xx. Weekday names are the true weekday of the date.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence

import numpy as np

SOURCE_LENGTH = 32
PAD = " "
START = "\t"
END = "\n"
TARGET_VOCABULARY: tuple[str, ...] = (START, END, "-", *"0123456789")
TARGET_STEPS = len("YYYY-MM-DD") + 1  # the ISO date and the end token

FIRST_DAY = dt.date(1950, 1, 1).toordinal()
LAST_DAY = dt.date(2049, 12, 31).toordinal()

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PUNCTUATION = ",./-'"
ORDINALS = ("st", "nd", "rd", "th")

_letters = sorted({ch for word in (*MONTHS, *WEEKDAYS, *ORDINALS, "of") for ch in word})
SOURCE_VOCABULARY: tuple[str, ...] = (
    PAD,
    *sorted({*PUNCTUATION, *"0123456789", *_letters, *(ch.upper() for ch in _letters)}),
)
_SOURCE_INDEX = {ch: i for i, ch in enumerate(SOURCE_VOCABULARY)}
_TARGET_INDEX = {ch: i for i, ch in enumerate(TARGET_VOCABULARY)}

Format = Callable[[dt.date, random.Random], str]


def _cased(word: str, rng: random.Random) -> str:
    return rng.choice((word, word.title(), word.upper()))


def _month(day: dt.date, rng: random.Random, short: bool | None = None) -> str:
    name = MONTHS[day.month - 1]
    if short is None:
        short = rng.random() < 0.5
    return _cased(name[:3] if short else name, rng)


def _weekday(day: dt.date, rng: random.Random, short: bool) -> str:
    name = WEEKDAYS[day.weekday()]
    return _cased(name[:3] if short else name, rng)


def _number(value: int, rng: random.Random) -> str:
    """Day or month number, with or without a leading zero."""
    return f"{value:02d}" if rng.random() < 0.5 else str(value)


def _ordinal(value: int, rng: random.Random) -> str:
    suffix = "th" if 11 <= value % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return f"{value}{suffix.upper() if rng.random() < 0.2 else suffix}"


def _yy(day: dt.date) -> str:
    return f"{day.year % 100:02d}"


def _numeric_year_last(separator: str, day_first: bool) -> Format:
    def render(day: dt.date, rng: random.Random) -> str:
        year = str(day.year) if rng.random() < 0.6 else _yy(day)
        first, second = (day.day, day.month) if day_first else (day.month, day.day)
        return f"{_number(first, rng)}{separator}{_number(second, rng)}{separator}{year}"

    return render


def _numeric_year_first(separator: str) -> Format:
    def render(day: dt.date, rng: random.Random) -> str:
        return f"{day.year}{separator}{day.month:02d}{separator}{day.day:02d}"

    return render


def _day_month_year(day: dt.date, rng: random.Random) -> str:  # 21 Nov 2026, 21-Nov-2026
    separator = rng.choice((" ", " ", "-"))
    return f"{_number(day.day, rng)}{separator}{_month(day, rng)}{separator}{day.year}"


def _month_day_year(day: dt.date, rng: random.Random) -> str:  # November 21, 2026; Nov 21 2026
    comma = rng.choice((",", ""))
    return f"{_month(day, rng)} {_number(day.day, rng)}{comma} {day.year}"


def _short_year(day: dt.date, rng: random.Random) -> str:  # 21 Nov '26, Nov 21, '26
    if rng.random() < 0.5:
        return f"{day.day} {_month(day, rng)} '{_yy(day)}"
    return f"{_month(day, rng)} {day.day}, '{_yy(day)}"


def _with_weekday(day: dt.date, rng: random.Random) -> str:
    short = rng.random() < 0.5
    weekday = _weekday(day, rng, short)
    comma = rng.choice((",", ""))
    if rng.random() < 0.5:  # saturday, november 21, 2026
        return f"{weekday}{comma} {_month(day, rng)} {day.day}, {day.year}"
    return f"{weekday}{comma} {day.day} {_month(day, rng)} {day.year}"  # SAT 21 NOV 2026


def _with_ordinal(day: dt.date, rng: random.Random) -> str:
    ordinal = _ordinal(day.day, rng)
    choice = rng.randrange(3)
    if choice == 0:  # 21st November 2026
        return f"{ordinal} {_month(day, rng)} {day.year}"
    if choice == 1:  # 21st of Nov 2026
        return f"{ordinal} {_cased('of', rng)} {_month(day, rng)} {day.year}"
    return f"{_month(day, rng)} {ordinal}, {day.year}"  # November 21st, 2026


FORMATS: tuple[Format, ...] = (
    _numeric_year_last("/", day_first=False),  # 11/21/26, 11/21/2026
    _numeric_year_last("-", day_first=False),  # 11-21-2026
    _numeric_year_last(".", day_first=True),  # 21.11.2026, 21.11.26
    _numeric_year_first("/"),  # 2026/11/21
    _numeric_year_first("."),  # 2026.11.21
    _numeric_year_first("-"),  # 2026-11-21
    _numeric_year_first(""),  # 20261121
    _day_month_year,
    _day_month_year,
    _month_day_year,
    _month_day_year,
    _short_year,
    _with_weekday,
    _with_weekday,
    _with_ordinal,
)


def sample_dates(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (human text, "YYYY-MM-DD") pairs; dates uniform over 1950-01-01..2049-12-31."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for _ in range(count):
        day = dt.date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        text = rng.choice(FORMATS)(day, rng)
        assert len(text) <= SOURCE_LENGTH, text
        pairs.append((text, day.isoformat()))
    return pairs


def encode_sources(texts: Sequence[str]) -> np.ndarray:
    """One-hot (len(texts), SOURCE_LENGTH, len(SOURCE_VOCABULARY)), right-padded with " "."""
    indices = np.zeros((len(texts), SOURCE_LENGTH), dtype=np.int32)  # 0 is the pad " "
    for row, text in enumerate(texts):
        if len(text) > SOURCE_LENGTH:
            raise ValueError(f"{text!r} is longer than {SOURCE_LENGTH} characters")
        indices[row, : len(text)] = [_SOURCE_INDEX[ch] for ch in text]
    encoded: np.ndarray = np.eye(len(SOURCE_VOCABULARY), dtype=np.float32)[indices]
    return encoded


def encode_targets(isos: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One-hot (decoder input, target), each (len(isos), TARGET_STEPS, len(TARGET_VOCABULARY)).

    The target is the ISO date and the end token; the decoder input is the target shifted
    right by one step with the start token first (teacher forcing).
    """
    targets = np.asarray([[_TARGET_INDEX[ch] for ch in iso + END] for iso in isos], np.int32)
    start = np.full((len(isos), 1), _TARGET_INDEX[START], np.int32)
    shifted = np.concatenate([start, targets[:, :-1]], axis=1)
    eye = np.eye(len(TARGET_VOCABULARY), dtype=np.float32)
    return eye[shifted], eye[targets]


def decode_targets(indices: np.ndarray) -> list[str]:
    """Target-vocabulary indices (batch, steps) -> texts, each cut at its first end token."""
    texts = []
    for row in np.asarray(indices).tolist():
        text = "".join(TARGET_VOCABULARY[i] for i in row)
        texts.append(text.split(END, 1)[0])
    return texts
