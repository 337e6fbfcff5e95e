"""What discovery finds: an owner's container packages and their tags. Plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote


@dataclass(frozen=True)
class Owner:
    kind: Literal["orgs", "users"]
    name: str

    def packages_path(self) -> str:
        return f"/{self.kind}/{quote(self.name, safe='')}/packages"

    def versions_path(self, package: str) -> str:
        # Nested package names (team/app) must be sent as team%2Fapp.
        return f"{self.packages_path()}/container/{quote(package, safe='')}/versions"

    def __str__(self) -> str:
        return f"{'organisation' if self.kind == 'orgs' else 'user'} {self.name!r}"


@dataclass(frozen=True)
class Package:
    name: str
    tags: dict[str, str]  # tag -> manifest digest
    untagged: int


@dataclass(frozen=True)
class FailedPackage:
    """A package GitHub listed but whose versions could not be read: only it fails."""

    name: str
    error: str
    status: int | None = None  # the HTTP status GitHub answered, None for no answer
