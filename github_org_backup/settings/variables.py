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
    GITHUB | {"verify", "restore-metadata"},
    ENVIRONMENT,
    env="GITHUB_TOKEN",
    asides=(
        ("registry", "unless --github-token-file: a classic PAT with read:packages"),
        (
            "repos",
            "unless --github-token-file or a GitHub App (GITHUB_APP_ID): a classic PAT with the "
            "repo scope, or a fine-grained token with Contents: read; git gets it in its "
            "environment only",
        ),
        ("verify", "with --repos, each mirror's refs are compared with the source's when set"),
        (
            "restore-metadata",
            "with --to and unless --github-token-file: one that may create releases and issues "
            "in the target repository (Contents and Issues: write)",
        ),
    ),
)

# A GitHub App, for repos only: GitHub's packages API takes no App token, so registry keeps
# GITHUB_TOKEN (a classic PAT) and ignores these.
APP_ID_RANGE = (1, 2**63 - 1)

GITHUB_APP_ID = Option(
    (),
    "the App ID of a GitHub App installed on the owner, instead of GITHUB_TOKEN: with "
    "GITHUB_APP_PRIVATE_KEY_FILE, the run buys installation tokens and renews them as they "
    "expire (docs/github-app.md)",
    frozenset({"repos"}),
    ENVIRONMENT,
    env="GITHUB_APP_ID",
    parse=values.whole_number(*APP_ID_RANGE),
)

GITHUB_APP_PRIVATE_KEY_FILE = Option(
    (),
    "with GITHUB_APP_ID: the file holding one of the App's private keys (PEM, RSA), read at "
    "the start; the path is no secret, the file is",
    frozenset({"repos"}),
    ENVIRONMENT,
    env="GITHUB_APP_PRIVATE_KEY_FILE",
)

GITHUB_APP_INSTALLATION_ID = Option(
    (),
    "with GITHUB_APP_ID: the App's installation on the owner; unset, it is found with the "
    "App's JWT (GET /orgs/ORG/installation, or /users/USER/installation)",
    frozenset({"repos"}),
    ENVIRONMENT,
    env="GITHUB_APP_INSTALLATION_ID",
    parse=values.whole_number(*APP_ID_RANGE),
)

GITHUB_USERNAME = Option(
    (),
    "username sent with the token to the source registry or the git server",
    GITHUB | {"verify"},
    ENVIRONMENT,
    asides=(("repos", "not used with a GitHub App: git then sends x-access-token"),),
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
    GITHUB_APP_ID,
    GITHUB_APP_PRIVATE_KEY_FILE,
    GITHUB_APP_INSTALLATION_ID,
    GITHUB_USERNAME,
    GITHUB_API_RETRIES,
    GITHUB_API_MAX_PAGE_BYTES,
    GITHUB_API_MAX_PAGES,
    DEST_USERNAME,
    DEST_PASSWORD,
    DOCKER_CONFIG,
    JOB_COMPLETION_INDEX,
)
