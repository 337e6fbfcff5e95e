"""The options several commands share: output, network, the run, retention, GitHub, shards.

Each is declared once (settings.declare); ``commands`` says which commands take it.
"""

from __future__ import annotations

from pathlib import Path

from github_org_backup.base.limits import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE_TIMEOUT_S,
    DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_MIN_BYTES_PER_S,
)
from github_org_backup.settings import values
from github_org_backup.settings.declare import Option

IMAGES = frozenset({"copy", "registry", "verify", "restore", "snapshots"})
COPYING = frozenset({"copy", "registry", "restore"})  # the commands that copy images
RUNS = COPYING | {"repos"}  # the commands with a run to stop, time and publish
EVERY = IMAGES | {"repos", "restore-metadata"}
GITHUB = frozenset({"registry", "repos"})
WRITES_TO_GITHUB = frozenset({"restore-metadata"})  # reads a backup, creates on GitHub
SHARDED = frozenset({"registry", "verify", "restore", "snapshots"})

OUTPUT, NETWORK, RUN, RETENTION = "output", "network", "run", "retention"
GITHUB_API, SHARDS, ENVIRONMENT = "GitHub", "shards", "environment only"

REPORT = Option(
    ("--report",),
    "write a JSON report of the run to FILE ('-' for stdout)",
    EVERY,
    OUTPUT,
    parse=Path,
    metavar="FILE",
)
LOG_FORMAT = Option(
    ("--log-format",),
    "log rendering: auto is console on a terminal, JSON lines otherwise",
    EVERY,
    OUTPUT,
    choices=("auto", "json", "console"),
    default="auto",
)
LOG_LEVEL = Option(
    ("--log-level",),
    "the least severe log events shown",
    EVERY,
    OUTPUT,
    choices=("debug", "info", "warning", "error"),
    default="info",
)

# Registries

CONCURRENCY = Option(
    ("--concurrency",),
    "images, and blob transfers, in flight at once; unset, a copy starts at 16 and raises "
    "both, up to 32, when the link's bandwidth-delay product asks for more",
    IMAGES - {"snapshots"},
    NETWORK,
    env="BACKUP_CONCURRENCY",
    asides=(("verify", "with --repos: mirrors checked at once"),),
    parse=values.positive_int,
    default=DEFAULT_CONCURRENCY,
    metavar="N",
)
CA_FILE = Option(
    ("--ca-file",),
    "trust this CA bundle in addition to the system's",
    IMAGES,
    NETWORK,
    asides=(("verify", "with --repos: the bundle git trusts instead of the system's"),),
    parse=Path,
    metavar="PEM",
)
MAX_REQUEST_RATE = Option(
    ("--max-request-rate",),
    "never send more than N requests a second (or N/min) to HOST; without it a "
    "429 still halves the rate to that host, which then recovers",
    IMAGES,
    NETWORK,
    parse=values.request_rate,
    action="append",
    metavar="HOST=N/s",
)
CONNECT_TIMEOUT = Option(
    ("--connect-timeout",),
    "TCP/TLS connect timeout",
    IMAGES,
    NETWORK,
    parse=values.timeout_seconds,
    default=30.0,
    metavar="SECONDS",
)
MIN_SPEED = Option(
    ("--min-speed",),
    "fail a body that brings less than this in any 20 s window (0: no floor): a stalled or "
    "trickling registry fails that image instead of the run",
    IMAGES,
    NETWORK,
    parse=values.byte_rate,
    default=DEFAULT_MIN_BYTES_PER_S,
    shown_default="10KiB/s",
    metavar="BYTES/s",
)
MAX_BLOB_SIZE = Option(
    ("--max-blob-size",),
    "refuse, before any byte moves, a blob whose descriptor claims more (GHCR's layer limit is "
    "10 GB)",
    IMAGES,
    NETWORK,
    parse=values.blob_limit,
    default=DEFAULT_MAX_BLOB_BYTES,
    shown_default="16GiB",
    metavar="SIZE",
)
ALLOW_TOKEN_REALM = Option(
    ("--allow-token-realm",),
    "also send a registry's credentials to this token service (the variable's "
    "comma-separated hosts are added); by default only the registry's own host and hosts of "
    "its registrable domain over https get them",
    IMAGES,
    NETWORK,
    env="BACKUP_ALLOW_TOKEN_REALMS",
    parse=values.text,
    action="append",
    metavar="HOST[:PORT]",
    env_adds=True,
)
ALLOW_INTERNAL_REDIRECTS = Option(
    ("--allow-internal-redirects",),
    "follow a registry's redirects to loopback, private or reserved addresses even when the "
    "registry itself is not on one (never to link-local: cloud metadata)",
    IMAGES,
    NETWORK,
    action="store_true",
)
READ_TIMEOUT = Option(
    ("--read-timeout",),
    "longest silence on a socket before the request is retried",
    IMAGES,
    NETWORK,
    asides=(
        *(
            (c, "a slow layer moving faster than --min-speed goes on until --image-timeout")
            for c in ("copy", "registry", "restore")
        ),
        ("verify", "with --repos: git's stall limit, as for repos"),
    ),
    parse=values.timeout_seconds,
    default=300.0,
    metavar="SECONDS",
)

# The run of a command that copies (or mirrors)

