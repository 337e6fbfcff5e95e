"""A stand-in for the GitHub REST packages API, with its pagination, auth and rate limits.

Faults answer as GitHub does, with its headers and bodies: the primary and secondary rate
limits, SAML SSO enforcement, a missing scope, and a 404 or a persistent 5xx on one package.

Conditional requests work as GitHub documents them: every list page carries an ``ETag``, and a
request whose ``If-None-Match`` names the current one gets a ``304 Not Modified`` that does not
count against the primary rate limit. A package in the list carries ``version_count`` (what
it holds now) and ``updated_at`` (what the test says: GitHub does not document when it moves).
``delay_s`` answers each request that much later, as a distant API would.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.harness.servers import ThreadedHTTPServer


@dataclass
class StandInPackage:
    name: str
    versions: list[tuple[str, list[str]]]  # (manifest digest, tags)
    updated_at: str = "2026-01-01T00:00:00Z"
    id: int | None = None  # None: its position in the owner's list


FaultKind = Literal[
    "primary",
    "secondary",
    "sso",
    "scope",
    "not-found",
    "server-error",
    "ip-allow-list",
    "classic-forbidden",
    "fine-grained",
    "integration",
]
_DOCS = "https://docs.github.com/rest"
_REQUEST_ID = "If you reach out to GitHub Support for help, please include the request ID C0DE:1234"


@dataclass
class Fault:
    """How GitHub answers instead of the real content, ``times`` times (None: every time)."""

    kind: FaultKind
    times: int | None = None
    retry_after: int | None = None  # secondary: send Retry-After
    reset_in: int = 3600  # primary: X-RateLimit-Reset is this many seconds from now
    status: int = 503  # server-error

    def answer(self, owner: str, scopes: set[str]) -> tuple[int, object, dict[str, str]]:
        if self.kind == "primary":
            body = {
                "message": f"API rate limit exceeded for user ID 4242. {_REQUEST_ID}.",
                "documentation_url": f"{_DOCS}/overview/rate-limits-for-the-rest-api",
                "status": "403",
            }
            return (
                403,
                body,
                {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Used": "5000",
                    "X-RateLimit-Resource": "core",
                    "X-RateLimit-Reset": str(int(time.time()) + self.reset_in),
                },
            )
        if self.kind == "secondary":
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                f"before you try again. {_REQUEST_ID}.",
                "documentation_url": f"{_DOCS}/overview/rate-limits-for-the-rest-api"
                "#about-secondary-rate-limits",
                "status": "403",
            }
            retry = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
            return 403, body, retry
        if self.kind == "sso":
            body = {
                "message": "Resource protected by organization SAML enforcement. You must grant "
                "your Personal Access token access to this organization.",
                "documentation_url": "https://docs.github.com/articles/"
                "authenticating-to-a-github-organization-with-saml-single-sign-on/",
                "status": "403",
            }
            sso = f"required; url=https://github.com/orgs/{owner}/sso?authorization_request=AZ9sso"
            return 403, body, {"X-GitHub-SSO": sso}
        if self.kind == "scope":  # as if the token had been created without read:packages
            return _missing_scope(scopes - {"read:packages"})
        if self.kind == "not-found":
            return 404, {"message": "Package not found.", "status": "404"}, {}
        if self.kind in _REFUSALS:
            body = {
                "message": _REFUSALS[self.kind].format(owner=owner),
                "documentation_url": f"{_DOCS}/packages/packages",
                "status": "403",
            }
            return 403, body, {}
        return self.status, {"message": "Server Error"}, {}


# GitHub's own words for refusals that are neither a rate limit, SSO nor a missing scope.
_REFUSALS = {
    "ip-allow-list": "Although you appear to have the correct authorization credentials, the "
    "`{owner}` organization has an IP allow list enabled, and your IP address is not permitted "
    "to access this resource.",
    "classic-forbidden": "`{owner}` forbids access via a personal access token (classic). Please "
    "use a GitHub App, OAuth App, or a personal access token with fine-grained permissions.",
    "fine-grained": "Resource not accessible by personal access token",
    "integration": "Resource not accessible by integration",
}


def _missing_scope(scopes: set[str]) -> tuple[int, object, dict[str, str]]:
    body = {
        "message": "You need at least read:packages scope to list packages.",
        "documentation_url": f"{_DOCS}/packages/packages",
        "status": "403",
    }
    return (
        403,
        body,
        {
            "X-OAuth-Scopes": ", ".join(sorted(scopes)),
            "X-Accepted-OAuth-Scopes": "read:packages",
        },
    )


@dataclass
class GitHubStandIn(ThreadedHTTPServer):
    """Owners map to packages. Tokens map to their OAuth scopes."""

    owners: dict[str, list[StandInPackage]] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)  # owners served under /users/
    rate_limited: int = 0  # answer this many requests with a 429 + Retry-After first
    requests: list[str] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)  # of each request
    remaining: int = 5000
    # Key "" is the package list; any other key is a package name (its versions).
    faults: dict[str, Fault] = field(default_factory=dict)
    delay_s: float = 0.0  # each answer this much later
    etags: bool = True  # send ETag and honour If-None-Match
    not_modified: int = 0  # 304s answered
    counted: int = 0  # requests that counted against the primary rate limit

    def _fault(self, key: str, owner: str, token: str) -> tuple[int, object, dict[str, str]] | None:
        fault = self.faults.get(key)
        if fault is None or fault.times == 0:
            return None
        if fault.times is not None:
            fault.times -= 1
        return fault.answer(owner, self.tokens[token])

    def _route(
        self, raw_path: str, query: dict[str, list[str]], token: str | None
    ) -> tuple[int, object, dict[str, str]]:
        if token is None or token not in self.tokens:
            return 401, {"message": "Bad credentials"}, {}
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return (
                429,
                {"message": "You have exceeded a secondary rate limit"},
                {"Retry-After": "1"},
            )
        if "read:packages" not in self.tokens[token]:
            return _missing_scope(self.tokens[token])
        parts = raw_path.strip("/").split("/")
        # /{orgs|users}/{owner}/packages  or  .../packages/container/{name}/versions
        if len(parts) < 3 or parts[0] not in ("orgs", "users") or parts[2] != "packages":
            return 404, {"message": "Not Found"}, {}
        owner = unquote(parts[1])
        if owner not in self.owners or (parts[0] == "users") != (owner in self.users):
            return 404, {"message": "Not Found"}, {}
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        if len(parts) in (3, 6) and (
            fault := self._fault("" if len(parts) == 3 else unquote(parts[4]), owner, token)
        ):
            return fault
        if len(parts) == 3:
            if query.get("package_type") != ["container"]:
                return 400, {"message": "package_type is required"}, {}
            if per_page * page > 10_000:
                return 400, {"message": "Pagination is limited to 10000 results"}, {}
            items: list[object] = [
                {
                    "id": i if p.id is None else p.id,
                    "name": p.name,
                    "package_type": "container",
                    "version_count": len(p.versions),
                    "visibility": "private",
                    "created_at": "2025-01-01T00:00:00Z",
                    "updated_at": p.updated_at,
                }
                for i, p in enumerate(self.owners[owner])
            ]
        elif len(parts) == 6 and parts[3] == "container" and parts[5] == "versions":
            # A raw "/" inside the name would have split it into more parts: only %2F works.
            wanted = unquote(parts[4])
            package = next((p for p in self.owners[owner] if p.name == wanted), None)
            if package is None:
                return 404, {"message": "Package not found."}, {}
            items = [
                {
                    "id": i,
                    "name": digest,
                    "metadata": {"package_type": "container", "container": {"tags": tags}},
                }
                for i, (digest, tags) in enumerate(package.versions)
            ]
        else:
            return 404, {"message": "Not Found"}, {}
        pages = max(1, math.ceil(len(items) / per_page))
        body = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page < pages:
            params = {k: v[0] for k, v in query.items()} | {"per_page": str(per_page)}

            def link(n: int) -> str:
                q = "&".join(f"{k}={quote(v)}" for k, v in (params | {"page": str(n)}).items())
                return f"{self.url}{raw_path}?{q}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(pages)}>; rel="last"'
        return 200, body, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if stand_in.delay_s:
                    time.sleep(stand_in.delay_s)
                url = urlsplit(self.path)
                stand_in.requests.append(self.path)
                stand_in.request_headers.append(dict(self.headers.items()))
                auth = self.headers.get("Authorization", "")
                token = auth.split(" ", 1)[1] if " " in auth else None
                status, body, headers = stand_in._route(url.path, parse_qs(url.query), token)
                data = json.dumps(body).encode()
                if status == 200 and stand_in.etags:
                    etag = f'W/"{hashlib.sha256(data).hexdigest()[:32]}"'
                    headers = headers | {"ETag": etag}
                    if self.headers.get("If-None-Match") == etag and token in stand_in.tokens:
                        status, data = 304, b""  # authorized and unchanged: not counted
                        stand_in.not_modified += 1
                if status != 304:
                    stand_in.remaining -= 1
                    stand_in.counted += 1
                self.send_response(status)
                if status != 304:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                defaults = {
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": str(max(stand_in.remaining, 1)),
                    "X-RateLimit-Reset": str(int(time.time()) + 3600),
                }
                if token in stand_in.tokens:
                    defaults["X-OAuth-Scopes"] = ", ".join(sorted(stand_in.tokens[token]))
                    defaults["X-Accepted-OAuth-Scopes"] = "read:packages"
                for key, value in (defaults | headers).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
