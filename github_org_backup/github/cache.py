"""What the last discovery learned, kept in the backup beside its snapshots.

A warm run asks GitHub only what may have changed. The cache is an OCI artifact tagged
``discovery-cache`` in the snapshots repository (``<prefix>/snapshots.github-org-backup``,
per shard), so a CronJob without a volume has it, in a registry or an OCI layout alike. That
tag is not a snapshot id, so snapshot listings, retention and pruning never see it.

It holds two gzip'd JSON layers:

- the *state*: the package list as GitHub last sent it, page by page with each page's
  ``ETag``, and where the last revalidation stopped (small; rewritten every run);
- the *packages*: per package, the list entry its versions were read under (``id``,
  ``version_count``, ``updated_at``), each versions page's ``ETag``, its tags (by digest) and
  how many untagged versions it has (large; unchanged bytes when nothing changed, so an
  unchanged organisation writes no new blob).

Untagged versions (the children of tagged indexes, attestations) are only counted: an
organisation of 2,000 packages and 50,000 versions caches in a few hundred kilobytes.
Anything unreadable, for another owner or API, or of another format is ignored: discovery
then lists everything, as on a first run.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from github_org_backup.base import jsonio
from github_org_backup.errors import BackupError, InvalidManifest, InvalidReference, NotFound
from github_org_backup.model.oci import OCI_MANIFEST, Descriptor, digest_of, parse_manifest
from github_org_backup.model.packages import Owner, Package
from github_org_backup.model.reference import validate_digest, validate_tag
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.github.cache")

CACHE_TAG = "discovery-cache"
FORMAT = 1
ARTIFACT_TYPE = "application/vnd.github-org-backup.discovery-cache.v1"
STATE_MEDIA_TYPE = "application/vnd.github-org-backup.discovery-state.v1+json+gzip"
PACKAGES_MEDIA_TYPE = "application/vnd.github-org-backup.discovery-packages.v1+json+gzip"
_EMPTY_CONFIG = b"{}"
_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
# Far above any real organisation; they refuse a runaway blob.
MAX_LAYER_BYTES = 256 * 2**20
MAX_JSON_BYTES = 1024 * 2**20


@dataclass(frozen=True)
class Listed:
    """What the package list says of one package. Any change to it means: read its versions."""

    name: str
    id: int | None = None
    version_count: int | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Listed:
        """An entry of GitHub's package list; its optional fields are dropped if mistyped."""

        def number(key: str) -> int | None:
            value = item.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        name = item["name"]
        if not isinstance(name, str):
            raise TypeError("a package name must be text")
        updated = item.get("updated_at")
        return cls(
            name,
            number("id"),
            number("version_count"),
            updated if isinstance(updated, str) else None,
        )

    def to_json(self) -> list[Any]:
        return [self.name, self.id, self.version_count, self.updated_at]

    @classmethod
    def from_json(cls, obj: Any) -> Listed:
        name, ident, count, updated = obj
        if not isinstance(name, str):
            raise TypeError("a package name must be text")
        return cls(name, _int_or_none(ident), _int_or_none(count), _str_or_none(updated))


MAX_NAME_CHARS = 255  # the longest repository path a registry accepts


def listed_entry(item: Any) -> Listed | str:
    """One entry of GitHub's package list, or why it is out of the API's shape."""
    if not isinstance(item, dict):
        return f"an entry of type {type(item).__name__}, not an object"
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return f"name is {_shape(name)}, not a package name"
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        return "name is not a package name (too long, or with control characters)"
    return Listed.from_api(item)


def _shape(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "empty"
    return f"of type {type(value).__name__}"


@dataclass(frozen=True)
class ListPage:
    """One page of the package list: its ETag, its packages, and whether GitHub linked a next."""

    etag: str | None
    items: tuple[Listed, ...]
    more: bool

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "more": self.more, "items": [i.to_json() for i in self.items]}

    @classmethod
    def from_json(cls, obj: Any) -> ListPage:
        return cls(
            _str_or_none(obj["etag"]),
            tuple(Listed.from_json(i) for i in obj["items"]),
            bool(obj["more"]),
        )


@dataclass(frozen=True)
class CachedPackage:
    """One package's versions as read under ``listed``: page ETags, tags, untagged count."""

    listed: Listed
    page_etags: tuple[str | None, ...]
    tags: dict[str, str]  # tag -> manifest digest
    untagged: int

    def package(self) -> Package:
        return Package(self.listed.name, dict(self.tags), self.untagged)

    def to_json(self) -> dict[str, Any]:
        by_digest: dict[str, list[str]] = {}
        for tag, digest in sorted(self.tags.items()):
            by_digest.setdefault(digest, []).append(tag)
        return {
            "listed": self.listed.to_json()[1:],
            "etags": list(self.page_etags),
            "untagged": self.untagged,
            "versions": dict(sorted(by_digest.items())),
        }

    @classmethod
    def from_json(cls, name: str, obj: Any) -> CachedPackage:
        tags: dict[str, str] = {}
        for digest, names in obj["versions"].items():
            validate_digest(digest)
            for tag in names:
                tags[validate_tag(tag)] = digest
        untagged = obj["untagged"]
        if not isinstance(untagged, int):
            raise TypeError("untagged must be a number")
        return cls(
            Listed.from_json([name, *obj["listed"]]),
            tuple(_str_or_none(e) for e in obj["etags"]),
            tags,
            untagged,
        )


