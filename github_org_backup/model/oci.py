"""The image model: media types, descriptors, and manifests that keep their exact bytes.

A Manifest is parsed for what the copy needs (its blobs and children) but is always written
back as the bytes it was read as, so digests survive the copy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from github_org_backup.base import jsonio
from github_org_backup.errors import (
    DigestMismatch,
    InvalidManifest,
    JSONTooLarge,
    NoMatchingPlatform,
    SizeMismatch,
)
from github_org_backup.model.reference import validate_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MEDIA_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
MANIFEST_MEDIA_TYPES = INDEX_MEDIA_TYPES | IMAGE_MEDIA_TYPES
# Registries refuse a tag lookup whose manifest type is missing from Accept: always send all.
MANIFEST_ACCEPT = ", ".join(sorted(MANIFEST_MEDIA_TYPES))

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# 4 MiB of JSON values would parse to hundreds of MiB per manifest, and children are read many
# at once. An index of 4,096 platform children holds about 45,000, so this refuses only
# manifests no tool writes.
MAX_MANIFEST_VALUES = 50_000

# Docker schema 1, unsigned and signed. A registry's digest of a signed one is over the payload
# without its signatures, so its bytes never hash to it: recognise it before any hashing.
SCHEMA1_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
SCHEMA1_UNSUPPORTED = (
    "it is a Docker schema 1 manifest, and schema 1 is not supported: "
    "re-push the image with a current client (it writes schema 2)"
)

# Layers that live outside the registry (Windows base layers). Their `urls` are never fetched.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
_ATTESTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
_SCHEMA_VERSION_1 = re.compile(rb'"schemaVersion"\s*:\s*1\s*[,}]')


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def is_schema1(raw: bytes, content_type: str | None) -> bool:
    """True for a Docker schema 1 manifest, by its Content-Type or its ``schemaVersion``."""
    if (content_type or "").split(";")[0].strip() in SCHEMA1_MEDIA_TYPES:
        return True
    if not _SCHEMA_VERSION_1.search(raw[:4096]):  # cheap: most manifests are never parsed here
        return False
    try:
        document = jsonio.loads(raw)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("schemaVersion") == 1


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, other: Platform) -> bool:
        """True if ``other`` is this platform; a wanted platform without variant takes any."""
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (self.variant is None or self.variant == other.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidManifest("a descriptor is not a JSON object")
        digest, size = obj.get("digest"), obj.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
            raise InvalidManifest("a descriptor lacks a string digest or an integer size")
        if size < 0:
            raise InvalidManifest(f"descriptor {digest[:80]} has a negative size")
        try:
            validate_digest(digest)
        except ValueError as exc:
            raise InvalidManifest(str(exc)) from None
        platform = None
        if isinstance(p := obj.get("platform"), dict):
            platform = Platform(
                str(p.get("os", "")), str(p.get("architecture", "")), p.get("variant") or None
            )
        annotations = obj.get("annotations") or {}
        urls = obj.get("urls") or ()
        return cls(
            media_type=str(obj.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=platform,
            annotations=dict(annotations) if isinstance(annotations, dict) else {},
            urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
        )

    @property
    def is_foreign(self) -> bool:
        return self.media_type in _FOREIGN_LAYER_TYPES


@dataclass(frozen=True)
class Manifest:
    """A manifest or index with its exact bytes and the parts the copy needs."""

    raw: bytes
    media_type: str
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def blobs(self) -> tuple[Descriptor, ...]:
        """Config then layers, without foreign layers (which stay where their urls point)."""
        found = ([self.config] if self.config else []) + list(self.layers)
        return tuple(d for d in found if not d.is_foreign)

    def children(self) -> tuple[Descriptor, ...]:
        return self.manifests

    def limit_platforms(self, wanted: Iterable[Platform]) -> Manifest:
        """A new index keeping only the wanted platforms and the attestations that describe them."""
        wanted = tuple(wanted)
        if not self.is_index:
            return self
        kept = [
            d for d in self.manifests if d.platform and any(w.matches(d.platform) for w in wanted)
        ]
        if not kept:
            available = ", ".join(sorted({str(d.platform) for d in self.manifests if d.platform}))
            raise NoMatchingPlatform(
                f"none of {', '.join(map(str, wanted))} is in this index (it has: {available})"
            )
        kept_digests = {d.digest for d in kept}
        kept_digests |= {
            d.digest
            for d in self.manifests
            if d.annotations.get(_ATTESTATION_REFERENCE_DIGEST) in kept_digests
        }
        if kept_digests == {d.digest for d in self.manifests}:
            return self
        document = jsonio.loads(self.raw)
        document["manifests"] = [m for m in document["manifests"] if m["digest"] in kept_digests]
        raw = json.dumps(document, indent=2).encode()
        return parse_manifest(raw, self.media_type)


def _require_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("the manifest's mediaType is not a string")
    if declared and content_type and declared != content_type:
        raise InvalidManifest(
            f"the manifest declares mediaType {declared!r} but was served as {content_type!r}"
        )
    media_type = declared or content_type
    if media_type not in MANIFEST_MEDIA_TYPES:
        if document.get("schemaVersion") == 1:
            raise InvalidManifest(f"manifest not copied: {SCHEMA1_UNSUPPORTED}")
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")
    return media_type


def verify_content(data: bytes, expected: Descriptor) -> None:
    """Check size first, then the digest; raise SizeMismatch or DigestMismatch."""
    if len(data) != expected.size:
        raise SizeMismatch(
            f"{expected.digest} is {len(data)} bytes, but its descriptor says {expected.size}"
        )
    algorithm = expected.digest.partition(":")[0]
    actual = digest_of(data, algorithm)
    if actual != expected.digest:
        raise DigestMismatch(f"content expected as {expected.digest} hashes to {actual}")


def parse_manifest(
    raw: bytes, content_type: str | None, expected: Descriptor | None = None
) -> Manifest:
    """Parse and check a manifest's bytes; ``expected`` pins its size and digest."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InvalidManifest(f"manifest is {len(raw)} bytes, over the {MAX_MANIFEST_BYTES} limit")
    if expected is not None:
        try:
            verify_content(raw, expected)
        except (SizeMismatch, DigestMismatch):
            if is_schema1(raw, content_type):  # its digest is over other bytes: say why
                raise InvalidManifest(f"manifest not copied: {SCHEMA1_UNSUPPORTED}") from None
            raise
    content_type = (content_type or "").split(";")[0].strip() or None
    try:
        document = jsonio.loads(raw, MAX_MANIFEST_VALUES)
    except JSONTooLarge as exc:
        if exc.values:
            raise InvalidManifest(
                f"manifest has {exc.values} JSON values, over the {MAX_MANIFEST_VALUES} a "
                "manifest may hold (parsed, it would take hundreds of MiB): not copied"
            ) from None
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidManifest("manifest is not a JSON object")
    media_type = _require_type(document, content_type)
    has_children = "manifests" in document
    has_blobs = "layers" in document or "config" in document
    if has_children and has_blobs:
        raise InvalidManifest("manifest has both 'manifests' and 'layers'/'config'; refusing it")
    if (media_type in INDEX_MEDIA_TYPES) != has_children or (
        media_type in IMAGE_MEDIA_TYPES and "config" not in document
    ):
        raise InvalidManifest(f"manifest body does not have the fields of a {media_type}")

    def descriptors(key: str) -> tuple[Descriptor, ...]:
        items = document.get(key) or []
        if not isinstance(items, list):
            raise InvalidManifest(f"manifest field {key!r} is not a list")
        return tuple(Descriptor.from_json(item) for item in items)

    config = Descriptor.from_json(document["config"]) if "config" in document else None
    subject = Descriptor.from_json(document["subject"]) if "subject" in document else None
    algorithm = expected.digest.partition(":")[0] if expected else "sha256"
    return Manifest(
        raw=raw,
        media_type=media_type,
        digest=expected.digest if expected else digest_of(raw, algorithm),
        config=config,
        layers=descriptors("layers"),
        manifests=descriptors("manifests"),
        subject=subject,
    )
