"""The `registry` command's settings, and the readers the commands share (owner, token, API,
shards, backup prefixes): flags first, then environment variables, then defaults.

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
from github_org_backup.settings import command_flags as own
from github_org_backup.settings import flags, variables
from github_org_backup.settings.declare import from_env, resolve
from github_org_backup.stores.registry.credentials import ENVIRONMENT, Credentials


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
        """Whether ``package`` (a name below the owner) is this run's to back up."""
        named = f"{self.owner.name}/{package}"
        return self.packages.allows(named) and (self.shard is None or self.shard.owns(package))

    def credentials(self) -> dict[str, Credentials]:
        github = Credentials(self.username, self.token, source=GITHUB_TOKEN_SOURCE)
        found = {self.source.host: github}
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


GITHUB_TOKEN_SOURCE = "the GitHub token (GITHUB_TOKEN or --github-token-file)"  # noqa: S105


def destination_credentials(
    registry: Registry, env: Mapping[str, str] = os.environ
) -> Credentials | None:
    """DEST_USERNAME and DEST_PASSWORD, the one place they are read: the credentials of the
    backup's own registry (for restore, of --to; for copy, of every DST registry). They go
    before docker config.json. None for a layout or when unset."""
    user, password = from_env(variables.DEST_USERNAME, env), from_env(variables.DEST_PASSWORD, env)
    if bool(user) != bool(password):
        raise UsageError("set both DEST_USERNAME and DEST_PASSWORD, or neither")
    if not user or not password or registry.layout:
        return None
    return Credentials(user, password, source=ENVIRONMENT)


def _not_a_host(text: str) -> bool:
    first = text.partition("/")[0]
    return not any(c in first for c in ".:[") and first != "localhost"


TOKEN_FOR_PACKAGES = "a classic personal access token with read:packages"  # noqa: S105
TOKEN_FOR_REPOS = (  # words for messages, not a token
    "a classic personal access token with the repo scope, or a fine-grained token with "  # noqa: S105
    "Contents: read"
)


def read_token(path: str | None, env: Mapping[str, str], *, kind: str) -> str:
    """The GitHub token: from the file at ``path`` if given, else GITHUB_TOKEN. ``kind`` says,
    in a usage error, which token the command needs (TOKEN_FOR_PACKAGES, TOKEN_FOR_REPOS)."""
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --github-token-file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(
                f"--github-token-file {path} is not text: it should hold only the token"
            ) from None
        if not token:
            raise UsageError(
                f"--github-token-file {path} is empty: write the token ({kind}) into it"
            )
    else:
        token = from_env(variables.GITHUB_TOKEN, env) or ""
    if not token:
        raise UsageError(
            f"no GitHub token: set GITHUB_TOKEN or pass --github-token-file PATH ({kind})"
        )
    return str(token)


def shard_texts(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """--shard and --shard-count, or else BACKUP_SHARD and BACKUP_SHARD_COUNT: the one shard
    rule of every command. A flag beats both variables; the two of one level exclude each other.
    """
    flag, count = getattr(args, "shard", None) or None, getattr(args, "shard_count", None)
    if flag or count:
        if flag and count:
            raise UsageError("give --shard I/N or --shard-count N, not both")
        return flag, None if count is None else str(count)
    text, count = from_env(flags.SHARD, env), from_env(flags.SHARD_COUNT, env)
    if text and count:
        raise UsageError(
            "BACKUP_SHARD and BACKUP_SHARD_COUNT are both set: set one (a flag beats both)"
        )
    return text, None if count is None else str(count)


def shard_from(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Shard | None:
    """--shard I/N or BACKUP_SHARD; or --shard-count N (BACKUP_SHARD_COUNT) with the index from
    JOB_COMPLETION_INDEX. None when the run is not sharded."""
    text, count_given = shard_texts(args, env)
    if text:
        index_text, sep, count_text = text.partition("/")
        if not sep:
            raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4")
    elif count_given:
        count_text = count_given
        index_text = from_env(variables.JOB_COMPLETION_INDEX, env) or ""
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


def owner_from(args: argparse.Namespace, env: Mapping[str, str]) -> Owner:
    """--org / GITHUB_ORG or --user / GITHUB_OWNER_USER: exactly one."""
    org, user = resolve(flags.ORG, args, env), resolve(flags.USER, args, env)
    if bool(org) == bool(user):
        raise UsageError("name exactly one owner: --org / GITHUB_ORG or --user / GITHUB_OWNER_USER")
    return Owner("orgs", org) if org else Owner("users", user)


def api_url_from(args: argparse.Namespace | None, env: Mapping[str, str]) -> str:
    return check_http_url(
        resolve(flags.GITHUB_API_URL, args, env),
        "--github-api-url",
        "https://api.github.com or https://HOST/api/v3",
    )


def username_from(env: Mapping[str, str]) -> str:
    return str(resolve(variables.GITHUB_USERNAME, None, env))


def load_registry_config(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RegistryConfig:
    owner = owner_from(args, env)
    try:
        source = parse_registry(resolve(own.SOURCE_REGISTRY, args, env))
        destination = parse_backup_prefix(resolve(own.DEST, args, env))
        platforms = tuple(Platform.parse(p) for p in resolve(own.PLATFORM, args, env))
        policy = TagPolicy.from_patterns(
            resolve(own.INCLUDE_TAG, args, env),
            resolve(own.EXCLUDE_TAG, args, env),
            all_patches=resolve(own.ALL_PATCHES, args, env),
            keep_prereleases=resolve(own.KEEP_PRERELEASES, args, env),
        )
    except (InvalidReference, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return RegistryConfig(
        owner=owner,
        token=read_token(args.github_token_file, env, kind=TOKEN_FOR_PACKAGES),
        username=username_from(env),
        api_url=api_url_from(args, env),
        source=source,
        destination=destination,
        destination_credentials=destination_credentials(destination.registry, env),
        policy=policy,
        packages=PackageFilter(
            tuple(resolve(own.INCLUDE_PACKAGE, args, env)),
            tuple(resolve(own.EXCLUDE_PACKAGE, args, env)),
        ),
        platforms=platforms,
        shard=shard_from(args, env),
    )
