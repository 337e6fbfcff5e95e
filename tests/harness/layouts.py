"""OCI layouts as other tools write them (skopeo, umoci), and hand-made damage on top of them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.registry import require_binary

REF_NAME = "org.opencontainers.image.ref.name"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def skopeo_to_layout(
    source_url: str, username: str, password: str, image: str, layout: Path, ref: str
) -> None:
    """``skopeo copy --all docker://IMAGE oci:LAYOUT:REF``: skopeo names the ref a plain tag."""
    skopeo = require_binary("skopeo", "skopeo")
    host = source_url.removeprefix("http://")
    subprocess.run(
        [
            skopeo,
            "copy",
            "--all",
            "--quiet",
            "--src-tls-verify=false",
            "--src-creds",
            f"{username}:{password}",
            f"docker://{host}/{image}",
            f"oci:{layout}:{ref}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def umoci_new(layout: Path, tag: str) -> None:
    """``umoci init`` (once) and ``umoci new``: an empty image whose manifest has no mediaType."""
    umoci = require_binary("umoci", "umoci")
    if not (layout / "index.json").exists():
        subprocess.run([umoci, "init", "--layout", str(layout)], check=True, capture_output=True)
    subprocess.run(
        [umoci, "new", "--image", f"{layout}:{tag}"], check=True, capture_output=True, timeout=60
    )


@dataclass(frozen=True)
class Layout:
    """Read and damage a layout directory with plain file operations (not the code under test)."""

    root: Path

    def index(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "index.json").read_bytes()))

    def refs(self) -> dict[str, dict[str, Any]]:
        return {
            e["annotations"][REF_NAME]: e
            for e in self.index()["manifests"]
            if REF_NAME in (e.get("annotations") or {})
        }

    def blob(self, digest: str) -> bytes:
        return (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    def document(self, digest: str) -> dict[str, Any]:
        return dict(json.loads(self.blob(digest)))

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    def add_ref(self, ref: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        """Store ``data`` as a blob and name it ``ref`` in index.json, as a manifest."""
        digest = self.add_blob(data)
        self.add_descriptor(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(data),
                "annotations": {REF_NAME: ref},
            }
        )
        return digest

    def add_descriptor(self, descriptor: dict[str, Any]) -> None:
        index = self.index()
        index["manifests"].append(descriptor)
        (self.root / "index.json").write_text(json.dumps(index))

    def image_manifest(self, ref: str) -> tuple[str, dict[str, Any]]:
        """The (digest, document) of the first platform image below ``ref`` (or ``ref`` itself)."""
        digest = self.refs()[ref]["digest"]
        document = self.document(digest)
        while "manifests" in document:
            digest = document["manifests"][0]["digest"]
            document = self.document(digest)
        return digest, document
