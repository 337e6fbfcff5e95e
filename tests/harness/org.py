"""A generated GitHub organisation: packages in a GHCR-like registry plus the API's view of them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.harness.github_api import StandInPackage
from tests.harness.images import (
    OCI_LAYER,
    Blob,
    Manifest,
    Pusher,
    build_artifact,
    build_image,
    build_index,
)

# Each package's tags; tags in one tuple share one image (one digest).
TAG_SETS: dict[str, list[tuple[str, ...]]] = {
    "app": [
        ("1.0.0",),
        ("1.0.1",),
        ("1.1.0", "v1.1.0"),
        ("1.1.1-rc.1",),
        ("latest", "1.1.2"),
        ("sha-1a2b3c4",),
        ("pr-17",),
    ],
    "team/api": [("2.0.9",), ("2.0.10",), ("2.0.10-alpine",), ("2.0.8-alpine",), ("main",)],
    "team/tools/cli": [("0.1.0",), ("0.2.0",), ("0.2.1",), ("edge",)],
    "worker": [("3.4.5",)],
}


# Cosign-style signatures pushed for (package, tag of the signed image).
SIGNED = [("worker", "3.4.5"), ("app", "1.0.0")]


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


@dataclass
class Org:
    name: str
    packages: dict[str, dict[str, Manifest]] = field(default_factory=dict)  # package -> tag -> top
    api: list[StandInPackage] = field(default_factory=list)

    def repository(self, package: str) -> str:
        return f"{self.name}/{package}"

    def signature(self, package: str, tag: str) -> str:
        return signature_tag(self.packages[package][tag].digest)


def build_org(
    name: str, pusher: Pusher, *, ghost_packages: int = 0, extra_untagged: int = 0, seed: int = 1
) -> Org:
    """Push every package's images; describe them as the GitHub API would (children untagged)."""
    rng = random.Random(seed)
    base = Blob(rng.randbytes(3000), OCI_LAYER)
    org = Org(name)
    for package, tag_sets in TAG_SETS.items():
        repository = org.repository(package)
        versions: list[tuple[str, list[str]]] = []
        org.packages[package] = {}
        for i, tags in enumerate(tag_sets):
            children = [
                (
                    p,
                    build_image(
                        rng,
                        p,
                        [base, Blob(rng.randbytes(1500), OCI_LAYER)],
                        i % 2 == 1,
                        i % 3,
                        f"{package}:{tags[0]}",
                    ),
                )
                for p in ("linux/amd64", "linux/arm64")
            ]
            index = build_index(children, [], i % 2 == 1, i % 3)
            pusher.push_manifest(repository, tags[0], index)
            for extra in tags[1:]:
                pusher.push_manifest(repository, extra, index)
            versions.append((index.digest, list(tags)))
            versions.extend((child.digest, []) for _, child in children)
            org.packages[package].update(dict.fromkeys(tags, index))
        for signed_package, signed_tag in SIGNED:
            if signed_package == package:
                subject = org.packages[package][signed_tag]
                signature = build_artifact(rng, subject)
                tag = signature_tag(subject.digest)
                pusher.push_manifest(repository, tag, signature)
                versions.append((signature.digest, [tag]))
                org.packages[package][tag] = signature
        if package == "app":
            versions.extend((f"sha256:{n:064x}", []) for n in range(extra_untagged))
        org.api.append(StandInPackage(package, versions))
    org.api.extend(StandInPackage(f"legacy-{n}", []) for n in range(ghost_packages))
    return org
