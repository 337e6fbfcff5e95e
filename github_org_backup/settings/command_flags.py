"""The options of one command each (or of a few that read a backup), declared once."""

from __future__ import annotations

from pathlib import Path

from github_org_backup.base.github_limits import DEFAULT_REPO_TIMEOUT_S, DEFAULT_REPOS_CONCURRENCY
from github_org_backup.settings import values
from github_org_backup.settings.declare import Option
from github_org_backup.settings.flags import NETWORK, RUN

DEFAULT_DEST = "oci:./ghcr-backup"  # a first run needs only a token and an org
DEFAULT_REPOS_DEST = "./github-repos"
DEFAULT_SOURCE_REGISTRY = "ghcr.io"

COPY, REGISTRY, VERIFY = frozenset({"copy"}), frozenset({"registry"}), frozenset({"verify"})
RESTORE, SNAPSHOTS, REPOS = frozenset({"restore"}), frozenset({"snapshots"}), frozenset({"repos"})
WHAT, SELECTION = "what to do", "selection"

# copy

SOURCE = Option(
    ("source",), "[http://]host/repo[:tag][@digest]", COPY, WHAT, nargs="?", metavar="SRC"
)
DESTINATION = Option(("destination",), "where to copy SRC to", COPY, WHAT, nargs="?", metavar="DST")
SPECS = Option(
    ("--specs",),
    "JSON copy specs ({src, dst, transform}); '-' reads stdin",
    COPY,
    WHAT,
    metavar="FILE",
)
SNAPSHOT_PREFIX = Option(
    ("--snapshot-prefix",),
    "after the copy, record a snapshot of the tags written below PREFIX (a registry prefix or "
    "oci:DIR), as registry does; default: no snapshot",
    COPY,
    WHAT,
    metavar="PREFIX",
)
PLATFORM = Option(
    ("--platform",),
    "copy only these platforms of each index",
    COPY | REGISTRY,
    SELECTION,
    asides=(("copy", "with SRC DST only"),),
    action="append",
    metavar="OS/ARCH[/VARIANT]",
)

# registry, verify, snapshots: the backup

DEST = Option(
    ("--dest",),
    "the backup: a registry prefix such as registry.example.com/ghcr-backup, or oci:DIR for "
    "an OCI image layout",
    REGISTRY | VERIFY | SNAPSHOTS,
    WHAT,
    env="BACKUP_DEST",
    default=DEFAULT_DEST,
    metavar="PREFIX",
)
SOURCE_REGISTRY = Option(
    ("--source-registry",),
    "registry serving the packages",
    REGISTRY,
    WHAT,
    env="SOURCE_REGISTRY",
    default=DEFAULT_SOURCE_REGISTRY,
    metavar="HOST",
)
ALL_PATCHES = Option(
    ("--all-patches",), "keep every semver tag", REGISTRY, SELECTION, action="store_true"
)
KEEP_PRERELEASES = Option(
    ("--keep-prereleases",),
    "keep prerelease tags (rc, beta, ...), trimmed like releases",
    REGISTRY,
    SELECTION,
    action="store_true",
)
INCLUDE_TAG = Option(
    ("--include-tag",),
    "always keep the tags REGEX matches in full, whatever else applies (--exclude-tag too)",
    REGISTRY,
    SELECTION,
    action="append",
    metavar="REGEX",
)
EXCLUDE_TAG = Option(
    ("--exclude-tag",),
    "drop the tags REGEX matches in full",
    REGISTRY,
    SELECTION,
    action="append",
    metavar="REGEX",
)
INCLUDE_PACKAGE = Option(
    ("--include-package",),
    "only the packages matching GLOB; named with or without their owner: team/* "
    "and acme/team/* select the same packages of acme",
    REGISTRY | VERIFY | RESTORE,
    SELECTION,
    asides=(("verify", "with --repos: mirrors named REPO or OWNER/REPO"),),
    action="append",
    metavar="GLOB",
)
EXCLUDE_PACKAGE = Option(
    ("--exclude-package",),
    "skip the packages matching GLOB; with or without their owner as for --include-package",
    REGISTRY,
    SELECTION,
    action="append",
    metavar="GLOB",
)
PRUNE = Option(
    ("--prune",),
    "delete destination tags that only snapshots the retention forgot named: never one a kept "
    "snapshot names, one whose digest a kept image needs, one that has moved since the tool "
    "wrote it, or one the tool never wrote (and never blobs); with --dry-run, print them "
    "instead",
    REGISTRY,
    WHAT,
    action="store_true",
)
NO_DISCOVERY_CACHE = Option(
    ("--no-discovery-cache",),
    "read every package's versions from GitHub instead of the cache kept beside the snapshots "
    "(a fresh cache is still written)",
    REGISTRY,
    WHAT,
    action="store_false",
    dest="discovery_cache",
)
DRY_RUN = Option(
    ("--dry-run",),
    "print the plan (kept tags with digest and destination, dropped tags with the reason) and "
    "write nothing",
    REGISTRY,
    WHAT,
    action="store_true",
    exclusive="mode",
)
EMIT_SPECS = Option(
    ("--emit-specs",),
    "print the copy specs as JSON lines instead of copying",
    REGISTRY,
    WHAT,
    action="store_true",
    exclusive="mode",
)

