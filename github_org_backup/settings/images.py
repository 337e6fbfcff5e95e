"""The options builders of the commands that copy or read images: copy, registry, verify,
restore, snapshots. Usage errors surface here (exit 2), before any request is sent."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from github_org_backup.errors import UsageError
from github_org_backup.history.model import id_time, parse_timestamp
from github_org_backup.model.reference import parse_reference, parse_repository
from github_org_backup.model.specs import CopySpec, parse_specs
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.settings import command_flags as own
from github_org_backup.settings import flags
from github_org_backup.settings.config import (
    check_layout_directory,
    load_registry_config,
    parse_backup_prefix,
)
from github_org_backup.settings.declare import given, resolve
from github_org_backup.settings.options import (
    CopyOptions,
    RegistryOptions,
    RestoreOptions,
    SnapshotsOptions,
    VerifyOptions,
    backup_from,
    credentials_for,
    github_settings,
    http_settings,
    output_from,
    read_specs,
    retention_from,
    run_control_from,
    series_from,
    written_credentials,
)


def _copy_specs(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[CopySpec, ...]:
    specs = resolve(own.SPECS, args, env)
    source = resolve(own.SOURCE, args, env)
    destination = resolve(own.DESTINATION, args, env)
    platforms = resolve(own.PLATFORM, args, env)
    if specs is not None:
        if source or destination or platforms:
            raise UsageError("give either SRC DST (with --platform) or --specs FILE, not both")
        return read_specs(specs)
    if not (source and destination):
        raise UsageError("copy needs SRC and DST, or --specs FILE")
    parse_reference(source)  # raise InvalidReference with the reference's own message
    target = parse_reference(destination)
    if target.repository.registry.layout:
        check_layout_directory(Path(target.repository.registry.path), destination)
    spec: dict[str, Any] = {"src": source, "dst": destination}
    if platforms:
        spec["transform"] = {"limitPlatforms": platforms}
    return tuple(parse_specs(json.dumps(spec)))


def copy_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> CopyOptions:
    snapshot_prefix = resolve(own.SNAPSHOT_PREFIX, args, env)
    prefix = parse_backup_prefix(snapshot_prefix) if snapshot_prefix else None
    specs = _copy_specs(args, env)
    # DEST_USERNAME/DEST_PASSWORD name the registries written to: every DST and the prefix's.
    written = [spec.destination.repository.registry for spec in specs]
    return CopyOptions(
        output=output_from(args),
        http=http_settings(args, env),
        run=run_control_from(args, env),
        specs=specs,
        snapshot_prefix=prefix,
        retention=retention_from(args, env),
        credentials=written_credentials([*written, *([prefix.registry] if prefix else [])], env),
    )


def registry_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RegistryOptions:
    return RegistryOptions(
        output=output_from(args),
        http=http_settings(args, env),
        run=run_control_from(args, env),
        config=load_registry_config(args, env),
        github=github_settings(args.command, env),
        retention=retention_from(args, env),
        dry_run=resolve(own.DRY_RUN, args, env),
        emit_specs=resolve(own.EMIT_SPECS, args, env),
        prune=resolve(own.PRUNE, args, env),
        discovery_cache=resolve(own.NO_DISCOVERY_CACHE, args, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
        dest_given=given(own.DEST, args, env),
    )


def verify_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> VerifyOptions:
    prefix = backup_from(args, env)
    return VerifyOptions(
        output=output_from(args),
        http=http_settings(args, env),
        concurrency=resolve(flags.CONCURRENCY, args, env),
        prefix=prefix,
        credentials=credentials_for(prefix, env),
        deep=resolve(own.DEEP, args, env),
        from_report=resolve(own.FROM_REPORT, args, env),
        packages=PackageFilter(tuple(resolve(own.INCLUDE_PACKAGE, args, env))),
        series=series_from(args, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
    )


def _include_tags(patterns: list[str]) -> TagPolicy | None:
    try:
        return TagPolicy.from_patterns(patterns) if patterns else None
    except ValueError as exc:  # a pattern that is not a regex names itself
        raise UsageError(str(exc)) from None


def restore_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RestoreOptions:
    snapshot = resolve(own.SNAPSHOT, args, env)
    if snapshot:
        id_time(snapshot)  # a usage error when it is not an id
    series = series_from(args, env)
    if snapshot and len(series) > 1:
        raise UsageError(
            "--snapshot names a snapshot of one shard: give --shard I/N with it, "
            "or restore every shard with --as-of TIME and --shard-count"
        )
    target_text = resolve(own.TO, args, env)
    target = parse_repository(target_text, root=True)
    if target.registry.layout:
        check_layout_directory(Path(target.registry.path), target_text)
    as_of = resolve(own.AS_OF, args, env)
    return RestoreOptions(
        output=output_from(args),
        http=http_settings(args, env),
        run=run_control_from(args, env),
        source=parse_backup_prefix(resolve(own.FROM, args, env), must_exist=True),
        target=target,
        credentials=credentials_for(target, env),
        packages=PackageFilter(tuple(resolve(own.INCLUDE_PACKAGE, args, env))),
        include_tags=_include_tags(resolve(own.RESTORE_TAG, args, env)),
        from_report=resolve(own.FROM_REPORT, args, env),
        snapshot=snapshot,
        as_of=parse_timestamp(as_of) if as_of else None,
        series=series,
        dry_run=resolve(own.RESTORE_DRY_RUN, args, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
    )


def snapshots_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> SnapshotsOptions:
    prefix = backup_from(args, env)
    return SnapshotsOptions(
        output=output_from(args),
        http=http_settings(args, env),
        prefix=prefix,
        credentials=credentials_for(prefix, env),
        json=resolve(own.JSON, args, env),
        series=series_from(args, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
    )
