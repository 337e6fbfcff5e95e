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
from typing import TYPE_CHECKING
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

if TYPE_CHECKING:
    from github_org_backup.github.identity import Identity


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


APP_VARIABLES = (
    variables.GITHUB_APP_ID,
    variables.GITHUB_APP_PRIVATE_KEY_FILE,
    variables.GITHUB_APP_INSTALLATION_ID,
)
_MAX_KEY_BYTES = 64 * 1024  # a 4096-bit RSA key in PEM is about 3.3 KiB


def read_token(
    path: str | None, env: Mapping[str, str], *, kind: str, app_instead: bool = False
) -> str:
    """The GitHub token: from the file at ``path`` if given, else GITHUB_TOKEN. ``kind`` says,
    in a usage error, which token the command needs (TOKEN_FOR_PACKAGES, TOKEN_FOR_REPOS);
    ``app_instead``, that a GitHub App would do as well."""
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
    if token:
        return str(token)
    if app_instead:
        raise UsageError(
            f"no GitHub token: set GITHUB_TOKEN or pass --github-token-file PATH ({kind}), "
            "or use a GitHub App: GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE"
        )
    set_for_app = _app_variables_set(env)
    if set_for_app:
        raise UsageError(
            f"no GitHub token: {' and '.join(set_for_app)} "
            f"{'is' if len(set_for_app) == 1 else 'are'} set, but GitHub's packages API does "
            "not accept a GitHub App's tokens: this command needs GITHUB_TOKEN or "
            f"--github-token-file PATH ({kind}); the App serves the repos command"
        )
    raise UsageError(f"no GitHub token: set GITHUB_TOKEN or pass --github-token-file PATH ({kind})")


def _app_variables_set(env: Mapping[str, str]) -> list[str]:
    return [o.env for o in APP_VARIABLES if o.env and env.get(o.env, "").strip()]


def identity_from(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Identity:
    """Who `repos` is to GitHub: a token (GITHUB_TOKEN or --github-token-file) or a GitHub
    App (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE, GITHUB_APP_INSTALLATION_ID), never both.
    The key is read and checked here; the installation is asked for at the first request."""
    from github_org_backup.github.identity import AppIdentity, TokenIdentity

    token_file = getattr(args, "github_token_file", None)
    set_for_app = _app_variables_set(env)
    if not set_for_app:
        return TokenIdentity(read_token(token_file, env, kind=TOKEN_FOR_REPOS, app_instead=True))
    given_by = "--github-token-file" if token_file else None
    if given_by is None and from_env(variables.GITHUB_TOKEN, env):
        given_by = "GITHUB_TOKEN"
    if given_by:
        raise UsageError(
            f"both {given_by} and a GitHub App ({', '.join(set_for_app)}) are set: set "
            "one, a token or the App (GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY_FILE)"
        )
    app_id = from_env(variables.GITHUB_APP_ID, env)
    key_file = from_env(variables.GITHUB_APP_PRIVATE_KEY_FILE, env)
    if app_id is None or key_file is None:
        missing = "GITHUB_APP_ID" if app_id is None else "GITHUB_APP_PRIVATE_KEY_FILE"
        raise UsageError(
            f"{', '.join(set_for_app)} set without {missing}: a GitHub App needs its App ID "
            "(GITHUB_APP_ID) and one of its private keys (GITHUB_APP_PRIVATE_KEY_FILE)"
        )
    return AppIdentity(
        app_id,
        read_private_key(str(key_file)),
        from_env(variables.GITHUB_APP_INSTALLATION_ID, env),
        api_url_from(args, env),
        owner_from(args, env),
    )


def read_private_key(path: str) -> str:
    """The PEM text of the RSA private key in the file at ``path``. A usage error says what
    is wrong with the file and never shows what it holds."""
    what = f"GITHUB_APP_PRIVATE_KEY_FILE {path}"
    try:
        with Path(path).open("rb") as file:
            data = file.read(_MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{what}: no such file: save there the private key (.pem) generated on the App's "
            "settings page"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory: name the .pem file of the App's key") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror}") from None
    if not data.strip():
        raise UsageError(f"{what} is empty: save the App's private key (.pem) into it")
    if len(data) > _MAX_KEY_BYTES or b"-----BEGIN " not in data:
        raise UsageError(
            f"{what} is not a PEM file: it should hold the App's private key as GitHub gives "
            "it, from -----BEGIN RSA PRIVATE KEY----- to the END line"
        )
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:  # it asks for a password
        raise UsageError(
            f"{what} holds an encrypted key: give the key as GitHub generated it, unencrypted "
            "(and keep the file readable only by the job)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(
            f"{what} holds no readable PEM private key: save the .pem file GitHub gave when the "
            "key was generated, unchanged"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(
            f"{what} holds a private key that is not RSA: a GitHub App's keys are RSA (the "
            ".pem file generated on the App's settings page)"
        )
    return data.decode("ascii", errors="replace").strip() + "\n"


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
