"""Writes to GitHub for a restore: JSON requests to the API and release asset uploads, with the
token confined to the API's origin and to the one upload host GitHub may name beside it.

    --github-api-url          every request; a redirect is followed only on that origin
    a release's upload_url    used only on the API's own origin (GHES uploads go to /api/uploads
                              on the same host) or, for https://api.github.com, on
                              https://uploads.github.com; any other is refused, unsent

Answers are read through github.http's BoundedConnection, bounded in bytes and time. Writes are
spaced ``write_interval_s`` apart (GitHub asks for a second between requests that create
content). An answer of GitHub's rate limits (403 or 429 with Retry-After, or
X-RateLimit-Remaining: 0) was not acted on, so the request is sent again once the wait is over,
up to ``max_wait_s``; after any other failure a write is never repeated, so that nothing is
created twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import requests
import structlog
from urllib3 import Retry

from github_org_backup import __version__
from github_org_backup.base.redact import redact_url
from github_org_backup.errors import GitHubAnswerInvalid, GitHubRefused, GitHubUnavailable
from github_org_backup.github.http import (
    ACCEPT,
    API_VERSION,
    PAGE_SIZE,
    ApiLimits,
    BoundedConnection,
    BoundedResponse,
    next_link,
    parse_page,
)
from github_org_backup.metadata.restore import AssetFile

log = structlog.get_logger("github_org_backup.metadata.publish")

DOTCOM_API, DOTCOM_UPLOADS = "api.github.com", "uploads.github.com"
MAX_WAITS = 3  # rate-limit waits for one request
MAX_PAGES = 100
# Reads (GET) are retried on a broken connection or a 502-504; writes only when the connection
# could not be made, before anything was sent.
_RETRY = Retry(
    total=3,
    connect=3,
    read=0,
    status=3,
    backoff_factor=1,
    status_forcelist=(502, 503, 504),
    allowed_methods=frozenset({"GET"}),
    raise_on_status=False,
)


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any
    headers: Mapping[str, str]


def _port(url: SplitResult) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def upload_origin(upload_url: str, api_url: str) -> tuple[str, str]:
    """(origin, path) of a release's ``upload_url`` (its ``{?name,label}`` template dropped),
    refused unless it is the API's own origin or, for api.github.com, uploads.github.com."""
    api = urlsplit(api_url)
    try:
        url = urlsplit(upload_url.split("{", 1)[0])
        port = _port(url)
    except ValueError:
        url, port = None, None
    same = url is not None and (url.scheme, url.hostname, port) == (
        api.scheme,
        api.hostname,
        _port(api),
    )
    dotcom = (
        url is not None
        and api.hostname == DOTCOM_API
        and (url.scheme, url.hostname, port) == ("https", DOTCOM_UPLOADS, 443)
    )
    if url is None or not (same or dotcom) or "@" in url.netloc or url.query:
        allowed = f"{api.hostname}" + (
            f" or {DOTCOM_UPLOADS}" if api.hostname == DOTCOM_API else ""
        )
        raise GitHubAnswerInvalid(
            f"GitHub named {redact_url(upload_url.split('{', 1)[0])} as the release's upload "
            f"URL: not on {allowed}, refused unsent (the token goes only to the API's host); "
            "check --github-api-url / GITHUB_API_URL"
        )
    return f"{url.scheme}://{url.netloc}", url.path


def said(answer: Answer) -> str:
    """GitHub's own words for a refusal: its message and the errors' codes."""
    data = answer.data if isinstance(answer.data, dict) else {}
    given = data.get("message")
    message = given if isinstance(given, str) else ""
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            parts = (error.get(k) for k in ("resource", "field", "code", "message"))
            details.append(" ".join(str(p) for p in parts if p))
        elif isinstance(error, str):
            details.append(error)
    text = message + (f" ({'; '.join(details)})" if details else "")
    return " ".join(text.split())[:300]


def _wait_s(answer: Answer, now: float) -> float | None:
    """How long GitHub's rate limit asks to wait before the request is sent again, or None
    when the answer is no rate limit."""
    if answer.status not in (403, 429):
        return None
    retry_after = str(answer.headers.get("Retry-After", "")).strip()
    if retry_after.isdigit():
        return float(retry_after)
    if str(answer.headers.get("X-RateLimit-Remaining", "")).strip() == "0":
        reset = str(answer.headers.get("X-RateLimit-Reset", "")).strip()
        return max(float(reset) - now, 0) + 1 if reset.isdigit() else 60.0
    if "rate limit" in said(answer).lower() or answer.status == 429:
        return 60.0
    return None