# verify

DEEP = Option(
    ("--deep",),
    "download and re-hash every manifest and blob (--repos: git fsck every object, and git "
    "lfs fsck)",
    VERIFY,
    WHAT,
    action="store_true",
)
FROM_REPORT = Option(
    ("--from-report",),
    "take the tags from a run's report when the backup's registry has no /v2/_catalog",
    VERIFY | RESTORE,
    WHAT,
    parse=Path,
    metavar="FILE",
)
REPOS_ROOT = Option(
    ("--repos",),
    "check the git mirrors the repos command wrote to DIR instead: git fsck each, and with "
    "GITHUB_TOKEN set compare its refs with the source's (git ls-remote)",
    VERIFY,
    WHAT,
    parse=Path,
    metavar="DIR",
)

# restore

FROM = Option(
    ("--from",),
    "the backup: a registry prefix or oci:DIR",
    RESTORE,
    WHAT,
    dest="source",
    required=True,
    metavar="PREFIX",
)
TO = Option(
    ("--to",),
    "where to restore, e.g. ghcr.io or registry.example.com/restored",
    RESTORE,
    WHAT,
    dest="target",
    required=True,
    metavar="PREFIX",
)
RESTORE_TAG = Option(
    ("--include-tag",),
    "restore only the tags REGEX matches in full",
    RESTORE,
    SELECTION,
    action="append",
    metavar="REGEX",
)
SNAPSHOT = Option(
    ("--snapshot",),
    "restore exactly the state of this snapshot (see the snapshots command)",
    RESTORE,
    SELECTION,
    metavar="ID",
    exclusive="when",
)
AS_OF = Option(
    ("--as-of",),
    "restore the latest snapshot at or before TIME (2026-11-29, 2026-11-29T03:00:00Z); "
    "default: the latest snapshot, or every tag when the backup has none",
    RESTORE,
    SELECTION,
    metavar="TIME",
    exclusive="when",
)

RESTORE_DRY_RUN = Option(
    ("--dry-run",),
    "print each REPOSITORY:TAG the restore would write and where from (by digest when a "
    "snapshot names it), then a summary line, and write nothing",
    RESTORE,
    WHAT,
    action="store_true",
)

# snapshots

JSON = Option(("--json",), "print JSON instead of a table", SNAPSHOTS, WHAT, action="store_true")

# repos

