"""Bounds on the work against GitHub: how much of its REST API's answers a run reads and how
often a failing request is retried (github.http), and how many git mirrors the repos command
fetches at once and for how long each (repos.mirror).

They live here, below both, so that the options declaring them (settings) are built without
loading PyGithub, requests or the mirror engine.
"""

from __future__ import annotations

MiB = 2**20

# A real page of 100 packages (each with its repository) is under 1 MiB, of 100 versions far less.
DEFAULT_MAX_PAGE_BYTES = 10 * MiB
# Pages of one listing: 100,000 versions. A package's own listing stops sooner, after the
# pages its listed version_count fills (see GitHubPackages).
DEFAULT_MAX_PAGES = 1_000
# What GITHUB_API_MAX_PAGE_BYTES and GITHUB_API_MAX_PAGES may be set to (settings.variables).
PAGE_BYTES_RANGE = (1024, 1024 * MiB)
PAGES_RANGE = (1, 1_000_000)
# Retries of a failing request (GITHUB_API_RETRIES): 5xx, 429, rate-limit 403s, connection errors.
DEFAULT_RETRIES = 6
RETRIES_RANGE = (0, 20)

# The repos command: mirrors fetched at once, and how long one fetch (with LFS) may take.
DEFAULT_REPOS_CONCURRENCY = 4
DEFAULT_REPO_TIMEOUT_S = 3600.0