IMAGE_TIMEOUT = Option(
    ("--image-timeout",),
    "fail an image that is not copied within this time (its wait for a copy slot not counted); "
    "the rest of the run goes on",
    COPYING,
    RUN,
    parse=values.timeout_seconds,
    default=DEFAULT_IMAGE_TIMEOUT_S,
    metavar="SECONDS",
)
CHUNK_SIZE = Option(
    ("--chunk-size",),
    "upload blobs in PATCH chunks of SIZE (e.g. 64MiB) for registries or proxies that limit "
    "request bodies; default: one streamed PUT per blob",
    COPYING,
    RUN,
    parse=values.chunk_size,
    metavar="SIZE",
)
GRACE_PERIOD = Option(
    ("--grace-period",),
    "on SIGTERM or SIGINT, start nothing new (no image, no repository) and give the work in "
    "flight this long to finish; then it is abandoned, the report written, and the exit "
    "status is 143; a second signal abandons it at once",
    RUNS,
    RUN,
    parse=values.grace_seconds,
    default=25.0,
    metavar="SECONDS",
)
PUSHGATEWAY = Option(
    ("--pushgateway",),
    "push the run's Prometheus metrics to this Pushgateway",
    RUNS,
    RUN,
    env="PUSHGATEWAY_URL",
    metavar="URL",
)
METRICS_FILE = Option(
    ("--metrics-file",),
    "write the run's Prometheus metrics to FILE (node_exporter textfile format)",
    RUNS,
    RUN,
    parse=Path,
    metavar="FILE",
)
PROGRESS_INTERVAL = Option(
    ("--progress-interval",),
    f"seconds between progress lines (at least {values.MIN_PROGRESS_INTERVAL_S:g})",
    RUNS,
    RUN,
    parse=values.progress_seconds,
    default=5.0,
    metavar="SECONDS",
)

# Retention of the snapshots a run writes (history.retention)

KEEP_LAST = Option(
    ("--keep-last",),
    "keep the N latest snapshots (with --keep-within: those either keeps); the latest is "
    "always kept. Default: keep every snapshot",
    frozenset({"copy", "registry"}),
    RETENTION,
    parse=values.positive_int,
    metavar="N",
)
KEEP_WITHIN = Option(
    ("--keep-within",),
    "keep the snapshots newer than DURATION (90d, 12h, 2w, 1y)",
    frozenset({"copy", "registry"}),
    RETENTION,
    metavar="DURATION",
)

# GitHub

ORG = Option(
    ("--org",), "organisation to back up", GITHUB, GITHUB_API, env="GITHUB_ORG", exclusive="owner"
)
USER = Option(
    ("--user",),
    "user to back up instead of an organisation: their packages (registry) or repositories (repos)",
    GITHUB,
    GITHUB_API,
    env="GITHUB_OWNER_USER",
    exclusive="owner",
)
GITHUB_TOKEN_FILE = Option(
    ("--github-token-file",),
    "read the GitHub token from PATH instead of GITHUB_TOKEN",
    GITHUB | WRITES_TO_GITHUB,
    GITHUB_API,
    metavar="PATH",
)
GITHUB_API_URL = Option(
    ("--github-api-url",),
    "REST API base (GHES: https://HOST/api/v3); repos sends the token only to its git host",
    GITHUB | WRITES_TO_GITHUB,
    GITHUB_API,
    env="GITHUB_API_URL",
    default="https://api.github.com",
    metavar="URL",
    asides=(
        (
            "restore-metadata",
            "the token goes only to its host, and to a release's upload host only when it is "
            "that host or, for api.github.com, uploads.github.com",
        ),
    ),
)


# Shards: one rule in every command that takes them

SHARD = Option(
    ("--shard",),
    "shard I of N: registry backs up only the packages whose sha256(name) mod N is I; verify, "
    "restore and snapshots read that shard's snapshot series",
    SHARDED,
    SHARDS,
    env="BACKUP_SHARD",
    metavar="I/N",
    exclusive="shard",
)
SHARD_COUNT = Option(
    ("--shard-count",),
    "a backup made in N shards: registry takes its shard's index from JOB_COMPLETION_INDEX; "
    "verify, restore and snapshots read the snapshot series of all N shards",
    SHARDED,
    SHARDS,
    env="BACKUP_SHARD_COUNT",
    parse=values.positive_int,
    metavar="N",
    exclusive="shard",
)

ALLOW_EMPTY = Option(
    ("--allow-empty",),
    "end with 0, not 3, when the organisation, filter, shard or snapshot selects nothing (a "
    "warning still names what exists)",
    EVERY - {"copy"},
    RUN,
    action="store_true",
    asides=(("restore-metadata", "here: the store holds no release and no issue for --repo"),),
)

SHARED = (
    REPORT,
    LOG_FORMAT,
    LOG_LEVEL,
    CONCURRENCY,
    CA_FILE,
    MAX_REQUEST_RATE,
    CONNECT_TIMEOUT,
    MIN_SPEED,
    MAX_BLOB_SIZE,
    ALLOW_TOKEN_REALM,
    ALLOW_INTERNAL_REDIRECTS,
    READ_TIMEOUT,
    IMAGE_TIMEOUT,
    CHUNK_SIZE,
    GRACE_PERIOD,
    ALLOW_EMPTY,
    PUSHGATEWAY,
    METRICS_FILE,
    PROGRESS_INTERVAL,
    KEEP_LAST,
    KEEP_WITHIN,
    ORG,
    USER,
    GITHUB_TOKEN_FILE,
    GITHUB_API_URL,
    SHARD,
    SHARD_COUNT,
)