@dataclass
class DiscoveryCache:
    """Everything one discovery learned about one owner on one API."""

    owner: str  # "orgs/acme"
    api_url: str
    list_pages: list[ListPage] = field(default_factory=list)
    packages: dict[str, CachedPackage] = field(default_factory=dict)
    cursor: str = ""  # the last package revalidated; the next run goes on after it

    @staticmethod
    def key(owner: Owner, api_url: str) -> tuple[str, str]:
        return f"{owner.kind}/{owner.name}", api_url.rstrip("/")

    def state_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "owner": self.owner,
            "api": self.api_url,
            "cursor": self.cursor,
            "list": [page.to_json() for page in self.list_pages],
        }
        return _pack(document)

    def packages_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "packages": {name: self.packages[name].to_json() for name in sorted(self.packages)},
        }
        return _pack(document)

    @classmethod
    def from_bytes(cls, state: bytes, packages: bytes) -> DiscoveryCache:
        try:
            head = _unpack(state)
            body = _unpack(packages)
            if head.get("format") != FORMAT or body.get("format") != FORMAT:
                raise InvalidManifest(f"the discovery cache is not of format {FORMAT}")
            return cls(
                str(head["owner"]),
                str(head["api"]),
                [ListPage.from_json(page) for page in head["list"]],
                {
                    str(name): CachedPackage.from_json(str(name), entry)
                    for name, entry in body["packages"].items()
                },
                str(head.get("cursor") or ""),
            )
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            InvalidReference,
            OSError,
            EOFError,
            zlib.error,
        ) as exc:
            raise InvalidManifest(f"the discovery cache is not readable: {exc}") from None

    def summary(self) -> dict[str, Any]:
        return {
            "packages": len(self.packages),
            "list_pages": len(self.list_pages),
            "version_pages": sum(len(p.page_etags) for p in self.packages.values()),
            "tags": sum(len(p.tags) for p in self.packages.values()),
        }


def _pack(document: dict[str, Any]) -> bytes:
    text = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)  # same content, same bytes


def _unpack(data: bytes) -> dict[str, Any]:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
        text = handle.read(MAX_JSON_BYTES + 1)  # a bounded read: no decompression bomb
    if len(text) > MAX_JSON_BYTES:
        raise ValueError("the discovery cache is implausibly large")
    document = jsonio.loads(text)
    if not isinstance(document, dict):
        raise TypeError("a discovery cache layer is not a JSON object")
    return document


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    return value


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


# Reading and writing it through the backup's store


async def _read(store: Store, repository: str, blob: Descriptor) -> bytes:
    if blob.size > MAX_LAYER_BYTES:
        raise InvalidManifest(f"a discovery cache layer of {blob.size} bytes is too large")
    data = b""
    async with store.read_blob(repository, blob.digest) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > blob.size:
                break
    if len(data) != blob.size or digest_of(data) != blob.digest:
        raise InvalidManifest(f"discovery cache layer {blob.digest} does not match its digest")
    return data


async def load_cache(
    store: Store, repository: str, owner: Owner, api_url: str
) -> DiscoveryCache | None:
    """The cache kept in ``repository``, or None: absent, unreadable, or for another owner."""
    try:
        manifest = await store.get_manifest(repository, CACHE_TAG)
        layers = {layer.media_type: layer for layer in manifest.layers}
        if STATE_MEDIA_TYPE not in layers or PACKAGES_MEDIA_TYPE not in layers:
            raise InvalidManifest("the discovery cache lacks a layer")
        cache = DiscoveryCache.from_bytes(
            await _read(store, repository, layers[STATE_MEDIA_TYPE]),
            await _read(store, repository, layers[PACKAGES_MEDIA_TYPE]),
        )
    except NotFound:
        log.info("discovery_cache_absent", repository=repository)
        return None
    except BackupError as exc:
        log.warning(
            "discovery_cache_ignored",
            repository=repository,
            error=str(exc),
            hint="this run lists every package's versions and writes a fresh cache",
        )
        return None
    if (cache.owner, cache.api_url) != DiscoveryCache.key(owner, api_url):
        log.info("discovery_cache_ignored", repository=repository, reason="another owner or API")
        return None
    log.info("discovery_cache_loaded", repository=repository, **cache.summary())
    return cache


async def _put_blob(store: Store, repository: str, data: bytes, media_type: str) -> Descriptor:
    descriptor = Descriptor(media_type, digest_of(data), len(data))
    if await store.blob_size(repository, descriptor.digest) is None:

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await store.write_blob(repository, descriptor, chunks(), None)
    return descriptor


async def save_cache(store: Store, repository: str, cache: DiscoveryCache) -> None:
    """Write the cache as an OCI artifact tagged ``discovery-cache``, replacing the last one."""
    config = await _put_blob(store, repository, _EMPTY_CONFIG, _EMPTY_MEDIA_TYPE)
    state = await _put_blob(store, repository, cache.state_bytes(), STATE_MEDIA_TYPE)
    packages = await _put_blob(store, repository, cache.packages_bytes(), PACKAGES_MEDIA_TYPE)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [
            {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
            for d in (state, packages)
        ],
    }
    manifest = parse_manifest(json.dumps(document, indent=1).encode(), OCI_MANIFEST)
    await store.put_manifest(repository, CACHE_TAG, manifest)
    log.info(
        "discovery_cache_written",
        repository=repository,
        bytes=state.size + packages.size,
        **cache.summary(),
    )
