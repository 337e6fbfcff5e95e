"""What a git run is given: its settings (credentials, CA, stall limit, deadline) and the
environment that carries them, so that nothing reaches argv, a config file or the mirror."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from github_org_backup.repos.host import GitHost

# Environment variables the user's shell may carry that would change what git does, or make
# it print headers (GIT_TRACE_CURL): none of them reach our git.
_DROPPED_ENV_PREFIXES = ("GIT_", "SSH_ASKPASS")

# A transfer slower than this for --read-timeout seconds is abandoned. It must exceed what a
# stalled server can send for nothing: git's keep-alive (5 bytes every 5 s) and a 2 bytes/s
# trickle both stay under it, where the old limit of 1 byte/s let a 2 bytes/s trickle run forever.
LOW_SPEED_LIMIT_BPS = 1024


@dataclass(frozen=True)
class GitSettings:
    """How git reaches the server: Basic credentials (token as password), CA, stall limit.

    The token is ``token``, or what ``token_source`` answers at each git run (a token that is
    renewed as it nears expiry; it may block while a new one is bought, and raise a
    ``BackupError`` when none can be). ``secrets_source`` names every secret its owner has
    issued so far, for redaction beside the tokens git was given."""

    username: str = "github-org-backup"
    token: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    stall_timeout_s: float | None = None
    token_host: GitHost | None = None  # where the token may go; None: the URL's own origin
    repo_timeout_s: float | None = None  # the deadline of one repository's fetches
    token_source: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    secrets_source: Callable[[], Iterable[str]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def has_token(self) -> bool:
        return bool(self.token) or self.token_source is not None


def git_environment(settings: GitSettings, url: str | None, basic: str | None) -> dict[str, str]:
    """The environment of a git run against ``url``: config entries through GIT_CONFIG_COUNT,
    no prompts, and ``basic`` (base64 user:token) as an Authorization header for the URL's
    origin only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    config: list[tuple[str, str]] = [
        ("credential.helper", ""),  # never ask, never store: the header is the credential
        ("core.askPass", ""),
        ("http.lowSpeedLimit", str(LOW_SPEED_LIMIT_BPS)),
        # A redirect would take the next requests, and the header, to another host.
        ("http.followRedirects", "false"),
        ("gc.autoDetach", "false"),  # a gc must finish inside the run, not after it
    ]
    if settings.stall_timeout_s:
        stall = str(max(1, round(settings.stall_timeout_s)))
        config.append(("http.lowSpeedTime", stall))
        config.append(("lfs.activitytimeout", stall))  # git-lfs has no low-speed limit
    if settings.ca_file is not None:
        config.append(("http.sslCAInfo", str(settings.ca_file)))
    if url and basic:
        origin = urlsplit(url)
        # Scoped to the clone URL's origin: a redirect elsewhere, or an LFS object store on
        # another host, never receives it.
        config.append(
            (
                f"http.{origin.scheme}://{origin.netloc}/.extraHeader",
                f"Authorization: Basic {basic}",
            )
        )
    env |= {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "http:https",
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env
