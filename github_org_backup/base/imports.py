"""Importing a library without the optional packages it would load only to offer them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Within the block, ``import name`` fails for each of ``names`` not loaded yet, as if it
    were not installed; after it, the package imports as usual.

    For a library that tries an optional package at its own import time, as structlog.dev
    tries rich (for console tracebacks): the run that never draws one does not load it.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
