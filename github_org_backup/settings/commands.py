"""The commands of the CLI and the options each takes, in the order --help shows them."""

from __future__ import annotations

from github_org_backup.settings.command_flags import OWN
from github_org_backup.settings.declare import Command, Option
from github_org_backup.settings.flags import SHARED
from github_org_backup.settings.restore_metadata import OPTIONS as RESTORE_METADATA
from github_org_backup.settings.variables import VARIABLES

EXIT_CODES = (
    (0, "done: everything asked for was backed up, checked, listed or restored"),
    (
        1,
        "some items failed (images, packages, repositories; each named in the log and the "
        "report) and the rest were done, or verify found problems (one line each on stdout)",
    ),
    (
        2,
        "usage, configuration or access: the run could not start or could not go on (a bad "
        "flag, a missing token, credentials refused, a registry or GitHub unreachable, "
        "discovery failed before any package)",
    ),
    (
        3,
        "nothing matched: the organisation, filter, shard or snapshot selected nothing to back "
        "up, check, list or restore (a warning names what exists); --allow-empty, in the "
        "commands that have it, makes it 0",
    ),
    (70, "a bug: one run_crashed event with the traceback (please report it)"),
    (130, "interrupted by SIGINT before a run could stop in order"),
    (141, "the reader of the output went away (as `| head` does)"),
    (
        143,
        "stopped by SIGTERM or SIGINT: the first signal stops the run in order within its grace "
        "period, a second one at once; the report is written",
    ),
)
"""The exit status of every command: one table, printed by every --help and in docs/cli.md."""

COMMANDS = (
    Command(
        "copy",
        "copy images between registries",
        "Copy one image (SRC DST) or a set of copy specs (--specs FILE).",
    ),
    Command(
        "registry",
        "back up every container package of a GitHub owner",
        "Discover an organisation's (or user's) GHCR packages through the GitHub API and copy "
        "them to --dest (default: the OCI layout ./ghcr-backup). By default it keeps the latest "
        "patch of every major.minor and every tag that is not a version (latest, main), and "
        "drops older patches, prereleases and per-commit or per-PR builds (sha-..., pr-N): see "
        "--all-patches, --keep-prereleases and --include-tag.",
    ),
    Command(
        "verify",
        "check that every backed-up tag is complete",
        "Walk every repository and tag below --dest (a registry prefix or oci:DIR) and check "
        "that every manifest and blob exists with the right size; each problem is one line on "
        "stdout. A registry without /v2/_catalog (ECR, GAR) cannot list its tags: they are "
        "taken from the latest snapshot, or, for a backup made in N shards, with --shard-count "
        "N from the latest snapshot of every shard. With a catalog every tag is checked and the "
        "shard flags change nothing.",
    ),
    Command(
        "restore",
        "copy a backup back into a registry",
        "Copy the tags of a snapshot (by default the latest; every tag when the backup has no "
        "snapshot) from below --from to the same path below --to, byte-exact, with the same "
        "engine as copy. A backup made in N shards keeps one snapshot series per shard: "
        "--shard-count N restores all of them.",
    ),
    Command(
        "snapshots",
        "list the snapshots of a backup",
        "List the snapshots kept in a backup: id (a UTC time), time, number of tags and of "
        "distinct digests, and the source.",
    ),
    Command(
        "repos",
        "back up every git repository of a GitHub owner as bare mirrors",
        "List an organisation's (or user's) repositories through the GitHub API and keep a bare "
        "mirror of each at DEST/OWNER/REPO.git with every branch and tag. Later runs fetch only "
        "what changed; a tip the source force-pushed away or deleted stays under "
        "refs/backup/<UTC time>/.",
    ),
    Command(
        "restore-metadata",
        "put back one repository's releases and issues from the metadata store",
        "Read one repository's metadata from the store repos --metadata keeps (as the last run "
        "left it, or as of an earlier run with --as-of) and create its releases, with every "
        "asset's bytes checked and uploaded, and its issues with their comments in another "
        "repository (--to); or write the issues as JSON lines to review or edit first "
        "(--export-issues). Everything is created by the token's identity: each issue and "
        "comment starts with a quoted header naming its original number, author and time.",
    ),
)

OPTIONS: tuple[Option, ...] = OWN + SHARED + VARIABLES + RESTORE_METADATA


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


def options_of(name: str) -> tuple[Option, ...]:
    """The options ``name`` takes, its own first, in declaration order."""
    return tuple(o for o in OPTIONS if name in o.commands)


def flagged(name: str) -> tuple[Option, ...]:
    """The options of ``name`` with a flag (or a positional): what its parser offers."""
    return tuple(o for o in options_of(name) if o.flags)


def variables(name: str) -> tuple[Option, ...]:
    """The environment variables ``name`` reads, with or without a flag."""
    return tuple(o for o in options_of(name) if o.env)
