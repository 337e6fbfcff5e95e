"""GitHub's answers read with bounds: PyGithub's connection interface over one requests session.

PyGithub reads every body whole (``requests`` without ``stream``), then decodes it as text, and
follows any number of 202s and same-host 301s. A hostile or broken API could so make a run hold
a 200 MiB page several times over, or never end. ``BoundedConnection`` is handed to PyGithub as
the connection of each request (the ``cnx`` parameter of ``Requester.requestJson``) and reads:

- at most ``max_page_bytes`` of each body, decompressed (a Content-Length above it is refused
  before any byte is read), within ``read_deadline_s``;
- at most ``MAX_HOPS`` answers per request (redirects to the same origin, which it follows
  itself, and 202s), and never a redirect to another origin: the token goes only to the API
  the user named.

``parse_page`` then refuses a body with more than ``max_page_values`` JSON values before
parsing it: ten MiB of ``[{},{},...]`` would otherwise become 300 MiB of Python objects.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, ItemsView, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Retry
from urllib3.exceptions import HTTPError as Urllib3Error

from github_org_backup.base import jsonio

# The defaults live below settings (base.github_limits); the clients read them from here.
from github_org_backup.base.github_limits import DEFAULT_MAX_PAGE_BYTES as DEFAULT_MAX_PAGE_BYTES
from github_org_backup.base.github_limits import DEFAULT_MAX_PAGES as DEFAULT_MAX_PAGES
from github_org_backup.base.github_limits import DEFAULT_RETRIES as DEFAULT_RETRIES
from github_org_backup.errors import ApiHostMismatch, GitHubAnswerInvalid, JSONTooLarge

API_VERSION = "2022-11-28"  # pinned: later versions change the shapes this tool reads
ACCEPT = "application/vnd.github+json"
PAGE_SIZE = 100  # the most items GitHub answers in a page, which every listing asks for

# A JSON value costs Python about 100 bytes beyond its text; a real page has under 20,000.
DEFAULT_MAX_PAGE_VALUES = 100_000
# GitHub ends any REST request that takes it over 10 s, so a page still arriving after 25 s
# is being trickled.
DEFAULT_READ_DEADLINE_S = 25.0
MAX_HOPS = 5  # answers to one request: the first, plus 301s to the same origin and 202s
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ApiLimits:
    """How much of GitHub's answers a run reads: bytes and values per page, pages per listing.

    GITHUB_API_MAX_PAGE_BYTES sets ``max_page_bytes`` and GITHUB_API_MAX_PAGES ``max_pages``:
    settings reads them, as it reads every variable, into a ``GitHubSettings``."""

    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    max_page_values: int = DEFAULT_MAX_PAGE_VALUES
    max_pages: int = DEFAULT_MAX_PAGES
    read_deadline_s: float = DEFAULT_READ_DEADLINE_S

    def version_pages(self, version_count: int | None, page_size: int) -> int:
        """Pages allowed for a package's versions: what its listed count fills, plus room for
        versions pushed while it is read, and never more than ``max_pages``."""
        if version_count is None:
            return self.max_pages
        fills = -(-version_count * 11 // (10 * page_size))  # 10% more, rounded up
        return min(self.max_pages, fills + 2)


@dataclass(frozen=True)
class GitHubSettings:
    """What the GITHUB_API_* variables set for a run's GitHub client: the bounds on GitHub's
    answers and how often a failing request is retried. settings builds it from the variables
    (settings.options.github_settings); github/ reads none itself."""

    limits: ApiLimits = field(default_factory=ApiLimits)
    retries: int = DEFAULT_RETRIES


def parse_page(text: str, limits: ApiLimits, url: str) -> Any:
    """The JSON of one page, refused unparsed if it holds more values than a page can."""
    try:
        return jsonio.loads(text, limits.max_page_values)
    except JSONTooLarge as exc:
        if not exc.values:
            raise GitHubAnswerInvalid(f"GitHub's answer to {url} is nested too deeply") from None
        raise GitHubAnswerInvalid(
            f"GitHub's answer to {url} holds up to {exc.values} JSON values, more than the "
            f"{limits.max_page_values} a page of 100 items can: refused unread"
        ) from None


def next_link(headers: Mapping[str, str], api_url: str) -> str | None:
    """The path (and query) below ``api_url`` of the page a ``Link`` header names next, or
    None; a next page on another scheme, host, port or path prefix is refused."""
    link = str(headers.get("link") or "")
    for part in link.split(","):
        target, _, rel = part.partition(";")
        if re.search(r'rel="?next"?', rel):
            return same_api(target.strip().removeprefix("<").removesuffix(">"), api_url)
    return None


def same_api(url: str, api_url: str) -> str:
    """The path below ``api_url`` of a next-page ``url``; refused if it leaves the API."""
    api = urlsplit(api_url)
    try:
        page = urlsplit(url)
        same = (
            page.scheme == api.scheme
            and page.hostname == api.hostname
            and _port(page) == _port(api)
            and (page.path + "/").startswith(api.path.rstrip("/") + "/")
        )
    except ValueError:
        raise ApiHostMismatch(
            f"the GitHub API at {api_url} links its next page at {url[:100]!r}, which is not "
            "a URL: stopped"
        ) from None
    if not same:
        raise ApiHostMismatch(
            f"the GitHub API at {api_url} (host {api.hostname}) links its next page on "
            f"{page.scheme}://{page.hostname or '?'}: if that is the same GitHub Enterprise "
            "Server under another name, set --github-api-url / GITHUB_API_URL to it; the token "
            f"is sent only to {api.hostname}"
        )
    rest = page.path[len(api.path.rstrip("/")) :]
    return rest + (f"?{page.query}" if page.query else "")


def _port(url: SplitResult) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


class BoundedResponse:
    """What PyGithub reads of an answer (status, getheaders, read), its body already bounded."""

    def __init__(self, status: int, headers: CaseInsensitiveDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def getheaders(self) -> ItemsView[str, str]:
        return self.headers.items()

    def read(self) -> str:
        return self.body.decode("utf-8", "replace")  # JSON is UTF-8: no charset guessing


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request  # a set auth keeps requests from sending ~/.netrc credentials


class _WatchedAdapter(HTTPAdapter):
    """Connections whose status line and headers must arrive within the read deadline.

    The socket timeout trips only on silence, so an answer whose headers come a byte at a
    time would hold the worker for ever: a timer shuts the socket down instead, and the
    request fails as a broken connection (retried within ``GITHUB_API_RETRIES``).
    """

    def __init__(self, deadline_s: Callable[[], float], **kwargs: Any) -> None:
        self._deadline_s = deadline_s
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _watched_pool(HTTPConnectionPool, self._deadline_s),
            "https": _watched_pool(HTTPSConnectionPool, self._deadline_s),
        }


def _watched_pool(pool: type[HTTPConnectionPool], deadline_s: Callable[[], float]) -> Any:
    base = pool.ConnectionCls

    class Watched(base):  # type: ignore[valid-type,misc]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            timer = threading.Timer(deadline_s(), _shut_down, (self.sock,))
            timer.daemon = True
            timer.start()
            try:
                return super().getresponse(*args, **kwargs)
            finally:
                timer.cancel()

    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": Watched})


def _shut_down(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class BoundedConnection:
    """One keep-alive session to the API's origin, in the shape PyGithub's Requester drives."""

    def __init__(self, api_url: str, *, retry: Retry, timeout_s: float, limits: ApiLimits) -> None:
        parts = urlsplit(api_url)
        self.host = parts.hostname or ""
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._timeout = timeout_s
        self.limits = limits
        self._pending: tuple[str, str, Any, dict[str, str]] | None = None
        self._hops = 0
        self._follow = True
        self.session = requests.Session()
        self.session.auth = _no_auth
        adapter = _WatchedAdapter(
            lambda: self.limits.read_deadline_s,
            max_retries=retry,
            pool_connections=1,
            pool_maxsize=1,
        )
        self.session.mount(f"{parts.scheme}://", adapter)

    def begin(self, *, follow_redirects: bool = True) -> None:
        """A new request starts: its redirects and 202s are counted from here. Without
        ``follow_redirects`` a redirect comes back as the answer, its body unread."""
        self._hops = 0
        self._follow = follow_redirects

    def request(
        self, verb: str, url: str, input: Any, headers: dict[str, str], stream: bool = False
    ) -> None:
        self._pending = (verb, url, input, dict(headers))

    def getresponse(self) -> BoundedResponse:
        assert self._pending is not None, "request() comes first"
        verb, path, data, headers = self._pending
        url = self.origin + path
        while True:
            self._hops += 1
            if self._hops > MAX_HOPS:
                raise GitHubAnswerInvalid(
                    f"GitHub answered {url.partition('?')[0]} with more than {MAX_HOPS - 1} "
                    "redirects or 202 Accepted in a row: stopped"
                )
            try:
                response = self.session.request(
                    verb,
                    url,
                    headers=headers,
                    data=data,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except (requests.exceptions.InvalidURL, ValueError) as exc:
                # requests prepares the redirect's target even when it will not follow it.
                raise GitHubAnswerInvalid(
                    f"GitHub answered {url.partition('?')[0]} with a redirect that is not a "
                    f"valid URL ({type(exc).__name__}): stopped"
                ) from None
            if not self._follow and response.status_code in (301, 302, 303, 307, 308):
                response.close()
                return BoundedResponse(response.status_code, response.headers, b"")
            try:
                target = self._redirect(response, url)
                if target is None:
                    body = self._read(response, url.partition("?")[0])
            except BaseException:
                response.close()  # mid-body: the connection cannot be reused
                raise
            if target is None:
                break
            response.close()
            url = target
        response.raw.release_conn()  # read to the end: keep the connection alive
        return BoundedResponse(response.status_code, response.headers, body)

    def _redirect(self, response: requests.Response, url: str) -> str | None:
        """Where a redirect points, followed here and only on the API's own origin (PyGithub
        would drop the query, and fail on a relative Location)."""
        location = response.headers.get("Location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            return None
        target = urljoin(url, location)
        parts = urlsplit(target)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise GitHubAnswerInvalid(
                f"GitHub redirected {url.partition('?')[0]} to another origin "
                f"({parts.scheme}://{parts.hostname}): refused, the token goes only to "
                f"{self.origin}; check --github-api-url / GITHUB_API_URL"
            )
        return target

    def _read(self, response: requests.Response, url: str) -> bytes:
        limit = self.limits.max_page_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise GitHubAnswerInvalid(
                f"GitHub's answer to {url} declares {int(declared)} bytes, more than the "
                f"{limit} a page may have (GITHUB_API_MAX_PAGE_BYTES): refused unread"
            )
        deadline = time.monotonic() + self.limits.read_deadline_s
        chunks: list[bytes] = []
        size = 0
        try:
            # read1 returns what has arrived, so a trickle meets the deadline check; gzip is
            # inflated at most one chunk ahead, so a small bomb counts at its inflated size.
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise GitHubAnswerInvalid(
                        f"GitHub's answer to {url} is larger than the {limit} bytes a page "
                        "may have (GITHUB_API_MAX_PAGE_BYTES): stopped reading"
                    )
                if time.monotonic() > deadline:
                    raise GitHubAnswerInvalid(
                        f"GitHub's answer to {url} took longer than "
                        f"{self.limits.read_deadline_s:g} s to arrive ({size} bytes): stopped"
                    )
                chunks.append(chunk)
        except Urllib3Error as exc:  # what requests itself would raise, for the same handling
            raise requests.exceptions.ConnectionError(exc) from exc
        return b"".join(chunks)

    def close(self) -> None:
        self.session.close()
