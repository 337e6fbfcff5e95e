"""GitHub's refusals told apart, each as an error whose message says what to do.

GitHub answers a 403 for several reasons: a primary or secondary rate limit, a token not
authorized for the organisation's SAML SSO, a missing scope, an IP allow list or another policy.
Its headers (X-GitHub-SSO, X-RateLimit-Remaining, Retry-After, X-Accepted-OAuth-Scopes) tell
them apart first, its ``message`` second. Listing packages needs a classic personal access
token: a refusal that shows another kind of token says so. The package lister
(``github.packages``) decides whose failure each one is: the run's, or one package's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from github_org_backup.base.redact import redact_url
from github_org_backup.errors import (
    BackupError,
    GitHubAccessError,
    GitHubRateLimited,
    GitHubRefused,
    GitHubUnavailable,
    RateLimit,
    TooManyPages,
)
from github_org_backup.github.http import PAGE_SIZE
from github_org_backup.model.packages import Owner

Refusal = Literal["primary", "secondary", "sso", "scope", "forbidden"]


def too_many_pages(exc: TooManyPages, version_count: int | None, max_pages: int) -> str:
    """Why a package whose versions kept linking a next page is not backed up."""
    listed = "" if version_count is None else f", and the list says {version_count}"
    return (
        f"GitHub kept linking a next page of its versions after {exc.pages} pages "
        f"({exc.items} versions read{listed}): stopped, nothing of it is backed up. "
        f"A package may have at most {max_pages * PAGE_SIZE} versions here "
        "(GITHUB_API_MAX_PAGES pages of 100); delete old untagged versions, or raise it"
    )


def lower_headers(raw: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


_MESSAGE_CHARS = 300


def their_message(data: Any) -> str:
    """GitHub's ``message``: one line, bounded; the source may send anything there."""
    if isinstance(data, dict):
        data = data.get("message") or ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in str(data or "")).split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _scopes(value: str | None) -> set[str]:
    return {s.strip() for s in (value or "").split(",") if s.strip()}


def classify_refusal(headers: Mapping[str, str], message: str) -> Refusal:
    """Which of GitHub's 403s this is, from its headers first and its message second."""
    headers = lower_headers(headers)
    text = message.lower()
    if "x-github-sso" in headers or "saml enforcement" in text:
        return "sso"
    if headers.get("x-ratelimit-remaining") == "0":
        return "primary"
    if "retry-after" in headers or "secondary rate limit" in text:
        return "secondary"
    accepted = _scopes(headers.get("x-accepted-oauth-scopes"))
    held = headers.get("x-oauth-scopes")
    if accepted and held is not None and not accepted & _scopes(held):
        return "scope"
    return "forbidden"


def limit_of(headers: Mapping[str, str]) -> RateLimit:
    return "primary" if lower_headers(headers).get("x-ratelimit-remaining") == "0" else "secondary"


