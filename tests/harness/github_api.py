"""A stand-in for the GitHub REST packages API, with its pagination, auth and rate limits."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass
class StandInPackage:
    name: str
    versions: list[tuple[str, list[str]]]  # (manifest digest, tags)


@dataclass
class GitHubStandIn:
    """Owners map to packages. Tokens map to their OAuth scopes."""

    owners: dict[str, list[StandInPackage]] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)  # owners served under /users/
    rate_limited: int = 0  # answer this many requests with a 429 + Retry-After first
    requests: list[str] = field(default_factory=list)
    remaining: int = 5000

    def start(self) -> GitHubStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

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
            return 403, {"message": "You need at least read:packages scope to list packages."}, {}
        parts = raw_path.strip("/").split("/")
        # /{orgs|users}/{owner}/packages  or  .../packages/container/{name}/versions
        if len(parts) < 3 or parts[0] not in ("orgs", "users") or parts[2] != "packages":
            return 404, {"message": "Not Found"}, {}
        owner = unquote(parts[1])
        if owner not in self.owners or (parts[0] == "users") != (owner in self.users):
            return 404, {"message": "Not Found"}, {}
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        if len(parts) == 3:
            if query.get("package_type") != ["container"]:
                return 400, {"message": "package_type is required"}, {}
            if per_page * page > 10_000:
                return 400, {"message": "Pagination is limited to 10000 results"}, {}
            items: list[object] = [
                {"id": i, "name": p.name, "package_type": "container"}
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
                url = urlsplit(self.path)
                stand_in.requests.append(self.path)
                auth = self.headers.get("Authorization", "")
                token = auth.split(" ", 1)[1] if " " in auth else None
                status, body, headers = stand_in._route(url.path, parse_qs(url.query), token)
                stand_in.remaining -= 1
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-RateLimit-Limit", "5000")
                self.send_header("X-RateLimit-Remaining", str(stand_in.remaining))
                self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
