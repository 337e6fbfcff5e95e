"""`snapshots`: list a backup's snapshots (id, time, tags, digests)."""

from __future__ import annotations

import json
import sys
from typing import Any

import structlog

from github_org_backup.commands.run import EXIT_EMPTY, EXIT_OK
from github_org_backup.history.store import Snapshots
from github_org_backup.output.report import write_report
from github_org_backup.settings.options import SnapshotsOptions
from github_org_backup.stores.factory import open_clients
from github_org_backup.stores.registry.credentials import CredentialStore

log = structlog.get_logger("github_org_backup.commands")


async def run_snapshots(options: SnapshotsOptions) -> int:
    prefix = options.prefix
    sharded = options.series != ("",)
    credentials = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    found: list[dict[str, Any]] = []
    async with open_clients(credentials, options.http) as clients:
        for series in options.series:
            snapshots = Snapshots(clients(prefix.registry), prefix, series)
            before = len(found)
            async for snapshot in snapshots.all():
                found.append(snapshot.summary() | ({"shard": series} if sharded else {}))
            if sharded and len(found) == before:
                log.warning("shard_has_no_snapshots", shard=series, backup=str(prefix))
    if options.json:
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        shard_column = f"{'shard':<16} " if sharded else ""
        print(f"{shard_column}{'id':<22} {'time':<25} {'tags':>6} {'digests':>8}  source")
        for entry in found:
            shard = f"{entry['shard']:<16} " if sharded else ""
            print(
                f"{shard}{entry['id']:<22} {entry['time']:<25} {entry['tags']:>6} "
                f"{entry['digests']:>8}  {entry['source']}"
            )
    if options.output.report:
        write_report(options.output.report, {"snapshots": found})
    if not found:
        log.warning(
            "nothing_selected",
            reason=f"{prefix} has no snapshot: registry and copy --snapshot-prefix write them",
            allow_empty=options.allow_empty,
        )
        return EXIT_OK if options.allow_empty else EXIT_EMPTY
    return EXIT_OK
