"""Each command's options as one typed, frozen value, and what their builders share.

The builders themselves sit beside (settings.images, settings.repos).

The command line hands a command nothing else: what a command does not read is not offered,
and what it reads has a type. Building the options is where usage errors surface (exit 2),
before any request is sent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from github_org_backup.base.limits import DEFAULT_IMAGE_TIMEOUT_S, Limits
from github_org_backup.errors import UsageError
from github_org_backup.history.model import parse_duration
from github_org_backup.history.retention import Retention
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.model.specs import CopySpec, parse_specs
from github_org_backup.output.metrics import MetricsTargets
from github_org_backup.output.progress import on_terminal
from github_org_backup.output.report import check_output_path
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.settings import command_flags, flags, values, variables
from github_org_backup.settings.config import (
    RegistryConfig,
    Shard,
    check_http_url,
    check_layout_directory,
    destination_credentials,
    parse_backup_prefix,
    shard_from,
    shard_texts,
)
from github_org_backup.settings.declare import Option, from_env, given, resolve
from github_org_backup.stores.factory import HttpSettings
from github_org_backup.stores.registry.credentials import Credentials
from github_org_backup.stores.registry.origins import Trust

if TYPE_CHECKING:
    from github_org_backup.github.http import GitHubSettings

log = structlog.get_logger("github_org_backup.settings.options")


@dataclass(frozen=True)
class Output:
    """What every command writes besides its work: the report, and how a person sees it."""

    command: str
    report: Path | None
    terminal: bool  # a person is watching: live display and an end table instead of JSON


@dataclass(frozen=True)
class RunControl:
    """How a run that copies behaves: how much at once, how it stops, what it publishes."""

    concurrency: int
    grace_period_s: float
    progress_interval_s: float
    metrics: MetricsTargets
    fixed: bool = True  # False: --concurrency unset, so a copy may raise it as the link asks


@dataclass(frozen=True)
class CopyOptions:
    output: Output
    http: HttpSettings
    run: RunControl
    specs: tuple[CopySpec, ...]
    snapshot_prefix: Repository | None
    retention: Retention
    credentials: Mapping[str, Credentials] = field(repr=False)


@dataclass(frozen=True)
class RegistryOptions:
    output: Output
    http: HttpSettings
    run: RunControl
    config: RegistryConfig
    github: GitHubSettings
    retention: Retention
    dry_run: bool
    emit_specs: bool
    prune: bool
    discovery_cache: bool
    allow_empty: bool = False
    dest_given: bool = True  # False: the default layout, which the run names at its start


@dataclass(frozen=True)
class VerifyOptions:
    output: Output
    http: HttpSettings
    concurrency: int
    prefix: Repository
    credentials: Mapping[str, Credentials] = field(repr=False)
    deep: bool = False
    from_report: Path | None = None
    packages: PackageFilter = field(default_factory=PackageFilter)
    series: tuple[str, ...] = ("",)  # the snapshot series naming the tags without a catalog
    allow_empty: bool = False


@dataclass(frozen=True)
class RestoreOptions:
    output: Output
    http: HttpSettings
    run: RunControl
    source: Repository
    target: Repository
    credentials: Mapping[str, Credentials] = field(repr=False)
    packages: PackageFilter = field(default_factory=PackageFilter)
    include_tags: TagPolicy | None = None
    from_report: Path | None = None
    snapshot: str | None = None
    as_of: datetime | None = None
    series: tuple[str, ...] = ("",)
    dry_run: bool = False
    allow_empty: bool = False


@dataclass(frozen=True)
class SnapshotsOptions:
    output: Output
    http: HttpSettings
    prefix: Repository
    credentials: Mapping[str, Credentials] = field(repr=False)
    json: bool = False
    series: tuple[str, ...] = ("",)
    allow_empty: bool = False


# What several commands build alike, from the parsed command line and the environment


def output_from(args: argparse.Namespace) -> Output:
    report = resolve(flags.REPORT, args, {})
    if report is not None:
        check_output_path(report)
    return Output(args.command, report, on_terminal(resolve(flags.LOG_FORMAT, args, {})))


def http_settings(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> HttpSettings:
    """The HTTP settings, built once; --chunk-size and --image-timeout where a command copies."""
    ca_file = resolve(flags.CA_FILE, args, env)
    if ca_file is not None and not ca_file.is_file():
        raise UsageError(f"--ca-file {ca_file}: no such file (a PEM bundle of CA certificates)")
    copies = args.command in flags.CHUNK_SIZE.commands
    return HttpSettings(
        ca_file=ca_file,
        connect_timeout_s=resolve(flags.CONNECT_TIMEOUT, args, env),
        read_timeout_s=resolve(flags.READ_TIMEOUT, args, env),
        chunk_size=resolve(flags.CHUNK_SIZE, args, env) if copies else None,
        max_request_rates=dict(resolve(flags.MAX_REQUEST_RATE, args, env)),
        limits=Limits(
            max_blob_bytes=resolve(flags.MAX_BLOB_SIZE, args, env),
            min_bytes_per_s=resolve(flags.MIN_SPEED, args, env),
            image_timeout_s=resolve(flags.IMAGE_TIMEOUT, args, env)
            if copies
            else DEFAULT_IMAGE_TIMEOUT_S,
        ),
        trust=Trust(
            token_realms=frozenset(
                values.host_list(",".join(resolve(flags.ALLOW_TOKEN_REALM, args, env)))
            ),
            internal_redirects=resolve(flags.ALLOW_INTERNAL_REDIRECTS, args, env),
        ),
    )


def github_settings(command: str, env: Mapping[str, str]) -> GitHubSettings:
    """The GITHUB_API_* variables ``command`` reads (GITHUB_API_RETRIES only registry's), the
    one place they are read: a bad value is a usage error naming its variable."""
    from github_org_backup.github.http import ApiLimits, GitHubSettings  # requests: not for copy

    retries = variables.GITHUB_API_RETRIES
    return GitHubSettings(
        ApiLimits(
            max_page_bytes=resolve(variables.GITHUB_API_MAX_PAGE_BYTES, None, env),
            max_pages=resolve(variables.GITHUB_API_MAX_PAGES, None, env),
        ),
        retries=resolve(retries, None, env) if command in retries.commands else retries.default,
    )


def run_control_from(
    args: argparse.Namespace, env: Mapping[str, str], *, concurrency: Option = flags.CONCURRENCY
) -> RunControl:
    metrics_file = resolve(flags.METRICS_FILE, args, env)
    if metrics_file is not None:
        check_output_path(metrics_file, "--metrics-file", makes_parents=False)
    pushgateway = resolve(flags.PUSHGATEWAY, args, env)
    if pushgateway:
        check_http_url(pushgateway, "--pushgateway", "http://pushgateway:9091")
    # The label keeps shards apart in the Pushgateway: BACKUP_SHARD counts as --shard does.
    text = shard_texts(args, env)[0] if hasattr(args, "shard") else None
    shard = text or from_env(variables.JOB_COMPLETION_INDEX, env) or "all"
    metrics = MetricsTargets(pushgateway, metrics_file, shard.replace("/", "-of-"))
    return RunControl(
        resolve(concurrency, args, env),
        resolve(flags.GRACE_PERIOD, args, env),
        resolve(flags.PROGRESS_INTERVAL, args, env),
        metrics,
        fixed=given(concurrency, args, env),
    )


def retention_from(args: argparse.Namespace, env: Mapping[str, str]) -> Retention:
    keep_within = resolve(flags.KEEP_WITHIN, args, env)
    try:
        within = parse_duration(keep_within) if keep_within else None
    except OverflowError:  # past timedelta's 999,999,999 days
        raise UsageError(
            f"--keep-within {keep_within}: longer than the tool can count (at most "
            "2,700,000y); to keep every snapshot, leave out --keep-within and --keep-last"
        ) from None
    return Retention(resolve(flags.KEEP_LAST, args, env), within)


def credentials_for(repository: Repository, env: Mapping[str, str]) -> dict[str, Credentials]:
    """DEST_USERNAME and DEST_PASSWORD for the registry of ``repository`` (none for a layout)."""
    return written_credentials([repository.registry], env)


def written_credentials(
    registries: Iterable[Registry], env: Mapping[str, str]
) -> dict[str, Credentials]:
    """DEST_USERNAME and DEST_PASSWORD for each registry host a command writes to; a host it
    only reads from gets none (docker config.json serves it)."""
    found: dict[str, Credentials] = {}
    for registry in registries:
        if (credentials := destination_credentials(registry, env)) is not None:
            found[registry.host] = credentials
    return found


def series_from(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    """The snapshot series a command reads: one shard's (--shard I/N), every shard's of a
    backup made in N shards (--shard-count N), or the series of an unsharded backup.

    The one shard rule (settings.config.shard_texts): a flag beats both variables, and the two
    of one level exclude each other."""
    shard_text, count_text = shard_texts(args, env)
    if shard_text:
        shard = shard_from(argparse.Namespace(shard=shard_text), {})
        assert shard is not None
        return (shard.series,)
    if not count_text:
        return ("",)
    count = values.positive_int(count_text)
    return tuple(Shard(index, count).series for index in range(count))


def refuse_shard_flags(args: argparse.Namespace, why: str) -> None:
    """A usage error when --shard or --shard-count is given where it means nothing."""
    if getattr(args, "shard", None) or getattr(args, "shard_count", None):
        raise UsageError(f"{why}: --shard and --shard-count are for image backups")


def backup_from(args: argparse.Namespace, env: Mapping[str, str]) -> Repository:
    """The backup a reading command opens (--dest / BACKUP_DEST): it must exist."""
    return parse_backup_prefix(resolve(command_flags.DEST, args, env), must_exist=True)


def read_specs(path: str) -> tuple[CopySpec, ...]:
    """A spec file (``-`` for stdin), validated as a set."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read specs {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"specs {path} are not UTF-8 text (byte {exc.start}): "
            'a spec file holds JSON objects such as {"src": ..., "dst": ...}'
        ) from None
    specs = parse_specs(text)
    if not specs:
        log.warning("specs_empty", specs=path, hint="nothing to copy")
    layouts = {s.destination.repository.registry for s in specs}
    for layout in sorted((r for r in layouts if r.layout), key=lambda r: r.path):
        check_layout_directory(Path(layout.path), str(layout))
    return tuple(specs)