class GitHubWriter:
    """Requests to one GitHub API for a restore, one at a time."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        write_interval_s: float = 1.0,
        timeout_s: float = 60.0,
        max_wait_s: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(api_url)
        self.api_url = api_url
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base = parts.path.rstrip("/")
        self._token = token
        self._interval = write_interval_s
        self._timeout = timeout_s
        self._max_wait = max_wait_s
        self._sleep = sleep
        self._last_write = 0.0
        self._connections: dict[str, BoundedConnection] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()

    def _connection(self, origin: str) -> BoundedConnection:
        if origin not in self._connections:
            # An upload's answer comes once GitHub has stored every byte: allow it time.
            limits = ApiLimits(read_deadline_s=max(self._timeout, 25.0))
            self._connections[origin] = BoundedConnection(
                origin, retry=_RETRY, timeout_s=self._timeout, limits=limits
            )
        return self._connections[origin]

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {
            "Accept": ACCEPT,
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"github-org-backup/{__version__}",
        }
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def _pace(self) -> None:
        wait = self._last_write + self._interval - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last_write = time.monotonic()

    def _send(
        self,
        verb: str,
        origin: str,
        path: str,
        body: Callable[[], Any],
        content_type: str | None,
    ) -> Answer:
        """One request, sent again only after a rate limit's wait."""
        for attempt in range(MAX_WAITS + 1):
            if verb != "GET":
                self._pace()
            connection = self._connection(origin)
            data = body()
            try:
                connection.begin()
                connection.request(verb, path, data, self._headers(content_type))
                response = connection.getresponse()
            except requests.RequestException as exc:
                raise GitHubUnavailable(
                    f"{verb} {origin}{path.partition('?')[0]}: no answer ({type(exc).__name__})"
                ) from None
            finally:
                if hasattr(data, "close"):
                    data.close()
            answer = self._answer(response, path)
            wait = _wait_s(answer, time.time())
            if wait is None or attempt == MAX_WAITS:
                return answer
            if wait > self._max_wait:
                raise GitHubUnavailable(
                    f"GitHub's rate limit asks to wait {wait:.0f} s, longer than "
                    f"{self._max_wait:.0f} s: run again later"
                )
            log.warning("github_rate_limit_wait", seconds=round(wait, 1), status=answer.status)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _answer(self, response: BoundedResponse, path: str) -> Answer:
        text = response.read()
        data = parse_page(text, ApiLimits(), path.partition("?")[0]) if text.strip() else None
        return Answer(response.status, data, response.headers)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Answer:
        query = f"?{urlencode(params)}" if params else ""
        return self._send("GET", self._origin, f"{self._base}{path}{query}", lambda: None, None)

    def pages(self, path: str) -> list[Any]:
        """Every item of a listing, its pages followed through Link on the API alone."""
        items: list[Any] = []
        answer = self.get(path, {"per_page": str(PAGE_SIZE)})
        for _ in range(MAX_PAGES):
            if answer.status != 200 or not isinstance(answer.data, list):
                raise GitHubRefused(
                    answer.status, f"GET {path}: HTTP {answer.status}", said(answer)
                )
            items += answer.data
            following = next_link(answer.headers, self.api_url)
            if following is None:
                return items
            answer = self._send("GET", self._origin, f"{self._base}{following}", lambda: None, None)
        raise GitHubAnswerInvalid(f"GET {path}: still a next page after {MAX_PAGES} pages")

    def write(self, verb: str, path: str, payload: Mapping[str, Any]) -> Any:
        """POST or PATCH ``payload`` as JSON: GitHub's answer, or GitHubRefused."""
        data = json.dumps(payload).encode()
        answer = self._send(
            verb, self._origin, f"{self._base}{path}", lambda: data, "application/json"
        )
        return _accepted(answer, f"{verb} {path}")

    def upload(self, upload_url: str, asset: AssetFile) -> Any:
        """Upload the bytes of ``asset`` to a release's ``upload_url``: GitHub's asset."""
        origin, path = upload_origin(upload_url, self.api_url)
        assert asset.path is not None
        params = {"name": asset.name} | ({"label": asset.label} if asset.label else {})
        file: Path = asset.path
        target = f"{path}?{urlencode(params)}"
        answer = self._send("POST", origin, target, lambda: file.open("rb"), asset.content_type)
        return _accepted(answer, f"upload of {asset.name!r}")


def _accepted(answer: Answer, what: str) -> Any:
    if answer.status >= 300:
        raise GitHubRefused(answer.status, f"{what}: HTTP {answer.status}", said(answer))
    return answer.data
