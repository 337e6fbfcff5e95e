"""A single-layer image whose layer is a large file, generated and pushed without buffering it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.harness.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Blob, Manifest, Pusher


def write_random_file(path: Path, size: int, chunk: int = 8 * 2**20) -> str:
    """Write ``size`` random bytes; return their sha256 digest."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            data = os.urandom(min(chunk, remaining))
            digest.update(data)
            handle.write(data)
            remaining -= len(data)
    return "sha256:" + digest.hexdigest()


def push_big_image(pusher: Pusher, repository: str, tag: str, path: Path, size: int) -> Manifest:
    digest = write_random_file(path, size)
    pusher.push_file(repository, str(path), digest, size)
    config = Blob(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [digest]},
            }
        ).encode(),
        OCI_CONFIG,
    )
    pusher.push_blob(repository, config)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": size}],
        }
    ).encode()
    manifest = Manifest(raw, OCI_MANIFEST)
    pusher._call(
        "PUT",
        f"{pusher.base_url}/v2/{repository}/manifests/{tag}",
        repository,
        raw,
        {"Content-Type": OCI_MANIFEST},
    )
    path.unlink()
    return manifest
