"""Each repository's history index: an OCI image index tagged ``github-org-backup.history``
whose entries are every digest a kept snapshot names in that repository.

A digest that lost its own tag stays reachable from a tag of its own repository, which is
what every collector and every "expire untagged images" lifecycle rule keeps; users see one
extra tag per repository, not one per overwritten image. Each entry records the tags it had
and the snapshot series (shards) that name it, so a series drops only its own entries.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from github_org_backup.history.model import Snapshot, TaggedImage
from github_org_backup.model.oci import OCI_INDEX, Descriptor, Manifest, parse_manifest

_TAG_ANNOTATION = "io.github-org-backup.tags"
_SERIES_ANNOTATION = "io.github-org-backup.series"
_LEGACY = "legacy"  # the owner of entries written before they recorded their series


def history_index(images: Iterable[TaggedImage], series: str = "") -> Manifest:
    """An OCI index naming each digest once, annotated with the tags it had and the snapshot
    series that name it.

    It depends only on the (tag, digest) pairs, not on snapshot ids, so it is rewritten only
    when a repository's history really changes.
    """
    entries: dict[str, _Entry] = {}
    for image in images:
        entry = entries.setdefault(image.digest, _Entry(image.media_type, image.size))
        entry.tags.add(image.tag)
        entry.series.add(_series_label(series))
    return _index(entries)


@dataclass
class _Entry:
    media_type: str
    size: int
    tags: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)


def _series_label(series: str) -> str:
    return series or "unsharded"


def _index(entries: Mapping[str, _Entry]) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": entry.media_type,
                "digest": digest,
                "size": entry.size,
                "annotations": {
                    _TAG_ANNOTATION: ",".join(sorted(entry.tags)),
                    _SERIES_ANNOTATION: ",".join(sorted(entry.series)),
                },
            }
            for digest, entry in sorted(entries.items())
        ],
    }
    return parse_manifest(json.dumps(document, indent=1).encode(), OCI_INDEX)


def _owners(entry: Descriptor, series: str, named_before: Collection[str]) -> set[str]:
    """The series a stored history entry belongs to.

    Entries written before histories recorded their series have no annotation: one counts
    as ``series``' only when ``series`` named its digest before this run, and otherwise as
    another series' ("legacy"), which no series ever drops: a backup that starts sharding
    after an upgrade must not lose what its old snapshots name.
    """
    annotation = entry.annotations.get(_SERIES_ANNOTATION)
    if annotation is None:
        return {_series_label(series) if entry.digest in named_before else _LEGACY}
    return set(filter(None, annotation.split(",")))


def named_by_another_series(entry: Descriptor, series: str) -> bool:
    """Whether a stored history entry is kept by a series other than ``series``."""
    return bool(_owners(entry, series, ()) - {_series_label(series)})


def merged_history(
    ours: Manifest | None, stored: Manifest, series: str, named_before: Collection[str] = ()
) -> Manifest | None:
    """``ours`` (what this series' kept snapshots name) plus the stored history's entries
    that another series names: a series drops only its own entries. ``named_before`` holds
    the digests this series' history named before this run."""
    label = _series_label(series)
    entries: dict[str, _Entry] = {}
    for descriptor in stored.children():
        annotations = descriptor.annotations
        owners = _owners(descriptor, series, named_before)
        owners.discard(label)
        if owners:
            entry = _Entry(descriptor.media_type, descriptor.size, series=owners)
            entry.tags.update(filter(None, annotations.get(_TAG_ANNOTATION, "").split(",")))
            entries[descriptor.digest] = entry
    for child in ours.children() if ours is not None else ():
        entry = entries.setdefault(child.digest, _Entry(child.media_type, child.size))
        entry.tags.update(filter(None, child.annotations.get(_TAG_ANNOTATION, "").split(",")))
        entry.series.add(label)
    return _index(entries) if entries else None


def is_history(manifest: Manifest) -> bool:
    """Whether a manifest under the history tag is one the tool wrote: an OCI index whose
    every entry records its tags (every version did). What a source pushed under that name
    before the name was reserved is an image, or an index without those annotations."""
    children = manifest.children()
    return (
        manifest.media_type == OCI_INDEX
        and not manifest.layers
        and bool(children)
        and all(_TAG_ANNOTATION in child.annotations for child in children)
    )


def _histories(kept: Iterable[Snapshot], series: str) -> dict[str, Manifest]:
    """Each repository's history index over the kept snapshots of one series."""
    images: dict[str, list[TaggedImage]] = {}
    for snapshot in kept:
        for image in snapshot.images:
            images.setdefault(image.repository, []).append(image)
    return {repository: history_index(found, series) for repository, found in images.items()}


def histories(kept: Iterable[Snapshot], series: str) -> dict[str, Manifest]:
    """Each repository's history index over the kept snapshots of one series."""
    return _histories(kept, series)


def surviving(present: Iterable[Descriptor]) -> Manifest:
    """A history of just the entries ``present``, each with the tags and series it had."""
    return _index(
        {
            d.digest: _Entry(
                d.media_type,
                d.size,
                set(filter(None, d.annotations.get(_TAG_ANNOTATION, "").split(","))),
                set(filter(None, d.annotations.get(_SERIES_ANNOTATION, "").split(","))),
            )
            for d in present
        }
    )
