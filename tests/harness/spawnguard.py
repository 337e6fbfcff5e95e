"""The unit loop starts no process: a test that spawns one must carry the integration marker.

``guarded(item)`` wraps a test's setup or call. While it runs, every way this suite starts a
process (``subprocess`` and so ``asyncio.create_subprocess_exec``, ``os.fork``,
``os.posix_spawn``, ``os.system``) raises, and is remembered so that the test fails even
when the code under test swallows the exception.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# (owner, attribute): subprocess.Popen._execute_child is where subprocess.run, Popen and
# asyncio's subprocess transports all end up.
SPAWNERS: list[tuple[Any, str]] = [
    (subprocess.Popen, "_execute_child"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
]

HOW_TO_MARK = (
    "mark it @pytest.mark.integration, or name its module or test in INTEGRATION_MODULES "
    "or INTEGRATION_TESTS in tests/conftest.py (the unit loop, -m 'not integration', "
    "must run with no binary installed)"
)

_spawned = pytest.StashKey[list[str]]()


class SpawnInUnitTest(AssertionError):
    """A test without the integration marker tried to start a process."""


def _refusal(item: pytest.Item, name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        what = name
        if name.endswith("_execute_child") and args:
            command = args[1] if len(args) > 1 else args[0]
            what = f"subprocess {command!r}"
        item.stash.setdefault(_spawned, []).append(what)
        raise SpawnInUnitTest(f"{item.nodeid} started a process ({what}): {HOW_TO_MARK}")

    return refuse


@contextmanager
def guarded(item: pytest.Item) -> Iterator[None]:
    """Refuse process starts while the wrapped phase runs, unless ``item`` is integration."""
    if item.get_closest_marker("integration") is not None:
        yield
        return
    saved = [
        (owner, attr, getattr(owner, attr)) for owner, attr in SPAWNERS if hasattr(owner, attr)
    ]
    for owner, attr, _ in saved:
        setattr(owner, attr, _refusal(item, f"{getattr(owner, '__name__', owner)}.{attr}"))
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    spawned = item.stash.get(_spawned, [])
    if spawned:
        item.stash[_spawned] = []
        pytest.fail(
            f"{item.nodeid} started a process ({', '.join(spawned)}) without the integration "
            f"marker: {HOW_TO_MARK}",
            pytrace=False,
        )
