"""Copy specs: magic-mirror format, validated as a whole set before any copy."""

from __future__ import annotations

import json

import pytest

from github_org_backup.errors import SpecError
from github_org_backup.model.oci import Platform
from github_org_backup.model.specs import parse_specs

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_sequence_of_objects_and_arrays() -> None:
    """A stream of JSON values, each an object or an array of objects, is one spec list."""
    text = (
        '{"src": "a.io/x:1", "dst": "b.io/x:1"}\n'
        '[{"src": "a.io/y:1", "dst": "b.io/y:1"},'
        ' {"src": "a.io/z:1", "dst": "b.io/z:1", "transform": {"limitPlatforms": ["linux/arm64"]}}]'
    )
    specs = parse_specs(text)
    assert [str(s.destination) for s in specs] == ["b.io/x:1", "b.io/y:1", "b.io/z:1"]
    assert specs[2].platforms == (Platform("linux", "arm64"),)
    assert parse_specs(json.dumps([s.to_json() for s in specs])) == specs


def test_exact_duplicates_are_merged() -> None:
    """The same spec twice is one copy, not a conflict."""
    spec = '{"src": "a.io/x:1", "dst": "b.io/x:1"}'
    assert len(parse_specs(spec + spec)) == 1


INVALID = [
    (
        '{"src": "a.io/x:1", "dst": "b.io/x:1"} {"src": "b.io/x:1", "dst": "c.io/x:1"}',
        "both a source and a destination",
    ),
    (
        '{"src": "a.io/x:1", "dst": "b.io/x:1"} {"src": "a.io/y:1", "dst": "b.io/x:1"}',
        "two different specs write b.io/x:1",
    ),
    (
        '{"src": "a.io/x:1", "dst": "b.io/x:1"} '
        '{"src": "a.io/x:1", "dst": "b.io/x:1", "transform": {"limitPlatforms": ["linux/amd64"]}}',
        "two different specs",
    ),
    (f'{{"src": "a.io/x:1", "dst": "b.io/x@{D1}"}}', "does not pin identically"),
    (f'{{"src": "a.io/x@{D2}", "dst": "b.io/x@{D1}"}}', "does not pin identically"),
    (
        f'{{"src": "a.io/x@{D1}", "dst": "b.io/x@{D1}", '
        '"transform": {"limitPlatforms": ["linux/amd64"]}}',
        "limitPlatforms would change",
    ),
    ('{"src": "a.io/x:1"}', "'src' and 'dst'"),
    ('{"src": "a.io/x:1", "dst": "b.io/x:1", "extra": 1}', "unknown fields"),
    ('{"src": "a.io/x:1", "dst": "b.io/X:1"}', "invalid repository"),
    ('{"src": "a.io/x:1", "dst": "b.io/x:1", "transform": {"rename": 1}}', "only supported"),
    (
        '{"src": "a.io/x:1", "dst": "b.io/x:1", "transform": {"limitPlatforms": ["linux"]}}',
        "invalid platform",
    ),
    ('{"src": "a.io/x:1", "dst": ', "not valid JSON"),
    ('"just a string"', "not a JSON object"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_spec_sets_are_rejected_whole(text: str, message: str) -> None:
    """Each contradiction is named in a SpecError before anything is copied."""
    with pytest.raises(SpecError, match=message):
        parse_specs(text)


def test_pinned_digest_on_both_sides_is_allowed() -> None:
    """A dst digest is fine when src pins the identical digest."""
    specs = parse_specs(f'{{"src": "a.io/x@{D1}", "dst": "b.io/x@{D1}"}}')
    assert specs[0].destination.digest == D1
