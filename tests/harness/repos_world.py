"""What every `repos` test world shares: where a run writes, its arguments, what it reports.

Mixed into a test's own world, a dataclass with a ``tmp`` folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, ClassVar


class ReposPlaces:
    tmp: Path
    owner: ClassVar[str] = "acme"
    dest_folder: ClassVar[str] = "backup"

    @property
    def dest(self) -> Path:
        return self.tmp / self.dest_folder

    @property
    def store(self) -> Path:
        """The owner's metadata store."""
        return self.dest / self.owner / "metadata"

    @property
    def report_path(self) -> Path:
        return self.tmp / "report.json"

    def args(self, *extra: str) -> list[str]:
        """`repos` for the owner into ``dest``, its report and its log as JSON."""
        return [
            "repos",
            "--org",
            self.owner,
            "--dest",
            str(self.dest),
            "--report",
            str(self.report_path),
            "--log-format",
            "json",
            *extra,
        ]

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text())

    def git(self, *args: str) -> str:
        """git in the metadata store."""
        return subprocess.run(
            ["git", "-C", str(self.store), *args], capture_output=True, text=True, check=True
        ).stdout
