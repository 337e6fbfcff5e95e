"""A compromised source registry on loopback: just enough of the distribution API to be copied
from, with each answer replaceable by an attack.

Content is served from ``manifests`` (reference -> (media type, bytes)) and ``blobs``
(digest -> bytes). ``challenge`` makes every /v2/ request without ``Authorization`` answer
401 with that WWW-Authenticate header. ``routes`` override any path prefix with a handler of
the test's own (a trickle, an endless body, endless pages). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.harness.background import BackgroundLoop
from tests.harness.hostile import Recorder

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, size: int | None = None) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": sha(data),
        "size": len(data) if size is None else size,
    }


def image_manifest(config: bytes, layers: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": layers,
        }
    ).encode()


@dataclass
class HostileRegistry:
    loop: BackgroundLoop
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    challenge: str | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    recorder: Recorder | None = None

    def start(self) -> HostileRegistry:
        self.recorder = Recorder(self.loop, self._answer).start()
        return self

    @property
    def host(self) -> str:
        assert self.recorder is not None
        return self.recorder.host

    def add_image(self, repository: str, tag: str, layers: list[bytes]) -> str:
        """An ordinary image under ``repository:tag``; its manifest digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        for blob in (config, *layers):
            self.blobs[sha(blob)] = blob
        raw = image_manifest(config, [descriptor(OCI_LAYER, layer) for layer in layers])
        self.manifests[f"{repository}:{tag}"] = (OCI_MANIFEST, raw)
        self.manifests[f"{repository}:{sha(raw)}"] = (OCI_MANIFEST, raw)
        return sha(raw)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        for prefix, route in self.routes.items():
            if request.path.startswith(prefix):
                return await route(request)
        if self.challenge and not request.headers.get("Authorization"):
            return web.Response(status=401, headers={"WWW-Authenticate": self.challenge})
        if request.path in ("/v2/", "/v2"):
            return web.json_response({})
        name, kind, ref = _split(request.path)
        if kind == "manifests" and f"{name}:{ref}" in self.manifests:
            media_type, raw = self.manifests[f"{name}:{ref}"]
            headers = {"Docker-Content-Digest": sha(raw), "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(raw))
                return web.Response(status=200, headers=headers)
            return web.Response(status=200, body=raw, headers=headers)
        if kind == "blobs" and ref in self.blobs:
            return web.Response(status=200, body=self.blobs[ref])
        return web.json_response(
            {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown", "detail": None}]},
            status=404,
        )


def _split(path: str) -> tuple[str, str, str]:
    """(/v2/<name>/<kind>/<ref>) -> (name, kind, ref)."""
    rest = path.removeprefix("/v2/")
    for kind in ("manifests", "blobs", "referrers", "tags"):
        name, sep, ref = rest.rpartition(f"/{kind}/")
        if sep:
            return name, kind, ref
    return rest, "", ""


def trickle(
    content_type: str,
    one_byte_every_s: float = 5.0,
    headers: dict[str, str] | None = None,
    status: int = 200,
) -> Route:
    """An answer (200 unless told) whose body comes one byte every few seconds, for ever."""

    async def route(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=status, headers={"Content-Type": content_type, **(headers or {})}
        )
        await response.prepare(request)
        try:
            while True:
                await response.write(b"{")
                await asyncio.sleep(one_byte_every_s)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    return route


def endless(content_type: str, chunk: bytes = b"A" * 65536) -> Route:
    """A 200 whose body never ends, sent as fast as the client reads."""

    async def route(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        await response.prepare(request)
        try:
            while True:
                await response.write(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    return route
