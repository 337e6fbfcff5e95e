"""Generate multi-arch image corpora and push them with a minimal, independent HTTP client."""

from __future__ import annotations

import hashlib
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Manifest:
    raw: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()

    @property
    def digest(self) -> str:
        return sha256(self.raw)

    def walk(self) -> Iterator[Manifest]:
        for child in self.children:
            yield from child.walk()
        yield self


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    manifest: Manifest


@dataclass
class Corpus:
    images: list[Image] = field(default_factory=list)

    def unique_blobs(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for image in self.images:
            for manifest in image.manifest.walk():
                for blob in manifest.blobs:
                    found[blob.digest] = len(blob.data)
        return found

    @property
    def unique_blob_bytes(self) -> int:
        return sum(self.unique_blobs().values())

    @property
    def repositories(self) -> list[str]:
        return sorted({i.repository for i in self.images})


def _dump(document: dict[str, object], style: int) -> bytes:
    """Serialise in one of several formats: a copy that re-serialises changes the digest."""
    if style == 0:
        return json.dumps(document, separators=(",", ":")).encode()
    if style == 1:
        return json.dumps(document, indent=3).encode()
    return (json.dumps(document, indent="\t", sort_keys=True) + "\n\n").encode()


def build_image(
    rng: random.Random,
    platform: str,
    layers: list[Blob],
    docker: bool,
    style: int,
    label: str,
) -> Manifest:
    os_name, arch, *variant = platform.split("/")
    config_doc: dict[str, object] = {
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": {"corpus": label}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer.data) for layer in layers]},
    }
    if variant:
        config_doc["variant"] = variant[0]
    config = Blob(_dump(config_doc, style), DOCKER_CONFIG if docker else OCI_CONFIG)
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    layers = [Blob(layer.data, layer_type) for layer in layers]
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Manifest(_dump(document, style), str(document["mediaType"]), (config, *layers))


def build_attestation(rng: random.Random, subject: Manifest, style: int) -> Manifest:
    statement = Blob(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "subject": [{"digest": subject.digest}],
                "nonce": rng.randbytes(8).hex(),
            }
        ).encode(),
        IN_TOTO,
    )
    config = Blob(
        _dump(
            {
                "architecture": "unknown",
                "os": "unknown",
                "nonce": rng.randbytes(8).hex(),
                "rootfs": {"type": "layers", "diff_ids": [statement.digest]},
            },
            style,
        ),
        OCI_CONFIG,
    )
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [
            statement.descriptor()
            | {"annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}
        ],
    }
    return Manifest(_dump(document, style), OCI_MANIFEST, (config, statement))


def build_index(
    children: list[tuple[str, Manifest]], attestations: list[Manifest], docker: bool, style: int
) -> Manifest:
    entries: list[dict[str, object]] = []
    for platform, child in children:
        os_name, arch, *variant = platform.split("/")
        entry: dict[str, object] = {
            "mediaType": child.media_type,
            "digest": child.digest,
            "size": len(child.raw),
            "platform": {"architecture": arch, "os": os_name},
        }
        if variant:
            entry["platform"]["variant"] = variant[0]  # type: ignore[index]
        entries.append(entry)
    for (_, child), attestation in zip(children, attestations, strict=False):
        entries.append(
            {
                "mediaType": attestation.media_type,
                "digest": attestation.digest,
                "size": len(attestation.raw),
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": child.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    media_type = DOCKER_LIST if docker else OCI_INDEX
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    all_children = tuple(c for _, c in children) + tuple(attestations)
    return Manifest(_dump(document, style), media_type, children=all_children)


def build_artifact(rng: random.Random, subject: Manifest) -> Manifest:
    """An OCI 1.1 artifact (an SBOM) that refers to its subject image."""
    empty = Blob(b"{}", "application/vnd.oci.empty.v1+json")
    sbom = Blob(
        json.dumps({"spdxVersion": "SPDX-2.3", "nonce": rng.randbytes(8).hex()}).encode(),
        "application/spdx+json",
    )
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": empty.descriptor(),
        "layers": [sbom.descriptor()],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.raw),
        },
    }
    return Manifest(_dump(document, 1), OCI_MANIFEST, (empty, sbom))


