"""Names shown in a message: the first few, sorted, and how many more."""

from __future__ import annotations

from collections.abc import Iterable


def listing(names: Iterable[str], shown: int = 10) -> str:
    """Up to ``shown`` of ``names``, sorted, and how many more."""
    ordered = sorted(names)
    text = ", ".join(ordered[:shown])
    return text + (f", and {len(ordered) - shown} more" if len(ordered) > shown else "")
