"""Each command's options as one typed, frozen value, built once from flags and environment.

The command line hands a command nothing else: what a command does not read is not offered,
and what it reads has a type. Building the options is where usage errors surface (exit 2),
before any request is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from github_org_backup.base.limits import DEFAULT_IMAGE_TIMEOUT_S, Limits
from github_org_backup.errors import UsageError
from github_org_backup.history.record import Retention
from github_org_backup.history.snapshots import id_time, parse_duration, parse_timestamp
from github_org_backup.model.reference import Repository, parse_reference, parse_repository
from github_org_backup.model.specs import CopySpec, parse_specs
from github_org_backup.output.metrics import MetricsTargets
from github_org_backup.output.progress import on_terminal
from github_org_backup.output.report import check_output_path
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.settings.config import (
    DEFAULT_DEST,
    RegistryConfig,
    Shard,
    check_http_url,
    check_layout_directory,
    destination_credentials,
    load_registry_config,
    parse_backup_prefix,
    shard_from,
)
from github_org_backup.stores.factory import HttpSettings
from github_org_backup.stores.registry.credentials import Credentials
from github_org_backup.stores.registry.origins import Trust

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
    retention: Retention
    dry_run: bool
    emit_specs: bool
    prune: bool
    discovery_cache: bool


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


@dataclass(frozen=True)
class SnapshotsOptions:
    output: Output
    http: HttpSettings
    prefix: Repository
    credentials: Mapping[str, Credentials] = field(repr=False)
    json: bool = False
    series: tuple[str, ...] = ("",)


# From the parsed command line


def output_from(args: argparse.Namespace) -> Output:
    if args.report is not None:
        check_output_path(args.report)
    return Output(args.command, args.report, on_terminal(args.log_format))


def http_settings(args: argparse.Namespace) -> HttpSettings:
    """The HTTP settings, built once; --chunk-size only where a command uploads."""
    if args.ca_file is not None and not args.ca_file.is_file():
        raise UsageError(
            f"--ca-file {args.ca_file}: no such file (a PEM bundle of CA certificates)"
        )
    return HttpSettings(
        ca_file=args.ca_file,
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        chunk_size=getattr(args, "chunk_size", None),
        max_request_rates=dict(args.max_request_rate),
        limits=Limits(
            max_blob_bytes=args.max_blob_size,
            min_bytes_per_s=args.min_speed,
            image_timeout_s=getattr(args, "image_timeout", DEFAULT_IMAGE_TIMEOUT_S),
        ),
        trust=Trust(
            token_realms=frozenset(
                host.strip().lower()
                for host in [
                    *args.allow_token_realm,
                    *os.environ.get("BACKUP_ALLOW_TOKEN_REALMS", "").split(","),
                ]
                if host.strip()
            ),
            internal_redirects=args.allow_internal_redirects,
        ),
    )


def run_control_from(args: argparse.Namespace, env: Mapping[str, str]) -> RunControl:
    if args.metrics_file is not None:
        check_output_path(args.metrics_file, "--metrics-file", makes_parents=False)
    pushgateway = args.pushgateway or env.get("PUSHGATEWAY_URL")
    if pushgateway:
        check_http_url(pushgateway, "--pushgateway", "http://pushgateway:9091")
    shard = getattr(args, "shard", None) or env.get("JOB_COMPLETION_INDEX") or "all"
    metrics = MetricsTargets(
        pushgateway,
        args.metrics_file,
        shard.replace("/", "-of-"),
    )
    return RunControl(args.concurrency, args.grace_period, args.progress_interval, metrics)


def _retention(args: argparse.Namespace) -> Retention:
    try:
        keep_within = parse_duration(args.keep_within) if args.keep_within else None
    except OverflowError:  # past timedelta's 999,999,999 days
        raise UsageError(
            f"--keep-within {args.keep_within}: longer than the tool can count (at most "
            "2,700,000y); to keep every snapshot, leave out --keep-within and --keep-last"
        ) from None
    return Retention(args.keep_last, keep_within)


def _credentials(repository: Repository, env: Mapping[str, str]) -> dict[str, Credentials]:
    found = destination_credentials(repository.registry, env)
    return {repository.registry.host: found} if found else {}


def _series(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    """The snapshot series a command reads: one shard's (--shard I/N), every shard's of a
    backup made in N shards (--shard-count N), or the series of an unsharded backup.

    A flag beats either variable: ``--shard-count 4`` with BACKUP_SHARD=0/4 set reads all
    four series. With no flag, BACKUP_SHARD beats BACKUP_SHARD_COUNT."""
    shard_text = getattr(args, "shard", None)
    count_text = getattr(args, "shard_count", None)
    if not shard_text and not count_text:
        shard_text = env.get("BACKUP_SHARD")
        count_text = None if shard_text else env.get("BACKUP_SHARD_COUNT")
    if shard_text:
        shard = shard_from(argparse.Namespace(shard=shard_text), {})
        assert shard is not None
        return (shard.series,)
    if not count_text:
        return ("",)
    try:
        count = int(count_text)
    except ValueError:
        raise UsageError(f"--shard-count {count_text!r} is not an integer") from None
    if count < 1:
        raise UsageError(f"--shard-count {count}: need at least 1")
    return tuple(Shard(index, count).series for index in range(count))


def refuse_shard_flags(args: argparse.Namespace, why: str) -> None:
    """A usage error when --shard or --shard-count is given where it means nothing."""
    if getattr(args, "shard", None) or getattr(args, "shard_count", None):
        raise UsageError(f"{why}: --shard and --shard-count are for image backups")


def _backup(args: argparse.Namespace, env: Mapping[str, str]) -> Repository:
    return parse_backup_prefix(args.dest or env.get("BACKUP_DEST") or DEFAULT_DEST, must_exist=True)


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


def _copy_specs(args: argparse.Namespace) -> tuple[CopySpec, ...]:
    if args.specs is not None:
        if args.source or args.destination or args.platform:
            raise UsageError("give either SRC DST (with --platform) or --specs FILE, not both")
        return read_specs(args.specs)
    if not (args.source and args.destination):
        raise UsageError("copy needs SRC and DST, or --specs FILE")
    parse_reference(args.source)  # raise InvalidReference with the reference's own message
    destination = parse_reference(args.destination)
    if destination.repository.registry.layout:
        check_layout_directory(Path(destination.repository.registry.path), args.destination)
    spec: dict[str, Any] = {"src": args.source, "dst": args.destination}
    if args.platform:
        spec["transform"] = {"limitPlatforms": args.platform}
    return tuple(parse_specs(json.dumps(spec)))


def copy_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> CopyOptions:
    prefix = parse_backup_prefix(args.snapshot_prefix) if args.snapshot_prefix else None
    return CopyOptions(
        output=output_from(args),
        http=http_settings(args),
        run=run_control_from(args, env),
        specs=_copy_specs(args),
        snapshot_prefix=prefix,
        retention=_retention(args),
        credentials=_credentials(prefix, env) if prefix else {},
    )


def registry_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RegistryOptions:
    return RegistryOptions(
        output=output_from(args),
        http=http_settings(args),
        run=run_control_from(args, env),
        config=load_registry_config(args, env),
        retention=_retention(args),
        dry_run=args.dry_run,
        emit_specs=args.emit_specs,
        prune=args.prune,
        discovery_cache=args.discovery_cache,
    )


def verify_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> VerifyOptions:
    prefix = _backup(args, env)
    return VerifyOptions(
        output=output_from(args),
        http=http_settings(args),
        concurrency=args.concurrency,
        prefix=prefix,
        credentials=_credentials(prefix, env),
        deep=args.deep,
        from_report=args.from_report,
        packages=PackageFilter(tuple(args.include_package)),
        series=_series(args, env),
    )


def _include_tags(patterns: list[str]) -> TagPolicy | None:
    try:
        return TagPolicy.from_patterns(patterns) if patterns else None
    except ValueError as exc:  # a pattern that is not a regex names itself
        raise UsageError(str(exc)) from None


def restore_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RestoreOptions:
    if args.snapshot:
        id_time(args.snapshot)  # a usage error when it is not an id
    series = _series(args, env)
    if args.snapshot and len(series) > 1:
        raise UsageError(
            "--snapshot names a snapshot of one shard: give --shard I/N with it, "
            "or restore every shard with --as-of TIME and --shard-count"
        )
    target = parse_repository(args.target, root=True)
    if target.registry.layout:
        check_layout_directory(Path(target.registry.path), args.target)
    return RestoreOptions(
        output=output_from(args),
        http=http_settings(args),
        run=run_control_from(args, env),
        source=parse_backup_prefix(args.source, must_exist=True),
        target=target,
        credentials=_credentials(target, env),
        packages=PackageFilter(tuple(args.include_package)),
        include_tags=_include_tags(args.include_tag),
        from_report=args.from_report,
        snapshot=args.snapshot,
        as_of=parse_timestamp(args.as_of) if args.as_of else None,
        series=series,
    )


def snapshots_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> SnapshotsOptions:
    prefix = _backup(args, env)
    return SnapshotsOptions(
        output=output_from(args),
        http=http_settings(args),
        prefix=prefix,
        credentials=_credentials(prefix, env),
        json=args.json,
        series=_series(args, env),
    )
