"""The commands of the CLI and the options each takes, in the order --help shows them."""

from __future__ import annotations

from github_org_backup.settings.command_flags import OWN
from github_org_backup.settings.declare import Command, Option
from github_org_backup.settings.flags import SHARED
from github_org_backup.settings.variables import VARIABLES

INTERRUPTED = (143, "stopped by SIGTERM or SIGINT (after --grace-period; the report is written)")
COPY_EXIT = (
    (0, "every image copied or already current"),
    (1, "some images failed, the rest were copied"),
    (2, "usage, configuration or access error before anything was copied"),
    INTERRUPTED,
)
REGISTRY_EXIT = (
    COPY_EXIT[0],
    (1, "some images or packages failed, or discovery stopped early; the rest were copied"),
    *COPY_EXIT[2:],
)
EVERY_EXIT = (
    (70, "a bug: one run_crashed event with the traceback (please report it)"),
    (130, "interrupted by SIGINT before a run could stop in order"),
    (141, "the reader of the output went away (as `| head` does)"),
)

COMMANDS = (
    Command(
        "copy",
        "copy images between registries",
        "Copy one image (SRC DST) or a set of copy specs (--specs FILE).",
        COPY_EXIT,
    ),
    Command(
        "registry",
        "back up every container package of a GitHub owner",
        "Discover an organisation's (or user's) GHCR packages through the GitHub API, keep the "
        "latest patch of every major.minor, and copy them to --dest.",
        REGISTRY_EXIT,
    ),
    Command(
        "verify",
        "check that every backed-up tag is complete",
        "Walk every repository and tag below --dest (a registry prefix or oci:DIR) and check "
        "that every manifest and blob exists with the right size. A registry without "
        "/v2/_catalog (ECR, GAR) cannot list its tags: they are taken from the latest snapshot, "
        "or, for a backup made in N shards, with --shard-count N from the latest snapshot of "
        "every shard. With a catalog every tag is checked and the shard flags change nothing.",
        (
            (0, "every tag complete (--repos: every mirror sound and, with a token, current)"),
            (1, "problems found (one line each on stdout), or nothing found to check"),
            (
                2,
                "usage or configuration error (a missing layout directory, a registry without "
                "/v2/_catalog and no --from-report, or no snapshot of a shard named by --shard "
                "or --shard-count)",
            ),
        ),
    ),
    Command(
        "restore",
        "copy a backup back into a registry",
        "Copy the tags of a snapshot (by default the latest; every tag when the backup has no "
        "snapshot) from below --from to the same path below --to, byte-exact, with the same "
        "engine as copy. A backup made in N shards keeps one snapshot series per shard: "
        "--shard-count N restores all of them.",
        COPY_EXIT,
    ),
    Command(
        "snapshots",
        "list the snapshots of a backup",
        "List the snapshots kept in a backup: id (a UTC time), time, number of tags and of "
        "distinct digests, and the source.",
        (
            (0, "snapshots listed"),
            (1, "the backup has no snapshot"),
            (2, "usage or configuration error"),
        ),
    ),
    Command(
        "repos",
        "back up every git repository of a GitHub owner as bare mirrors",
        "List an organisation's (or user's) repositories through the GitHub API and keep a bare "
        "mirror of each at DEST/OWNER/REPO.git with every branch and tag. Later runs fetch only "
        "what changed; a tip the source force-pushed away or deleted stays under "
        "refs/backup/<UTC time>/.",
        (
            (0, "every repository mirrored or already current"),
            (1, "some repositories failed, the rest were mirrored"),
            (2, "usage, configuration or access error before anything was fetched"),
            INTERRUPTED,
        ),
    ),
)

OPTIONS: tuple[Option, ...] = OWN + SHARED + VARIABLES


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
