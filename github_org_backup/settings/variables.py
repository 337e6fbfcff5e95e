"""The environment variables without a flag of their own, declared as options are: what each
holds, its default, and the commands that read it."""

from __future__ import annotations

from dataclasses import replace

from github_org_backup.base.github_limits import (
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_RETRIES,
    PAGE_BYTES_RANGE,
    PAGES_RANGE,
    RETRIES_RANGE,
)
from github_org_backup.settings import values
from github_org_backup.settings.declare import Option
from github_org_backup.settings.flags import ENVIRONMENT, GITHUB, GITHUB_API_URL, IMAGES, RUNS

STEP_SUMMARY = Option(
    (),
    "a file GitHub Actions sets: the run appends its summary table to it in Markdown",
    RUNS,
    ENVIRONMENT,
    env="GITHUB_STEP_SUMMARY",
)

GITHUB_API_URL_VARIABLE = replace(
    GITHUB_API_URL,
    flags=(),
    help="the GitHub API of --repos's mirrors: GITHUB_TOKEN goes only to its git host",
    commands=frozenset({"verify"}),
    group=ENVIRONMENT,
)

GITHUB_TOKEN = Option(
    (),
    "the GitHub token",
    GITHUB | {"verify"},
    ENVIRONMENT,
    env="GITHUB_TOKEN",
    asides=(
        ("registry", "unless --github-token-file: a classic PAT with read:packages"),
        (
            "repos",
            "unless --github-token-file: a classic PAT with the repo scope, or a fine-grained "
            "token with Contents: read; git gets it in its environment only",
        ),
        ("verify", "with --repos, each mirror's refs are compared with the source's when set"),
    ),
)

GITHUB_USERNAME = Option(
    (),
    "username sent with the token to the source registry or the git server",
    GITHUB | {"verify"},
    ENVIRONMENT,
    env="GITHUB_USERNAME",
    default="github-org-backup",
)

GITHUB_API_RETRIES = Option(
    (),
    "retries of a failing GitHub API request: 5xx, 429, rate-limit 403s, connection errors (0-20)",
    frozenset({"registry"}),
    ENVIRONMENT,
    env="GITHUB_API_RETRIES",
    parse=values.whole_number(*RETRIES_RANGE),
    default=DEFAULT_RETRIES,
)

GITHUB_API_MAX_PAGE_BYTES = Option(
    (),
    "bytes read of one GitHub API page (1024 to 1 GiB)",
    GITHUB,
    ENVIRONMENT,
    env="GITHUB_API_MAX_PAGE_BYTES",
    parse=values.whole_number(*PAGE_BYTES_RANGE),
    default=DEFAULT_MAX_PAGE_BYTES,
)

GITHUB_API_MAX_PAGES = Option(
    (),
    "pages of one listing: a package's versions, an owner's repositories",
    GITHUB,
    ENVIRONMENT,
    env="GITHUB_API_MAX_PAGES",
    parse=values.whole_number(*PAGES_RANGE),
    default=DEFAULT_MAX_PAGES,
)

DEST_USERNAME = Option(
    (),
    "with DEST_PASSWORD (both or neither): the username for the backup's registry, used "
    "before docker config.json (its credential helper for the host, else its auths)",
    IMAGES,
    ENVIRONMENT,
    asides=(
        ("restore", "the registry of --to"),
        (
            "copy",
            "for every DST registry of the specs and that of --snapshot-prefix; never for a "
            "registry the specs only read from",
        ),
    ),
    env="DEST_USERNAME",
)

DEST_PASSWORD = Option(
    (),
    "the password (or token) that goes with DEST_USERNAME",
    IMAGES,
    ENVIRONMENT,
    env="DEST_PASSWORD",
)

DOCKER_CONFIG = Option(
    (),
    "directory of the docker config.json with registry credentials",
    IMAGES,
    ENVIRONMENT,
    env="DOCKER_CONFIG",
    shown_default="~/.docker",
)

JOB_COMPLETION_INDEX = Option(
    (),
    "the shard index with --shard-count (a Kubernetes Indexed Job sets it); also the shard "
    "label of the run's metrics",
    frozenset({"registry"}),
    ENVIRONMENT,
    env="JOB_COMPLETION_INDEX",
)

VARIABLES = (
    STEP_SUMMARY,
    GITHUB_API_URL_VARIABLE,
    GITHUB_TOKEN,
    GITHUB_USERNAME,
    GITHUB_API_RETRIES,
    GITHUB_API_MAX_PAGE_BYTES,
    GITHUB_API_MAX_PAGES,
    DEST_USERNAME,
    DEST_PASSWORD,
    DOCKER_CONFIG,
    JOB_COMPLETION_INDEX,
)
