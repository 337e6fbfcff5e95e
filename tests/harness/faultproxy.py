"""A fault-injecting HTTP proxy in front of a real registry, plus a stand-in CDN.

Each request draws from a seeded RNG against the proxy's rules; a matching rule injects its
fault instead of (or while) forwarding. Location headers are rewritten so that upload
sessions keep going through the proxy. Counters record every fault injected.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from tests.harness.background import BackgroundLoop
from tests.harness.schema1 import SIGNED, signed_schema1

CHUNK = 64 * 1024
# What distribution 2.8 answers to a manifest whose foreign layer URL it refuses: a 500 whose
# first entries say nothing, while a later one names the request's fault.
DISTRIBUTION_FOREIGN_LAYER_REFUSAL = {
    "errors": [
        {"code": "UNKNOWN", "message": "unknown error"},
        {"code": "UNKNOWN", "message": "unknown error", "detail": {}},
        {
            "code": "MANIFEST_BLOB_UNKNOWN",
            "message": "blob unknown to registry",
            "detail": "sha256:" + "a" * 64,
        },
    ]
}
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Rule:
    """Inject ``fault`` into matching requests with ``probability``, at most ``limit`` times."""

    fault: str
    methods: tuple[str, ...] = ("GET", "HEAD", "PUT", "POST", "PATCH")
    # Faults: 429, 429-date, 500, 502, 503, 504, drop, stall, oversize, schema1, 500-client-code,
    # html-502, not-json and not-a-manifest answer in place of the registry; reset, truncate,
    # flip, lying-digest, redirect, redirect-expired, unauthorized, reset-upload and
    # applied-then-stall (forwarded, answered only after stall_s) act on a forwarded exchange.
    path: str = ""  # regex searched in the path
    probability: float = 1.0
    limit: int | None = None


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:5000
    rules: list[Rule] = field(default_factory=list)
    seed: int = 0
    bandwidth_bps: float | None = None  # throttle response bodies (for kill tests)
    # Serve the OCI 1.1 referrers API, which the Debian registry lacks: subject -> referrers.
    referrers: dict[str, list[dict[str, object]]] | None = None
    ignore_range: bool = False  # answer ranged GETs from byte 0, as some servers do
    stall_s: float = 3.0
    injected: Counter[str] = field(default_factory=Counter)
    cdn_headers: list[dict[str, str]] = field(default_factory=list)
    blob_bytes_served: int = 0
    requests: int = 0
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, fault
    ports: list[int] = field(default_factory=list)  # the client's port for each of ``seen``
    # Requests that did not parse, e.g. written onto a connection still holding another
    # request's unsent body: always a client bug, never an injected fault.
    protocol_errors: list[str] = field(default_factory=list)
    # Like GHCR's per-organisation limit: past this many requests in any second, answer 429
    # TOOMANYREQUESTS with the retry-after hint in the body only.
    rate_limit: int | None = None
    admitted: list[float] = field(default_factory=list)  # when each request was let through
    limited: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._uses: Counter[int] = Counter()
        self._cdn: dict[str, tuple[bytes, dict[str, str], bool]] = {}
        self._expired_once: set[str] = set()
        self._unauthorized: set[str] = set()
        self.cdn_secret = "sig=" + secrets.token_hex(8)

    # Lifecycle

    def start(self) -> FaultProxy:
        self._parse_errors = _ParseErrors(self.protocol_errors)
        logging.getLogger("aiohttp.server").addHandler(self._parse_errors)
        self._background = BackgroundLoop()
        self._session = self._background.session(auto_decompress=False)
        app = web.Application(client_max_size=2**31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        cdn = web.Application()
        cdn.router.add_get("/blob/{key}", self._serve_cdn)
        self.port = self._background.serve(app)
        # "localhost" is another origin than 127.0.0.1: a different host, as a CDN is.
        self.cdn_origin = f"http://localhost:{self._background.serve(cdn)}"
        return self

    def stop(self) -> None:
        self._background.stop()
        logging.getLogger("aiohttp.server").removeHandler(self._parse_errors)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_rules(self, rules: list[Rule], seed: int, ignore_range: bool = False) -> None:
        self.rules, self._rng, self.ignore_range = rules, random.Random(seed), ignore_range
        self._uses.clear()
        self._expired_once.clear()
        self._unauthorized.clear()
        self.injected.clear()
        self.cdn_headers.clear()
        self.blob_bytes_served = 0
        self.requests = 0
        self.seen.clear()
        self.ports.clear()
        self.protocol_errors.clear()

    # Request handling

    def _choose(self, request: web.Request) -> str | None:
        for number, rule in enumerate(self.rules):
            if request.method not in rule.methods or not re.search(rule.path, request.path):
                continue
            if rule.limit is not None and self._uses[number] >= rule.limit:
                continue
            if rule.fault == "unauthorized" and request.path_qs in self._unauthorized:
                continue  # fresh credentials must work: never refuse the retry itself
            if self._rng.random() < rule.probability:
                if rule.fault == "unauthorized":
                    self._unauthorized.add(request.path_qs)
                self._uses[number] += 1
                self.injected[rule.fault] += 1
                return rule.fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if "/referrers/" in request.path and request.method == "GET":
            return self._serve_referrers(request)
        if self.rate_limit is not None and (refusal := self._over_rate(request)) is not None:
            return refusal
        fault = self._choose(request)
        self.seen.append((request.method, request.path, fault))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.ports.append(int(peer[1]) if peer else 0)
        if fault and (response := await self._early_fault(fault, request)) is not None:
            return response
        if fault == "reset-upload" and request.method in ("PUT", "PATCH") and request.can_read_body:
            await request.content.read(1024)
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=500)
        if fault == "redirect" or fault == "redirect-expired":
            # The first signed URL handed out for a blob has expired by the time it is used.
            expired = fault == "redirect-expired" and request.path not in self._expired_once
            if expired:
                self._expired_once.add(request.path)
            return await self._redirect(request, expired=expired)
        # A multidict: a client may send one Accept header per media type.
        headers = CIMultiDict(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in ("host", "transfer-encoding", "connection")
        )
        if self.ignore_range:
            headers.pop("Range", None)
        if fault == "unauthorized":
            headers.pop("Authorization", None)
        body = request.content.iter_chunked(CHUNK) if request.can_read_body else None
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            return await self._relay(request, upstream, fault)

    def _over_rate(self, request: web.Request) -> web.Response | None:
        assert self.rate_limit is not None
        now = time.monotonic()
        window = [t for t in self.admitted[-self.rate_limit :] if t > now - 1.0]
        if len(window) < self.rate_limit:
            self.admitted.append(now)
            return None
        self.limited += 1
        wait_ms = (window[0] + 1.0 - now) * 1000
        message = f"retry-after: {wait_ms:.6f}ms, allowed: {self.rate_limit}/second"
        body = {"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}
        return web.json_response(body, status=429)

    async def _early_fault(self, fault: str, request: web.Request) -> web.StreamResponse | None:
        if fault == "429":
            return web.Response(status=429, headers={"Retry-After": "1"})
        if fault == "429-date":
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            return web.Response(status=429, headers={"Retry-After": when})
        if fault in ("500", "502", "503", "504"):
            return web.Response(status=int(fault))
        if fault == "drop":
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=500)
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=500)
        if fault == "schema1" and "/manifests/" in request.path:
            return _schema1_answer(request)
        if fault == "500-client-code":
            return web.json_response(DISTRIBUTION_FOREIGN_LAYER_REFUSAL, status=500)
        if fault in ("not-json", "not-a-manifest") and "/manifests/" in request.path:
            # What a broken or hostile registry may serve under a manifest's content type.
            body = (
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe binary"
                if fault == "not-json"
                else b'{"architecture": "amd64", "os": "linux", "rootfs": {}}'
            )
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            if request.method == "HEAD":
                return web.Response(headers=headers | {"Content-Length": str(len(body))})
            return web.Response(body=body, headers=headers)
        if fault == "html-502":
            return web.Response(status=502, text=NGINX_502, content_type="text/html")
        if fault == "oversize" and "/manifests/" in request.path and request.method == "GET":
            return web.Response(
                body=b" " * (5 * 2**20), content_type="application/vnd.oci.image.manifest.v1+json"
            )
        return None

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, fault: str | None
    ) -> web.StreamResponse:
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in ("transfer-encoding", "connection", "content-length")
        }
        if "Location" in headers:
            headers["Location"] = headers["Location"].replace(self.upstream, f"http://{self.host}")
        if fault == "applied-then-stall":
            # The registry applied the request; its answer never arrives in time.
            await asyncio.sleep(self.stall_s)
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=500)
        if request.method == "HEAD" or upstream.status in (201, 202, 204):
            if fault == "lying-digest" and "Docker-Content-Digest" in headers:
                headers["Docker-Content-Digest"] = "sha256:" + secrets.token_hex(32)
            if upstream.content_length is not None:
                headers["Content-Length"] = str(upstream.content_length)
            return web.Response(status=upstream.status, headers=headers)
        body = await upstream.read()
        is_blob = "/blobs/" in request.path and request.method == "GET"
        if fault == "flip" and body:
            position = self._rng.randrange(len(body))
            body = body[:position] + bytes([body[position] ^ 0xFF]) + body[position + 1 :]
        if fault == "lying-digest" and body:
            body = body + b"\n"  # other bytes, same claimed Docker-Content-Digest
        response = web.StreamResponse(status=upstream.status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        cut = len(body) // 2 if fault in ("reset", "truncate") else len(body)
        sent = 0
        while sent < cut:
            piece = body[sent : min(sent + CHUNK, cut)]
            await response.write(piece)
            sent += len(piece)
            if is_blob:
                self.blob_bytes_served += len(piece)
            if self.bandwidth_bps:
                await self._throttle(len(piece) / self.bandwidth_bps)
        if fault == "reset":
            request.transport.abort()  # type: ignore[union-attr]
            return response
        if fault == "truncate":
            request.transport.close()  # type: ignore[union-attr]
            return response
        await response.write_eof()
        return response

    async def _throttle(self, seconds: float) -> None:
        """Wait as long as a piece takes at the bandwidth, in short steps: once a test lifts the
        limit, responses still being sent (to a client killed mid-transfer, say) stop waiting,
        and stopping the proxy need not wait for them."""
        while seconds > 0 and self.bandwidth_bps:
            step = min(seconds, 0.1)
            await asyncio.sleep(step)
            seconds -= step

    def _serve_referrers(self, request: web.Request) -> web.StreamResponse:
        if self.referrers is None:
            return web.Response(status=404)
        subject = request.path.rsplit("/", 1)[1]
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.referrers.get(subject, []),
        }
        return web.json_response(index, content_type="application/vnd.oci.image.index.v1+json")

    async def _redirect(self, request: web.Request, expired: bool) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() != "host")
        async with self._session.get(self.upstream + request.path_qs, headers=headers) as upstream:
            if upstream.status != 200:
                return web.Response(status=upstream.status, headers=dict(upstream.headers))
            body = await upstream.read()
            content_headers = {"Content-Type": upstream.headers.get("Content-Type", "")}
        key = secrets.token_hex(8)
        self._cdn[key] = (body, content_headers, expired)
        return web.Response(
            status=307, headers={"Location": f"{self.cdn_origin}/blob/{key}?{self.cdn_secret}"}
        )

    async def _serve_cdn(self, request: web.Request) -> web.StreamResponse:
        self.cdn_headers.append(dict(request.headers))
        body, headers, expired = self._cdn[request.match_info["key"]]
        if expired:
            self._cdn[request.match_info["key"]] = (body, headers, False)
            return web.Response(status=403, text="Request has expired")
        self.blob_bytes_served += len(body)
        return web.Response(body=body, headers=headers)


def _schema1_answer(request: web.Request) -> web.Response:
    """A signed schema 1 manifest with the registry's digest of its unsigned payload."""
    name = request.path.split("/v2/", 1)[1].split("/manifests/", 1)[0]
    raw, digest = signed_schema1(name, "latest")
    headers = {"Content-Type": SIGNED, "Docker-Content-Digest": digest}
    if request.method == "HEAD":
        return web.Response(headers=headers | {"Content-Length": str(len(raw))})
    return web.Response(body=raw, headers=headers)


class _ParseErrors(logging.Handler):
    """Collects the proxy server's request parse errors (aiohttp logs them, then answers 400)."""

    def __init__(self, found: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._found = found

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            self._found.append(f"{type(error).__name__}: {str(error)[:300]}")