def generate_corpus(
    *,
    repositories: int = 8,
    tags: int = 10,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    shared_layers: int = 2,
    shared_layer_size: int = 4096,
    unique_layer_size: int = 2048,
    prefix: str = "acme",
    seed: int = 0,
    artifacts: bool = True,
) -> Corpus:
    """Repositories alternate Docker and OCI media types; OCI indexes carry buildx attestations
    and OCI repositories get an SBOM artifact (``sbom``) whose subject is their last index."""
    rng = random.Random(seed)
    base = {
        p: [Blob(rng.randbytes(shared_layer_size), OCI_LAYER) for _ in range(shared_layers)]
        for p in platforms
    }
    corpus = Corpus()
    for r in range(repositories):
        docker = r % 2 == 1
        repository = f"{prefix}/team-{r % 3}/app-{r}" if r % 4 else f"{prefix}/app-{r}"
        for t in range(tags):
            style = (r + t) % 3
            children = []
            for platform in platforms:
                unique = Blob(rng.randbytes(unique_layer_size), OCI_LAYER)
                children.append(
                    (
                        platform,
                        build_image(
                            rng,
                            platform,
                            [*base[platform], unique],
                            docker,
                            style,
                            f"{repository}:{t}",
                        ),
                    )
                )
            attestations = [] if docker else [build_attestation(rng, c, style) for _, c in children]
            index = build_index(children, attestations, docker, style)
            corpus.images.append(Image(repository, f"1.{t}.0", index))
        if not docker and artifacts:
            subject = corpus.images[-1].manifest
            corpus.images.append(Image(repository, "sbom", build_artifact(rng, subject)))
    return corpus


Authorizer = Callable[[str], str | None]


class Pusher:
    """Pushes with urllib: an independent client, not the code under test."""

    def __init__(self, base_url: str, authorize: Authorizer) -> None:
        self.base_url = base_url
        self.authorize = authorize

    def _call(
        self,
        method: str,
        url: str,
        repository: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str]]:
        headers = dict(headers or {})
        if (auth := self.authorize(repository)) is not None:
            headers["Authorization"] = auth
        replayable = data is None or isinstance(data, bytes)
        for attempt in range(3 if replayable else 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                    return response.status, dict(response.headers)
            except urllib.error.HTTPError as error:
                if method == "HEAD" and error.code == 404:
                    return 404, {}
                # The registry answers an occasional 500 under parallel pushes: try again.
                if error.code >= 500 and attempt < 2 and replayable and method in ("HEAD", "GET"):
                    time.sleep(0.2)
                    continue
                raise RuntimeError(f"{method} {url}: {error.code} {error.read()[:300]!r}") from None
        raise AssertionError("unreachable")

    def push_blob(self, repository: str, blob: Blob) -> None:
        status, _ = self._call(
            "HEAD", f"{self.base_url}/v2/{repository}/blobs/{blob.digest}", repository
        )
        if status == 200:
            return
        _, headers = self._call(
            "POST", f"{self.base_url}/v2/{repository}/blobs/uploads/", repository
        )
        location = headers["Location"]
        location = location if location.startswith("http") else self.base_url + location
        sep = "&" if "?" in location else "?"
        self._call(
            "PUT",
            f"{location}{sep}digest={blob.digest}",
            repository,
            blob.data,
            {"Content-Type": "application/octet-stream"},
        )

    def push_file(self, repository: str, path: str, digest: str, size: int) -> None:
        """Push a large blob from a file without holding it in memory."""
        _, headers = self._call(
            "POST", f"{self.base_url}/v2/{repository}/blobs/uploads/", repository
        )
        location = headers["Location"]
        location = location if location.startswith("http") else self.base_url + location
        sep = "&" if "?" in location else "?"
        with open(path, "rb") as handle:
            self._call(
                "PUT",
                f"{location}{sep}digest={digest}",
                repository,
                handle,  # type: ignore[arg-type]
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        for blob in manifest.blobs:
            self.push_blob(repository, blob)
        for child in manifest.children:
            self.push_manifest(repository, child.digest, child)
        self._call(
            "PUT",
            f"{self.base_url}/v2/{repository}/manifests/{reference}",
            repository,
            manifest.raw,
            {"Content-Type": manifest.media_type},
        )

    def push(self, corpus: Corpus) -> None:
        for image in corpus.images:
            self.push_manifest(image.repository, image.tag, image.manifest)
