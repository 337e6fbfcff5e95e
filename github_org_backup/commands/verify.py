"""`verify`: every tag of a backup complete, each descriptor's size (and with --deep, digest)."""

from __future__ import annotations

import structlog

from github_org_backup.commands.run import EXIT_EMPTY, EXIT_FAILED, EXIT_OK
from github_org_backup.commands.tags import backup_tags, nothing_found
from github_org_backup.copy.verify import Verifier
from github_org_backup.errors import ContentError
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import is_reserved
from github_org_backup.output.report import write_report
from github_org_backup.settings.options import VerifyOptions
from github_org_backup.stores.factory import open_clients
from github_org_backup.stores.registry.credentials import CredentialStore

log = structlog.get_logger("github_org_backup.commands")


async def run_verify(options: VerifyOptions) -> int:
    prefix = options.prefix
    credentials = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    async with open_clients(credentials, options.http) as clients:
        store = clients(prefix.registry)
        try:
            tags = await backup_tags(
                store,
                prefix,
                options.packages,
                None,
                options.from_report,
                internal=not options.packages.include,  # snapshots and histories too
                series=options.series,
            )
        except ContentError as exc:  # the backup's own index is damaged: a problem found
            return _unreadable(options, exc)
        verifier = Verifier(store, deep=options.deep, concurrency=options.concurrency)
        result = await verifier.verify(tags)
        empty = None if tags else await nothing_found(store, prefix, options.packages)
    for problem in result.problems:
        print(problem, flush=True)
    own = sum(is_reserved(_relative(name, prefix), tag) for name, tag in tags)
    summary = {
        "tags": len(tags) - own,  # the images' tags; the tool's own (snapshots) apart
        "backup_tags": own,
        "manifests": result.manifests,
        "blobs": result.blobs,
        "problems": len(result.problems),
        "deep": options.deep,
    }
    log.info("verify_finished", backup=str(prefix), **summary)
    if options.output.report:
        problems = [str(p) for p in result.problems]
        write_report(options.output.report, {"summary": summary, "problems": problems})
    if empty is not None:
        log.warning("nothing_selected", reason=empty, allow_empty=options.allow_empty)
        return EXIT_OK if options.allow_empty else EXIT_EMPTY
    return EXIT_FAILED if result.problems else EXIT_OK


def _unreadable(options: VerifyOptions, exc: ContentError) -> int:
    """A backup whose list of tags cannot be read is damaged: one problem, exit 1."""
    problem = f"{options.prefix}: {exc}"
    print(problem, flush=True)
    summary = {"tags": 0, "backup_tags": 0, "manifests": 0, "blobs": 0, "problems": 1}
    log.info("verify_finished", backup=str(options.prefix), **summary, deep=options.deep)
    if options.output.report:
        write_report(options.output.report, {"summary": summary, "problems": [problem]})
    return EXIT_FAILED


def _relative(name: str, prefix: Repository) -> str:
    return Repository(prefix.registry, name).relative_to(prefix) or ""
