"""Small helpers the report's sections share: medians over rounds and a Goals table row."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.rig import Measure


def med(rounds: list[dict[str, Measure]], key: str, pick: Callable[[Measure], float]) -> float:
    return statistics.median([pick(r[key]) for r in rounds])


def goal(name: str, met: bool, figure: str) -> str:
    return f"| {name} | {'met' if met else '**not met**'} | {figure} |"
