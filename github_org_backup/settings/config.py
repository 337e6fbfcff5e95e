"""The `registry` command's settings: flags first, then environment variables, then defaults.

Secrets are read from the environment or a file, never from a flag value.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from github_org_backup.errors import InvalidReference, UsageError
from github_org_backup.model.oci import Platform
from github_org_backup.model.packages import Owner
from github_org_backup.model.reference import Registry, Repository, parse_repository, validate_host
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.stores.registry.credentials import Credentials

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SOURCE_REGISTRY = "ghcr.io"
DEFAULT_USERNAME = "github-org-backup"
DEFAULT_DEST = "oci:./ghcr-backup"  # a first run needs only a token and an org


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def series(self) -> str:
        """The name of this shard's snapshot series."""
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, package: str) -> bool:
        """Stable across runs and machines: sha256 of the name, not Python's hash()."""
        value = int.from_bytes(hashlib.sha256(package.encode()).digest()[:8], "big")
        return value % self.count == self.index


@dataclass(frozen=True)
class RegistryConfig:
    owner: Owner
    token: str = field(repr=False)
    username: str
    api_url: str
    source: Registry
    destination: Repository
    destination_credentials: Credentials | None = field(repr=False)
    policy: TagPolicy
    packages: PackageFilter
    platforms: tuple[Platform, ...]
    shard: Shard | None

    def wants(self, package: str) -> bool:
        return self.packages.allows(package) and (self.shard is None or self.shard.owns(package))

    def credentials(self) -> dict[str, Credentials]:
        found = {self.source.host: Credentials(self.username, self.token)}
        if self.destination_credentials is not None:
            found[self.destination.registry.host] = self.destination_credentials
        return found


def parse_registry(text: str) -> Registry:
    """``host[:port]`` for HTTPS, or ``http://host:port`` for a plain-HTTP registry."""
    text = text.strip().rstrip("/")
    plain = text.startswith("http://")
    host = text.removeprefix("http://").removeprefix("https://")
    return Registry(validate_host(host), "http" if plain else "https")


def parse_backup_prefix(text: str, *, must_exist: bool = False) -> Repository:
    """A backup location: a registry prefix, or ``oci:DIR`` (which must exist when read from).

    A bare directory path is refused with the ``oci:`` spelling to use instead.
    """
    text = text.strip()
    if text.startswith("oci:"):
        directory = Path(text[len("oci:") :].partition(":")[0] or ".")
        check_layout_directory(directory, text)
        if must_exist and not directory.is_dir():
            raise UsageError(f"{text}: directory {directory} does not exist")
        if must_exist and not (directory / "index.json").is_file():
            raise UsageError(f"{text}: {directory} is not an OCI image layout (no index.json)")
    elif text.startswith(("/", "./", "../", "~")) or (_not_a_host(text) and Path(text).is_dir()):
        raise UsageError(f"{text!r} looks like a directory: write oci:{text} for an OCI layout")
    try:
        return parse_repository(text)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None


def check_layout_directory(directory: Path, text: str) -> None:
    """An OCI layout is a directory: refuse one named by a file, or below a file, up front."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(
            f"{text}: {directory} is a file, not a directory: an OCI layout is a directory "
            "(name a new or an existing layout directory)"
        )
    blocking = next((p for p in directory.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"{text}: {blocking} is a file, so {directory} cannot be a directory")


def check_http_url(text: str, what: str, example: str) -> str:
    """``text`` when it is an http(s) URL with a host; a usage error naming ``what`` otherwise."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or not c.isprintable() for c in text)
    ):
        raise UsageError(f"{what} {text!r} is not an http(s) URL: give one such as {example}")
    return text


def destination_credentials(
    registry: Registry, env: Mapping[str, str] = os.environ
) -> Credentials | None:
    """DEST_USERNAME and DEST_PASSWORD, the one place they are read: the credentials of the
    backup's own registry (for restore, of --to). None for a layout or when unset."""
    user, password = env.get("DEST_USERNAME"), env.get("DEST_PASSWORD")
    if bool(user) != bool(password):
        raise UsageError("set both DEST_USERNAME and DEST_PASSWORD, or neither")
    if not user or not password or registry.layout:
        return None
    return Credentials(user, password)


def _not_a_host(text: str) -> bool:
    first = text.partition("/")[0]
    return not any(c in first for c in ".:[") and first != "localhost"


def _read_token(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.github_token_file:
        try:
            token = Path(args.github_token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(
                f"cannot read --github-token-file {args.github_token_file}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(
                f"--github-token-file {args.github_token_file} is not text: it should hold "
                "only the token"
            ) from None
        if not token:
            raise UsageError(
                f"--github-token-file {args.github_token_file} is empty: write the token "
                "(a classic personal access token with read:packages) into it"
            )
    else:
        token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise UsageError(
            "no GitHub token: set GITHUB_TOKEN or pass --github-token-file PATH "
            "(a classic personal access token with read:packages)"
        )
    return token


def shard_from(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Shard | None:
    """--shard I/N or BACKUP_SHARD; or --shard-count N (BACKUP_SHARD_COUNT) with the index from
    JOB_COMPLETION_INDEX. None when the run is not sharded."""
    flag, count_flag = getattr(args, "shard", None), getattr(args, "shard_count", None)
    if flag or count_flag:  # a flag on the command line beats both variables
        text, count_given = flag, count_flag
    else:
        text, count_given = env.get("BACKUP_SHARD"), env.get("BACKUP_SHARD_COUNT")
    if text:
        index_text, sep, count_text = text.partition("/")
        if not sep:
            raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4")
    elif count_given:
        count_text = str(count_given)
        index_text = env.get("JOB_COMPLETION_INDEX", "")
        if not index_text:
            raise UsageError("--shard-count needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)")
    else:
        return None
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f"shard {index_text}/{count_text} is not two integers") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"shard {index}/{count}: need 0 <= I < N")
    return Shard(index, count)


def load_registry_config(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RegistryConfig:
    org = args.org or env.get("GITHUB_ORG")
    user = args.user or env.get("GITHUB_OWNER_USER")
    if bool(org) == bool(user):
        raise UsageError("name exactly one owner: --org / GITHUB_ORG or --user / GITHUB_OWNER_USER")
    owner = Owner("orgs", org) if org else Owner("users", user)  # type: ignore[arg-type]
    dest = args.dest or env.get("BACKUP_DEST") or DEFAULT_DEST
    try:
        source = parse_registry(
            args.source_registry or env.get("SOURCE_REGISTRY") or DEFAULT_SOURCE_REGISTRY
        )
        destination = parse_backup_prefix(dest)
        platforms = tuple(Platform.parse(p) for p in args.platform)
        policy = TagPolicy.from_patterns(
            args.include_tag,
            args.exclude_tag,
            all_patches=args.all_patches,
            keep_prereleases=args.keep_prereleases,
        )
    except (InvalidReference, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return RegistryConfig(
        owner=owner,
        token=_read_token(args, env),
        username=env.get("GITHUB_USERNAME") or DEFAULT_USERNAME,
        api_url=check_http_url(
            args.github_api_url or env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            "--github-api-url",
            "https://api.github.com or https://HOST/api/v3",
        ),
        source=source,
        destination=destination,
        destination_credentials=destination_credentials(destination.registry, env),
        policy=policy,
        packages=PackageFilter(tuple(args.include_package), tuple(args.exclude_package)),
        platforms=platforms,
        shard=shard_from(args, env),
    )
