"""Copy specs, the seam between discovery and the engine (compatible with magic-mirror).

A spec file is a sequence of JSON values, each an object or an array of objects:
``{"src": REF, "dst": REF, "transform": {"limitPlatforms": ["linux/amd64"]}}``.
The whole set is validated before anything is copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from github_org_backup.errors import InvalidReference, SpecError
from github_org_backup.model.oci import Platform
from github_org_backup.model.reference import Reference, parse_reference


@dataclass(frozen=True)
class CopySpec:
    source: Reference
    destination: Reference
    platforms: tuple[Platform, ...] = ()

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"src": str(self.source), "dst": str(self.destination)}
        if self.platforms:
            spec["transform"] = {"limitPlatforms": [str(p) for p in self.platforms]}
        return spec


def _json_values(text: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"specs are not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        except RecursionError:
            raise SpecError("specs are nested too deeply to be copy specs") from None
        yield value


def _spec_from_json(obj: Any, number: int) -> CopySpec:
    where = f"spec #{number}"
    if not isinstance(obj, dict):
        raise SpecError(f"{where} is not a JSON object")
    unknown = set(obj) - {"src", "dst", "transform"}
    if unknown:
        raise SpecError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    if not isinstance(obj.get("src"), str) or not isinstance(obj.get("dst"), str):
        raise SpecError(f"{where} needs string fields 'src' and 'dst'")
    try:
        source = parse_reference(obj["src"])
        destination = parse_reference(obj["dst"])
    except InvalidReference as exc:
        raise SpecError(f"{where}: {exc}") from None
    platforms: tuple[Platform, ...] = ()
    transform = obj.get("transform")
    if transform is not None:
        if not isinstance(transform, dict) or set(transform) - {"limitPlatforms"}:
            raise SpecError(f"{where}: the only supported transform is limitPlatforms")
        limit = transform.get("limitPlatforms", [])
        if not isinstance(limit, list) or not all(isinstance(p, str) for p in limit):
            raise SpecError(f"{where}: limitPlatforms must be a list of os/arch[/variant] strings")
        try:
            platforms = tuple(sorted({Platform.parse(p) for p in limit}))
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
    return CopySpec(source, destination, platforms)


def parse_specs(text: str) -> list[CopySpec]:
    """Parse a spec document and validate it as a set."""
    specs: list[CopySpec] = []
    for value in _json_values(text):
        for obj in value if isinstance(value, list) else [value]:
            specs.append(_spec_from_json(obj, len(specs) + 1))
    return validate_specs(specs)


def _image_keys(ref: Reference) -> set[tuple[object, ...]]:
    """Names under which a reference reaches an image: by tag and by digest."""
    keys: set[tuple[object, ...]] = set()
    if ref.tag is not None:
        keys.add((ref.repository, "tag", ref.tag))
    if ref.digest is not None:
        keys.add((ref.repository, "digest", ref.digest))
    return keys


def validate_specs(specs: Iterable[CopySpec]) -> list[CopySpec]:
    """Reject contradictions; drop exact duplicates. Raises SpecError naming the offending refs."""
    unique = list(dict.fromkeys(specs))
    by_destination: dict[Reference, CopySpec] = {}
    for spec in unique:
        src, dst = spec.source, spec.destination
        if dst.digest is not None and src.digest != dst.digest:
            raise SpecError(
                f"destination {dst} pins a digest that source {src} does not pin identically: "
                "pin the same digest on src, or drop it from dst"
            )
        if dst.digest is not None and spec.platforms:
            raise SpecError(
                f"destination {dst} pins a digest but limitPlatforms would change that digest: "
                "use a tag on dst"
            )
        key = Reference(dst.repository, dst.tag, dst.digest)
        if (other := by_destination.get(key)) is not None:
            raise SpecError(f"two different specs write {dst}: from {other.source} and from {src}")
        by_destination[key] = spec
    sources = set().union(*(_image_keys(s.source) for s in unique))
    for spec in unique:
        if _image_keys(spec.destination) & sources:
            raise SpecError(
                f"{spec.destination} is both a source and a destination: "
                "a run must not read what it writes"
            )
    return unique
