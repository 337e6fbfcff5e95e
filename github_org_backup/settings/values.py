"""Value parsers of the command line: each turns one flag's (or variable's) text into a value,
or raises ``argparse.ArgumentTypeError`` saying what a good value looks like."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}

MIN_PROGRESS_INTERVAL_S = 0.01  # at most 100 progress lines a second; 0 would be a busy loop


def chunk_size(text: str) -> int:
    """A byte count such as 5242880, 64MiB or 100MB, at least 1 KiB."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 64MiB")
    value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1024:
        raise argparse.ArgumentTypeError("chunks must be at least 1 KiB")
    return value


def byte_rate(text: str) -> int:
    """A byte count (0 allowed) such as 10KiB or 16GiB, for the bounds."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*?)(?:/s)?\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 10KiB or 16GiB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def blob_limit(text: str) -> int:
    value = byte_rate(text)
    if value < 1024:
        raise argparse.ArgumentTypeError("give at least 1KiB: every blob would be refused")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """A parser of a whole number from ``low`` to ``high`` (digits only: no sign, no unit)."""

    def parse(text: str) -> int:
        text = text.strip()
        if not text.isdigit() or not text.isascii() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}")
        return int(text)

    return parse


def request_rate(text: str) -> tuple[str, float]:
    """``HOST=N/s`` or ``HOST=N/min`` (``host[:port]`` as in references)."""
    match = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|min)\s*", text)
    if not match or not 0 < float(match.group(2)) < math.inf:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate like ghcr.io=50/s or ghcr.io=2000/min"
        )
    host = match.group(1).removeprefix("https://").removeprefix("http://").rstrip("/")
    per_second = float(match.group(2)) / (60 if match.group(3) == "min" else 1)
    return host, per_second


def _seconds(text: str, *, minimum: float, inclusive: bool) -> float:
    """A finite number of seconds: inf or nan would disable the bound the flag sets."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    low_enough = value < minimum if inclusive else value <= minimum
    if not math.isfinite(value) or low_enough:
        bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, {bound}")
    return value


def timeout_seconds(text: str) -> float:
    """A timeout: finite and more than 0."""
    return _seconds(text, minimum=0, inclusive=False)


def grace_seconds(text: str) -> float:
    """A grace period: finite, 0 (stop at once) or more."""
    return _seconds(text, minimum=0, inclusive=True)


def progress_seconds(text: str) -> float:
    return _seconds(text, minimum=MIN_PROGRESS_INTERVAL_S, inclusive=True)


def text(value: str) -> str:
    """Any text, as given."""
    return value


def host_list(value: str) -> list[str]:
    """Comma-separated ``host[:port]`` entries, lower-cased; empty entries dropped."""
    return [host.strip().lower() for host in value.split(",") if host.strip()]