def attempts_text(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def reset_time(headers: Mapping[str, str], limit: RateLimit, wait: float | None) -> float | None:
    """When the limit lifts: X-RateLimit-Reset for the primary one, else now + the wait."""
    headers = lower_headers(headers)
    reset = headers.get("x-ratelimit-reset", "")
    if limit == "primary" and reset.isdigit():
        return float(reset)
    if wait is None and headers.get("retry-after", "").strip().isdigit():
        wait = float(headers["retry-after"])
    return time.time() + wait if wait is not None else None


_LIMIT_NAMES = {
    "primary": "primary rate limit (the token's requests per hour)",
    "secondary": "secondary rate limit (too many requests in a short time)",
}


def rate_limited(
    headers: Mapping[str, str],
    *,
    wait: float | None,
    cap: float,
    attempts: int | None = None,
) -> GitHubRateLimited:
    limit = limit_of(headers)
    resets_at = reset_time(headers, limit, wait)
    when = iso_time(resets_at) if resets_at is not None else "an unknown time"
    if attempts is not None:
        what = f"GitHub's {_LIMIT_NAMES[limit]} still applied ({attempts_text(attempts)})"
    else:
        what = f"GitHub's {_LIMIT_NAMES[limit]} lifts later than the {cap:g} s this run waits"
    return GitHubRateLimited(
        f"{what}; it resets at {when}: run again after the reset, or split the backup with "
        "--shard or --include-package",
        limit=limit,
        resets_at=resets_at,
    )


def explain_refusal(status: int, headers: Mapping[str, str], message: str, owner: Owner) -> str:
    """Why GitHub said no, and what to do about it."""
    headers = lower_headers(headers)
    said = f" ({message.rstrip('.')})" if message else ""
    if status == 401:
        return (
            "GitHub rejected the token (HTTP 401): check that GITHUB_TOKEN or "
            "--github-token-file holds a valid, unexpired personal access token"
        )
    if status != 403:
        return f"GitHub answered HTTP {status}{said}"
    kind = classify_refusal(headers, message)
    if kind == "sso":
        url = headers.get("x-github-sso", "").partition("url=")[2].strip()
        link = f"; GitHub's sign-in link: {redact_url(url)}" if url.startswith("http") else ""
        return (
            f"the token is not authorized for the SAML single sign-on of {owner} (HTTP 403, "
            f"X-GitHub-SSO){said}: authorize the token for the organisation on GitHub under "
            f"Settings > Developer settings > Personal access tokens > Configure SSO{link}"
        )
    if kind == "scope":
        have = ", ".join(sorted(_scopes(headers.get("x-oauth-scopes")))) or "none"
        need = ", ".join(sorted(_scopes(headers.get("x-accepted-oauth-scopes"))))
        return (
            f"the token is missing a scope (HTTP 403){said}: it has [{have}] and GitHub accepts "
            f"[{need}] here; use a classic personal access token with the read:packages scope"
        )
    if kind in ("primary", "secondary"):
        return f"GitHub's {_LIMIT_NAMES[kind]} (HTTP 403){said}"
    return f"GitHub refused access (HTTP 403){said}"


TokenKind = Literal["classic", "fine-grained", "app", "unknown"]


def token_kind(token: str) -> TokenKind:
    """What kind of GitHub token this is, from the prefix GitHub gives each kind."""
    if token.startswith("ghp_"):
        return "classic"
    if token.startswith("github_pat_"):
        return "fine-grained"
    if token.startswith(("ghs_", "ghu_")):  # an App's tokens; Actions' GITHUB_TOKEN is one
        return "app"
    return "unknown"


_NEEDS_CLASSIC = (
    "listing packages needs a classic personal access token with the read:packages scope: "
    "fine-grained tokens, GitHub App tokens and the Actions GITHUB_TOKEN cannot list them"
)


def _wrong_token(status: int, message: str, kind: TokenKind) -> str | None:
    """The kind of token that cannot list packages, when the refusal shows one was used."""
    text = message.lower()
    if kind == "fine-grained" or "not accessible by personal access token" in text:
        return "a fine-grained personal access token"
    if kind == "app" or "not accessible by integration" in text:
        return "a GitHub App or Actions token"
    if status == 400:  # what the Actions GITHUB_TOKEN gets on an org list (cli/cli#9606)
        return "one GitHub does not accept for package lists (the Actions GITHUB_TOKEN gets 400)"
    return None


def list_error(exc: GitHubRefused, owner: Owner, url: str, token: TokenKind) -> BackupError:
    """A refused package list: nothing can be discovered. GitHub's own message is always shown;
    the classic-token hint only where the refusal shows a token of the wrong kind."""
    status = exc.status
    said = f'. GitHub said: "{exc.message}"' if exc.message else ""
    what = f"GitHub refused to list packages of {owner} (HTTP {status}){said}"
    if status == 401:
        return GitHubAccessError(exc.reason, status=status)
    wrong = _wrong_token(status, exc.message, token) if status in (400, 403, 404) else None
    if wrong is not None and status != 404:
        return GitHubAccessError(f"{what}. The token is {wrong}: {_NEEDS_CLASSIC}", status=status)
    if status == 403 and exc.reason.startswith("GitHub refused access"):
        return GitHubAccessError(
            f"{what}. Do what GitHub's message asks (for example the organisation's IP allow "
            "list or its policy on token kinds), or use a token it accepts, then run again",
            status=status,
        )
    if status == 403:
        return GitHubAccessError(
            f"GitHub refused to list packages of {owner}: {exc.reason}", status=status
        )
    if status == 404:
        who = "organisation" if owner.kind == "orgs" else "user"
        hint = f"; the token is {wrong}: {_NEEDS_CLASSIC}" if wrong else ""
        return GitHubAccessError(
            f"{who} {owner.name!r} not found, or not visible to this token (HTTP 404 on "
            f"{url}){hint}",
            status=status,
        )
    return GitHubUnavailable(f"cannot list packages of {owner}: {exc.reason}")


def network_reason(error: BaseException) -> str:
    """What failed on the wire, in words: DNS, connection refused, a timeout, TLS."""
    if isinstance(error, requests.RequestException) and error.args:
        inner = error.args[0]
        if isinstance(inner, BaseException):
            error = inner
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    cause = error.__cause__ or error.__context__
    if isinstance(error, NameResolutionError):
        return f"DNS lookup failed ({cause or error})"
    if isinstance(error, NewConnectionError):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({cause or error})"
    if isinstance(error, ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, ReadTimeoutError):
        return "read timed out"
    if isinstance(error, SSLError):
        return f"TLS error ({error})"
    if isinstance(error, ProtocolError):
        return f"connection broken ({error.args[-1] if error.args else error})"
    return f"{type(error).__name__}: {error}"