REPOS_DEST = Option(
    ("--dest",),
    "directory of the mirrors",
    REPOS,
    WHAT,
    env="REPOS_DEST",
    default=DEFAULT_REPOS_DEST,
    metavar="DIR",
)
INCLUDE_FORKS = Option(
    ("--include-forks",),
    "also back up forks (skipped by default)",
    REPOS,
    SELECTION,
    action="store_true",
)
INCLUDE_REPO = Option(
    ("--include-repo",),
    "back up only repositories whose REPO or OWNER/REPO matches GLOB",
    REPOS,
    SELECTION,
    action="append",
    metavar="GLOB",
)
EXCLUDE_REPO = Option(
    ("--exclude-repo",),
    "skip repositories whose REPO or OWNER/REPO matches GLOB",
    REPOS,
    SELECTION,
    action="append",
    metavar="GLOB",
)
PULL_REFS = Option(
    ("--pull-refs",),
    "also fetch GitHub's refs/pull/* (pull request heads and merges)",
    REPOS,
    SELECTION,
    action="store_true",
)
WIKIS = Option(
    ("--wikis",),
    "also mirror each wiki to REPO.wiki.git (a repository without one is not a failure)",
    REPOS,
    SELECTION,
    action="store_true",
)
LFS = Option(
    ("--lfs",), "also fetch Git LFS objects (needs git-lfs)", REPOS, SELECTION, action="store_true"
)
METADATA = Option(
    ("--metadata",),
    "also back up what lives only in GitHub's database into DEST/OWNER/metadata, a git "
    "repository of JSON with one commit a run: issues with comments, pull requests with reviews, "
    "releases with their assets' bytes, labels, milestones, and the organisation's "
    "configuration; KINDS picks some of issues,pulls,releases,labels,milestones,org",
    REPOS,
    SELECTION,
    env="BACKUP_METADATA",
    const="all",
    metavar="KINDS",
)
REPOS_CONCURRENCY = Option(
    ("--concurrency",),
    "repositories fetched at once",
    REPOS,
    NETWORK,
    parse=values.positive_int,
    default=DEFAULT_REPOS_CONCURRENCY,
    metavar="N",
)
REPOS_CA_FILE = Option(
    ("--ca-file",),
    "the CA bundle git trusts for the git server, instead of the system's (http.sslCAInfo)",
    REPOS,
    NETWORK,
    parse=Path,
    metavar="PEM",
)
REPOS_READ_TIMEOUT = Option(
    ("--read-timeout",),
    "abandon a git transfer slower than 1 KiB/s for this long",
    REPOS,
    NETWORK,
    parse=values.timeout_seconds,
    default=300.0,
    metavar="SECONDS",
)
REPO_TIMEOUT = Option(
    ("--repo-timeout",),
    "abandon a repository whose fetch (and LFS fetch) has not ended after this long; its "
    "mirror stays as it was",
    REPOS,
    RUN,
    parse=values.timeout_seconds,
    default=DEFAULT_REPO_TIMEOUT_S,
    metavar="SECONDS",
)

OWN = (
    SOURCE,
    DESTINATION,
    SPECS,
    SNAPSHOT_PREFIX,
    DEST,
    SOURCE_REGISTRY,
    PRUNE,
    NO_DISCOVERY_CACHE,
    DRY_RUN,
    EMIT_SPECS,
    DEEP,
    FROM_REPORT,
    REPOS_ROOT,
    FROM,
    TO,
    SNAPSHOT,
    AS_OF,
    RESTORE_DRY_RUN,
    JSON,
    REPOS_DEST,
    PLATFORM,
    ALL_PATCHES,
    KEEP_PRERELEASES,
    INCLUDE_TAG,
    EXCLUDE_TAG,
    INCLUDE_PACKAGE,
    EXCLUDE_PACKAGE,
    RESTORE_TAG,
    INCLUDE_FORKS,
    INCLUDE_REPO,
    EXCLUDE_REPO,
    PULL_REFS,
    WIKIS,
    LFS,
    METADATA,
    REPOS_CONCURRENCY,
    REPOS_CA_FILE,
    REPOS_READ_TIMEOUT,
    REPO_TIMEOUT,
)
