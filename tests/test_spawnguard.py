"""The integration marker is enforced: an unmarked test that starts a process fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import suppress

import pytest

from tests.harness.spawnguard import SpawnInUnitTest, guarded


def test_an_unmarked_test_cannot_start_a_process(request: pytest.FixtureRequest) -> None:
    async def spawn() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    # The guard this test runs under would fail it too; the inner one takes the record.
    with pytest.raises(pytest.fail.Exception, match=r"os\.fork"), guarded(request.node):  # noqa: PT012
        with pytest.raises(SpawnInUnitTest, match="mark it @pytest.mark.integration"):
            subprocess.run([sys.executable, "-c", "pass"], check=False)
        with pytest.raises(SpawnInUnitTest):
            os.fork()
        with pytest.raises(SpawnInUnitTest):
            asyncio.run(spawn())


def test_a_swallowed_refusal_still_fails_the_test(request: pytest.FixtureRequest) -> None:
    with (
        pytest.raises(pytest.fail.Exception, match="without the integration marker"),
        guarded(request.node),
        suppress(Exception),
    ):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_marked_test_is_left_alone(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.integration)
    before = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    with guarded(request.node):
        assert subprocess.Popen._execute_child is before  # type: ignore[attr-defined]
