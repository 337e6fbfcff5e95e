"""An in-memory ``Store`` with fault knobs, and small image builders, for in-process tests.

``MemStore`` behaves like a distribution registry where it matters to the engine: blobs and
manifests live per repository, a mount works only from a repository that holds the blob, and
a manifest is refused unless everything it references is already in its repository. Every
call is counted (``calls``) and every write is logged in order (``events``), so a test can
assert what crossed, what was mounted, and that a tag came after its content.

Fault knobs (all per digest, all counted from the first call):
- ``break_read(digest, nth, after)``: the nth read of a blob yields ``after`` bytes, then
  raises ``ConnectionBroken`` (a broken connection);
- ``cut_read(digest, nth, after)``: the nth read ends cleanly after ``after`` bytes;
- ``resumable = False``: a read from a non-zero offset raises ``ResumeRefused``;
- ``fail_write(digest, times, error)``: the next ``times`` writes of a blob raise ``error``
  (a ``TransientError`` by default) after consuming the stream;
- ``fail_put_manifest(identifier, times, error)``: the same for manifest writes;
- ``hold_writes``: an ``asyncio.Event`` every blob write waits on (set by default), with
  ``write_started`` set once a write is waiting;
- ``mounts = False``: every mount answers with an upload session, as a registry that
  refuses cross-repository mounts does;
- ``check_references = False``: accept a manifest whose content is missing, as some
  registries do (the client must then keep the order itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import (
    BackupError,
    ConnectionBroken,
    DigestMismatch,
    NotFound,
    RegistryError,
    ResumeRefused,
    TransientError,
)
from github_org_backup.model.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    digest_of,
    parse_manifest,
)
from github_org_backup.model.reference import Registry
from github_org_backup.stores.protocol import UploadSession

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

# No waiting between retries in tests: the policy's delays are all zero.
FAST_POLICY = RetryPolicy(attempts=3, base_delay_s=0.0, max_delay_s=0.0)


@dataclass(frozen=True)
class Event:
    """One completed write: ``blob`` (streamed), ``mount``, ``manifest`` (by digest) or ``tag``."""

    kind: str
    name: str
    digest: str
    tag: str | None = None


@dataclass
class _Fault:
    nth: int
    after: int
    kind: str  # "break" or "cut"


@dataclass
class _Failures:
    times: int
    error: BackupError | Exception


@dataclass
class MemStore:
    """A Store in memory. ``layout=True`` makes it look like an OCI layout to the transfer."""

    host: str = "mem.test"
    layout: bool = False
    chunk_size: int = 4
    resumable: bool = True
    mounts: bool = True
    check_references: bool = True
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    manifests: dict[str, dict[str, Manifest]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    events: list[Event] = field(default_factory=list)
    reads: list[tuple[str, str, int]] = field(default_factory=list)  # (name, digest, offset)
    writes: list[tuple[str, str, UploadSession | None]] = field(
        default_factory=list
    )  # with session
    hold_writes: asyncio.Event = field(default_factory=asyncio.Event)
    write_started: asyncio.Event = field(default_factory=asyncio.Event)
    _read_faults: dict[str, list[_Fault]] = field(default_factory=dict)
    _read_counts: Counter[str] = field(default_factory=Counter)
    _write_failures: dict[str, _Failures] = field(default_factory=dict)
    _manifest_failures: dict[str, _Failures] = field(default_factory=dict)
    _sessions: int = 0
    registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = (
            Registry.layout_at(f"/mem/{self.host}") if self.layout else Registry(self.host, "http")
        )
        self.hold_writes.set()

    # Fault knobs

    def break_read(self, digest: str, nth: int = 1, after: int = 0) -> None:
        self._read_faults.setdefault(digest, []).append(_Fault(nth, after, "break"))

    def cut_read(self, digest: str, nth: int = 1, after: int = 0) -> None:
        self._read_faults.setdefault(digest, []).append(_Fault(nth, after, "cut"))

    def fail_write(
        self, digest: str, times: int = 1, error: BackupError | Exception | None = None
    ) -> None:
        self._write_failures[digest] = _Failures(times, error or TransientError("injected"))

    def fail_put_manifest(
        self, identifier: str, times: int = 1, error: BackupError | Exception | None = None
    ) -> None:
        self._manifest_failures[identifier] = _Failures(times, error or TransientError("injected"))

    # Seeding and inspection (not part of the Store interface, not counted)

    def add_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs.setdefault(name, {})[digest] = data
        return digest

    def add_image(self, name: str, tag: str | None, image: Image) -> None:
        """Seed a whole image (blobs, children, the manifest) and optionally tag it."""
        for data in image.all_blobs().values():
            self.add_blob(name, data)
        for manifest in image.all_manifests():
            self.manifests.setdefault(name, {})[manifest.digest] = manifest
        if tag is not None:
            self.tags.setdefault(name, {})[tag] = image.manifest.digest

    def has(self, name: str, digest: str) -> bool:
        return digest in self.blobs.get(name, {}) or digest in self.manifests.get(name, {})

    def tag_digest(self, name: str, tag: str) -> str | None:
        return self.tags.get(name, {}).get(tag)

    # Store: manifests

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        self.calls["resolve_manifest"] += 1
        digest = self.tags.get(name, {}).get(identifier, identifier)
        manifest = self.manifests.get(name, {}).get(digest)
        return manifest.descriptor() if manifest is not None else None

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        self.calls["get_manifest"] += 1
        digest = self.tags.get(name, {}).get(identifier, identifier)
        manifest = self.manifests.get(name, {}).get(digest)
        if manifest is None:
            raise NotFound(f"manifest {name}:{identifier} not found")
        return parse_manifest(manifest.raw, manifest.media_type, expected)

    async def put_manifest(self, name: str, identifier: str, manifest: Manifest) -> None:
        self.calls["put_manifest"] += 1
        self._maybe_fail(self._manifest_failures, identifier)
        self._maybe_fail(self._manifest_failures, manifest.digest)
        missing = [d.digest for d in manifest.blobs() if d.digest not in self.blobs.get(name, {})]
        missing += [
            d.digest for d in manifest.children() if d.digest not in self.manifests.get(name, {})
        ]
        if missing and self.check_references:  # distribution answers 400 MANIFEST_BLOB_UNKNOWN
            raise RegistryError(f"{name}: manifest references missing {missing[0]}", status=400)
        self.manifests.setdefault(name, {})[manifest.digest] = manifest
        if identifier.startswith("sha256:"):
            self.events.append(Event("manifest", name, manifest.digest))
        else:
            self.tags.setdefault(name, {})[identifier] = manifest.digest
            self.events.append(Event("tag", name, manifest.digest, identifier))

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        self.calls["list_referrers"] += 1
        return None

    async def list_tags(self, name: str) -> list[str]:
        self.calls["list_tags"] += 1
        return sorted(self.tags.get(name, {}))

    async def list_repositories(self) -> list[str]:
        self.calls["list_repositories"] += 1
        return sorted(set(self.tags) | set(self.manifests) | set(self.blobs))

    async def delete_tag(self, name: str, tag: str) -> None:
        self.calls["delete_tag"] += 1
        if self.tags.get(name, {}).pop(tag, None) is None:
            raise NotFound(f"tag {name}:{tag} not found")
        self.events.append(Event("delete_tag", name, "", tag))

    # Store: blobs

    async def blob_size(self, name: str, digest: str) -> int | None:
        self.calls["blob_size"] += 1
        data = self.blobs.get(name, {}).get(digest)
        return len(data) if data is not None else None

    async def mount_blob(self, name: str, digest: str, from_name: str) -> UploadSession | None:
        self.calls["mount_blob"] += 1
        data = self.blobs.get(from_name, {}).get(digest)
        if self.mounts and data is not None:
            self.blobs.setdefault(name, {})[digest] = data
            self.events.append(Event("mount", name, digest))
            return None
        self._sessions += 1
        return UploadSession(name, str(self._sessions))

    async def start_upload(self, name: str) -> UploadSession:
        self.calls["start_upload"] += 1
        self._sessions += 1
        return UploadSession(name, str(self._sessions))

    async def cancel_upload(self, session: UploadSession) -> None:
        self.calls["cancel_upload"] += 1

    @contextlib.asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.calls["read_blob"] += 1
        self.reads.append((name, digest, offset))
        data = self.blobs.get(name, {}).get(digest)
        if data is None:
            raise NotFound(f"blob {digest} not found in {name}")
        if offset and not self.resumable:
            raise ResumeRefused(f"{digest}: the source cannot start at byte {offset}")
        self._read_counts[digest] += 1
        fault = next(
            (f for f in self._read_faults.get(digest, []) if f.nth == self._read_counts[digest]),
            None,
        )

        async def chunks() -> AsyncIterator[bytes]:
            end = len(data) if fault is None else min(offset + fault.after, len(data))
            for start in range(offset, end, self.chunk_size):
                yield data[start : min(start + self.chunk_size, end)]
                await asyncio.sleep(0)
            if fault is not None and fault.kind == "break":
                raise ConnectionBroken(f"injected break after byte {end}")

        yield chunks()

    async def write_blob(
        self,
        name: str,
        blob: Descriptor,
        chunks: AsyncIterable[bytes],
        session: UploadSession | None,
    ) -> None:
        self.calls["write_blob"] += 1
        self.writes.append((name, blob.digest, session))
        if session is not None:
            assert session.name == name, session
        self.write_started.set()
        await self.hold_writes.wait()
        received = b"".join([chunk async for chunk in chunks])
        self._maybe_fail(self._write_failures, blob.digest)
        if digest_of(received, blob.digest.partition(":")[0]) != blob.digest:
            raise DigestMismatch(f"{blob.digest}: the registry received other bytes")
        self.blobs.setdefault(name, {})[blob.digest] = received
        self.events.append(Event("blob", name, blob.digest))

    def _maybe_fail(self, failures: dict[str, _Failures], key: str) -> None:
        planned = failures.get(key)
        if planned is not None and planned.times > 0:
            planned.times -= 1
            raise planned.error


# Image builders


@dataclass(frozen=True)
class Image:
    """A manifest (or index), its child manifests and the bytes of every blob below it."""

    manifest: Manifest
    children: tuple[Image, ...] = ()
    blob_data: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def all_manifests(self) -> list[Manifest]:
        """Children first, then this manifest: the order a registry accepts them in."""
        return [m for child in self.children for m in child.all_manifests()] + [self.manifest]

    def all_blobs(self) -> dict[str, bytes]:
        """The bytes of every blob below this image, children included, by digest."""
        found = dict(self.blob_data)
        for child in self.children:
            found |= child.all_blobs()
        return found

    def references(self) -> set[str]:
        """Every digest this image needs at the destination, itself excluded."""
        found = set(self.blob_data)
        for child in self.children:
            found |= {child.digest} | child.references()
        return found


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def image(*layers: bytes, config: bytes | None = None) -> Image:
    """An OCI image manifest over these layer bytes (the config names them, so it is unique)."""
    if config is None:
        config = json.dumps({"layers": [hashlib.sha256(x).hexdigest() for x in layers]}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(CONFIG_TYPE, config),
        "layers": [_descriptor(LAYER_TYPE, layer) for layer in layers],
    }
    raw = json.dumps(document).encode()
    blobs = {digest_of(config): config} | {digest_of(layer): layer for layer in layers}
    return Image(parse_manifest(raw, OCI_MANIFEST), (), blobs)


def index(children: Iterable[tuple[str, Image]]) -> Image:
    """An OCI index over ``(platform, image)`` pairs such as ``("linux/amd64", image(...))``."""
    pairs = list(children)
    entries = []
    for platform, child in pairs:
        parsed = Platform.parse(platform)
        entry = _descriptor(OCI_MANIFEST, child.manifest.raw)
        entry["platform"] = {"os": parsed.os, "architecture": parsed.architecture}
        entries.append(entry)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return Image(parse_manifest(raw, OCI_INDEX), tuple(child for _, child in pairs))
