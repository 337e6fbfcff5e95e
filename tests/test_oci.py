"""Manifest parsing keeps bytes exact and refuses ambiguous or oversized documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from github_org_backup.errors import (
    DigestMismatch,
    InvalidManifest,
    NoMatchingPlatform,
    SizeMismatch,
)
from github_org_backup.model.oci import (
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    digest_of,
    is_schema1,
    parse_manifest,
)
from tests.harness.schema1 import SIGNED, UNSIGNED, signed_schema1

CONFIG = {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:" + "1" * 64,
    "size": 10,
}
LAYER = {
    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
    "digest": "sha256:" + "2" * 64,
    "size": 20,
}


def image(**extra: object) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
        | extra,
        indent=3,
    ).encode()


def index(*platforms: str, attest_first: bool = False) -> bytes:
    entries = []
    for i, p in enumerate(platforms):
        os_name, arch, *variant = p.split("/")
        entry: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": f"sha256:{i:064x}",
            "size": 100,
            "platform": {"os": os_name, "architecture": arch},
        }
        if variant:
            entry["platform"]["variant"] = variant[0]
        entries.append(entry)
    if attest_first:
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "f" * 64,
                "size": 50,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": entries[0]["digest"],
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


def test_image_manifest_keeps_exact_bytes_and_lists_blobs() -> None:
    """The digest is of the bytes as given, and blobs are config then layers."""
    raw = image()
    manifest = parse_manifest(raw, OCI_MANIFEST)
    assert manifest.raw == raw
    assert manifest.digest == digest_of(raw)
    assert [b.digest for b in manifest.blobs()] == [CONFIG["digest"], LAYER["digest"]]
    assert not manifest.is_index


def test_artifact_with_subject_and_custom_types() -> None:
    """OCI artifacts with unusual config/layer types and a subject parse like any image."""
    raw = image(
        artifactType="application/spdx+json",
        subject={"mediaType": OCI_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 5},
    )
    manifest = parse_manifest(raw, OCI_MANIFEST)
    assert manifest.subject is not None and manifest.subject.size == 5


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ],
)
def test_foreign_layers_are_not_blobs_to_copy(media_type: str) -> None:
    """Foreign layers, compressed or not, point elsewhere through urls, never fetched."""
    foreign = {
        "mediaType": media_type,
        "digest": "sha256:" + "4" * 64,
        "size": 1,
        "urls": ["https://example.com/l"],
    }
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": CONFIG,
            "layers": [foreign, LAYER],
        }
    ).encode()
    manifest = parse_manifest(raw, None)
    assert [b.digest for b in manifest.blobs()] == [CONFIG["digest"], LAYER["digest"]]


REJECTED = [
    (
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
                "layers": [LAYER],
                "config": CONFIG,
            }
        ).encode(),
        OCI_INDEX,
        "both",
    ),
    (image(), OCI_INDEX, "declares"),
    (image(), "application/json", "declares"),
    (b"[]", OCI_MANIFEST, "not a JSON object"),
    (b"{not json", OCI_MANIFEST, "not valid JSON"),
    (json.dumps({"schemaVersion": 1, "name": "x"}).encode(), None, "schema 1"),
    (
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(),
        OCI_MANIFEST,
        "fields",
    ),
    (image(layers=[{"digest": "sha256:short", "size": 1}]), OCI_MANIFEST, "malformed digest"),
    (image(layers=[{"digest": "md5:" + "a" * 32, "size": 1}]), OCI_MANIFEST, "unsupported"),
    (image(layers=[{"digest": LAYER["digest"], "size": "20"}]), OCI_MANIFEST, "integer size"),
]


@pytest.mark.parametrize(("raw", "content_type", "message"), REJECTED)
def test_ambiguous_or_malformed_manifests_are_rejected(
    raw: bytes, content_type: str | None, message: str
) -> None:
    """CVE-2021-41190-style ambiguity, type confusion and bad descriptors are refused."""
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest(raw, content_type)


def test_oversized_manifest_is_rejected() -> None:
    """Manifests over 4 MiB are refused before parsing."""
    raw = image(annotations={"pad": "x" * MAX_MANIFEST_BYTES})
    with pytest.raises(InvalidManifest, match="limit"):
        parse_manifest(raw, OCI_MANIFEST)


def test_body_must_match_its_descriptor() -> None:
    """A body longer, shorter or different from its descriptor is rejected, size first."""
    raw = image()
    good = Descriptor(OCI_MANIFEST, digest_of(raw), len(raw))
    assert parse_manifest(raw, OCI_MANIFEST, good).digest == good.digest
    with pytest.raises(SizeMismatch):
        parse_manifest(raw + b" ", OCI_MANIFEST, good)
    with pytest.raises(SizeMismatch):
        parse_manifest(raw[:-1], OCI_MANIFEST, good)
    flipped = raw.replace(b'"schemaVersion": 2', b'"schemaVersion": 3')
    with pytest.raises(DigestMismatch):
        parse_manifest(flipped, OCI_MANIFEST, good)


def test_limit_platforms_keeps_chosen_children_and_their_attestations() -> None:
    """A transform keeps selected platforms, plus attestations that describe them."""
    manifest = parse_manifest(
        index("linux/amd64", "linux/arm64/v8", "linux/s390x", attest_first=True), OCI_INDEX
    )
    limited = manifest.limit_platforms([Platform.parse("linux/amd64")])
    digests = [c.digest for c in limited.children()]
    assert digests == [f"sha256:{0:064x}", "sha256:" + "f" * 64]
    assert limited.digest != manifest.digest
    arm = manifest.limit_platforms([Platform.parse("linux/arm64")])
    assert [str(c.platform) for c in arm.children()] == ["linux/arm64/v8"]


def test_limit_platforms_selecting_everything_keeps_the_original_bytes() -> None:
    """When nothing is dropped the index is not re-serialised, so its digest is kept."""
    manifest = parse_manifest(index("linux/amd64", "linux/arm64"), OCI_INDEX)
    kept = manifest.limit_platforms([Platform.parse("linux/amd64"), Platform.parse("linux/arm64")])
    assert kept.raw == manifest.raw


def test_limit_platforms_without_a_match_is_an_error() -> None:
    """Selecting a platform the index lacks names what it has."""
    manifest = parse_manifest(index("linux/amd64"), OCI_INDEX)
    with pytest.raises(NoMatchingPlatform, match="linux/amd64"):
        manifest.limit_platforms([Platform.parse("windows/amd64")])


def test_docker_manifest_list_is_an_index() -> None:
    """Docker manifest lists and OCI indexes are both indexes."""
    raw = index("linux/amd64").replace(OCI_INDEX.encode(), DOCKER_MANIFEST_LIST.encode())
    assert parse_manifest(raw, DOCKER_MANIFEST_LIST).is_index


@pytest.mark.parametrize("content_type", [SIGNED, UNSIGNED, "application/json", None])
def test_signed_schema1_is_refused_as_schema1_not_as_a_hash_mismatch(
    content_type: str | None,
) -> None:
    """A signed schema 1 manifest never hashes to its registry digest: the error says schema 1."""
    raw, registry_digest = signed_schema1("a/b", "old")
    assert digest_of(raw) != registry_digest
    expected = Descriptor(SIGNED, registry_digest, len(raw))
    with pytest.raises(InvalidManifest, match="schema 1 is not supported"):
        parse_manifest(raw, content_type, expected)
    with pytest.raises(InvalidManifest, match="schema 1 is not supported"):
        parse_manifest(raw, content_type)
    assert is_schema1(raw, content_type)
    assert not is_schema1(image(), OCI_MANIFEST)
