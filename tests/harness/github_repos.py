"""A stand-in for GitHub's repository listings, with Link pagination and token checks.

Serves ``GET /orgs/{org}/repos``, ``/users/{user}/repos``, ``/user`` and ``/user/repos``.
Each repository's ``clone_url`` points at a test git server. A hostile listing can add raw
entries (``raw``), name another host in its links and ``url`` fields (``public_url``) and pad
its pages; every request's headers are kept (``received``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.harness.servers import ThreadedHTTPServer


@dataclass
class StandInRepo:
    name: str
    fork: bool = False
    archived: bool = False
    visibility: str = "private"
    has_wiki: bool = True
    default_branch: str = "main"


@dataclass
class GitHubReposStandIn(ThreadedHTTPServer):
    git_url: str  # base URL of the git server the clone URLs point at
    owners: dict[str, list[StandInRepo]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> login
    users: set[str] = field(default_factory=set)  # owners that are users, not organisations
    requests: list[str] = field(default_factory=list)
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, headers
    raw: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # owner -> extra JSON
    public_url: str | None = None  # the base URL its answers name, if not its own
    padding_bytes: int = 0  # added to the first entry of every page
    endless: bool = False  # every page links a next one

    @property
    def named_url(self) -> str:
        return self.public_url or self.url

    def _json(self, owner: str, repo: StandInRepo) -> dict[str, object]:
        full = f"{owner}/{repo.name}"
        return {
            "id": abs(hash(full)) % 10**9,
            "name": repo.name,
            "full_name": full,
            "owner": {"login": owner, "type": "User" if owner in self.users else "Organization"},
            "private": repo.visibility != "public",
            "visibility": repo.visibility,
            "fork": repo.fork,
            "archived": repo.archived,
            "has_wiki": repo.has_wiki,
            "default_branch": repo.default_branch,
            "clone_url": f"{self.git_url}/{full}.git",
            "url": f"{self.named_url}/repos/{full}",
        }

    def _route(
        self, path: str, query: dict[str, list[str]], login: str
    ) -> tuple[int, object, dict[str, str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["user"]:
            return 200, {"login": login, "url": f"{self.named_url}/users/{login}"}, {}
        if len(parts) == 2 and parts[0] in ("orgs", "users"):
            if parts[1] not in self.owners or (parts[0] == "users") != (parts[1] in self.users):
                return 404, {"message": "Not Found"}, {}
            return 200, {"login": parts[1], "url": f"{self.named_url}/{parts[0]}/{parts[1]}"}, {}
        if parts == ["user", "repos"]:
            owner = login
        elif len(parts) == 3 and parts[0] in ("orgs", "users") and parts[2] == "repos":
            owner = parts[1]
            if owner not in self.owners or (parts[0] == "users") != (owner in self.users):
                return 404, {"message": "Not Found"}, {}
        else:
            return 404, {"message": "Not Found"}, {}
        repos = self.owners.get(owner, [])
        if parts[0] == "users" or (parts[0] == "user" and owner != login):
            repos = [r for r in repos if r.visibility == "public"]
        items = [self._json(owner, r) for r in repos] + list(self.raw.get(owner, []))
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        pages = max(1, math.ceil(len(items) / per_page))
        headers: dict[str, str] = {}
        if page < pages or self.endless:
            params: dict[str, str] = {k: v[0] for k, v in query.items()}
            params |= {"per_page": str(per_page)}

            def link(n: int) -> str:
                q = "&".join(f"{k}={quote(v)}" for k, v in (params | {"page": str(n)}).items())
                return f"{self.named_url}{path}?{q}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(pages)}>; rel="last"'
        chosen = items[(page - 1) * per_page : page * per_page]
        if self.padding_bytes and chosen:
            chosen[0] = dict(chosen[0]) | {"description": "x" * self.padding_bytes}
        return 200, chosen, headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                stand_in.requests.append(self.path)
                stand_in.received.append((self.path, dict(self.headers.items())))
                auth = self.headers.get("Authorization", "")
                token = auth.split(" ", 1)[1] if " " in auth else ""
                status: int
                body: object
                headers: dict[str, str]
                if token not in stand_in.tokens:
                    status, body, headers = 401, {"message": "Bad credentials"}, {}
                else:
                    status, body, headers = stand_in._route(
                        url.path, parse_qs(url.query), stand_in.tokens[token]
                    )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-RateLimit-Limit", "5000")
                self.send_header("X-RateLimit-Remaining", "4999")
                self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # a client that refused the answer part-way
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler
