"""The tag policy as a table: tags in, kept tags out, with the reason for each drop."""

from __future__ import annotations

import pytest

from github_org_backup.plan.policy import PackageFilter, TagPolicy, parse_release, select_tags

DEFAULT = TagPolicy()
ALL = TagPolicy(all_patches=True)
PRE = TagPolicy(keep_prereleases=True)

# (case, tags, policy, kept)
CASES = [
    ("single release", ["1.2.3"], DEFAULT, ["1.2.3"]),
    ("latest patch wins", ["1.2.1", "1.2.2", "1.2.3"], DEFAULT, ["1.2.3"]),
    ("numeric not lexical", ["1.2.9", "1.2.10"], DEFAULT, ["1.2.10"]),
    ("one per minor", ["1.2.9", "1.3.0", "1.3.1"], DEFAULT, ["1.2.9", "1.3.1"]),
    ("one per major.minor", ["1.2.3", "2.2.1", "2.2.0"], DEFAULT, ["1.2.3", "2.2.1"]),
    ("v prefix kept with plain", ["v1.2.3", "1.2.3", "1.2.2"], DEFAULT, ["1.2.3", "v1.2.3"]),
    ("v prefix alone", ["v1.2.3", "v1.2.4"], DEFAULT, ["v1.2.4"]),
    ("v prefix mixed group", ["v1.2.3", "1.2.4"], DEFAULT, ["1.2.4"]),
    ("rc dropped", ["1.2.3", "1.2.4-rc1"], DEFAULT, ["1.2.3"]),
    ("beta dropped", ["2.0.0-beta.2"], DEFAULT, []),
    ("alpha dropped", ["1.0.0-alpha"], DEFAULT, []),
    ("dev dropped", ["1.0.0-dev.5"], DEFAULT, []),
    ("pre dropped", ["1.0.0-pre"], DEFAULT, []),
    ("prereleases kept on request", ["1.3.0-rc.1", "1.3.0-rc.2"], PRE, ["1.3.0-rc.2"]),
    ("release beats its rc", ["1.3.0-rc.2", "1.3.0"], PRE, ["1.3.0"]),
    (
        "variant is its own group",
        ["1.2.3", "1.2.4", "1.2.3-alpine"],
        DEFAULT,
        ["1.2.3-alpine", "1.2.4"],
    ),
    (
        "variant trimmed in its group",
        ["1.2.3-alpine", "1.2.4-alpine", "1.2.4-slim"],
        DEFAULT,
        ["1.2.4-alpine", "1.2.4-slim"],
    ),
    ("prerelease of a variant", ["1.2.3-alpine", "1.2.4-rc.1-alpine"], DEFAULT, ["1.2.3-alpine"]),
    ("rebuild revision", ["1.2.3", "1.2.3-1", "1.2.3-2"], DEFAULT, ["1.2.3-2"]),
    ("latest kept", ["latest", "1.2.3"], DEFAULT, ["1.2.3", "latest"]),
    ("branches kept", ["main", "edge", "develop"], DEFAULT, ["develop", "edge", "main"]),
    ("partial versions kept", ["1", "1.2", "1.2.3"], DEFAULT, ["1", "1.2", "1.2.3"]),
    ("leading zero is not semver", ["01.2.3", "1.2.3"], DEFAULT, ["01.2.3", "1.2.3"]),
    ("four parts are not semver", ["1.2.3.4"], DEFAULT, ["1.2.3.4"]),
    ("sha- dropped", ["sha-1a2b3c4", "1.0.0"], DEFAULT, ["1.0.0"]),
    ("long sha- dropped", ["sha-" + "a" * 40], DEFAULT, []),
    ("pr- dropped", ["pr-42", "latest"], DEFAULT, ["latest"]),
    ("sha- lookalike kept", ["sha-xyz"], DEFAULT, ["sha-xyz"]),
    (
        "include beats default exclusion",
        ["pr-42", "pr-7"],
        TagPolicy.from_patterns(include=[r"pr-42"]),
        ["pr-42"],
    ),
    (
        "include beats trimming",
        ["1.2.2", "1.2.3"],
        TagPolicy.from_patterns(include=[r"1\.2\.2"]),
        ["1.2.2", "1.2.3"],
    ),
    (
        "include beats exclude",
        ["nightly"],
        TagPolicy.from_patterns(include=["nightly"], exclude=["night.*"]),
        ["nightly"],
    ),
    ("exclude drops", ["latest", "main"], TagPolicy.from_patterns(exclude=["main"]), ["latest"]),
    ("exclude is full-match", ["main-2"], TagPolicy.from_patterns(exclude=["main"]), ["main-2"]),
    ("all patches", ["1.2.1", "1.2.2", "sha-abcdef1"], ALL, ["1.2.1", "1.2.2"]),
    ("all patches still drops rc", ["1.2.1", "1.2.2-rc1"], ALL, ["1.2.1"]),
    (
        "excluded release does not win",
        ["1.2.3", "1.2.4"],
        TagPolicy.from_patterns(exclude=[r"1\.2\.4"]),
        ["1.2.3"],
    ),
    ("empty", [], DEFAULT, []),
]


@pytest.mark.parametrize(
    ("tags", "policy", "kept"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_policy_table(tags: list[str], policy: TagPolicy, kept: list[str]) -> None:
    """Each row: the tags kept under the policy."""
    assert [d.tag for d in select_tags(tags, policy) if d.keep] == kept


def test_every_tag_gets_a_reason() -> None:
    """Dropped tags say why, naming the release that superseded them."""
    decisions = {
        d.tag: d
        for d in select_tags(["1.2.9", "1.2.10", "sha-abcdef1", "pr-3", "1.3.0-rc1", "latest"])
    }
    assert decisions["1.2.9"].reason == "superseded by 1.2.10"
    assert decisions["sha-abcdef1"].reason == "per-commit build"
    assert decisions["pr-3"].reason == "per-PR build"
    assert decisions["1.3.0-rc1"].reason == "prerelease"
    assert decisions["latest"].keep and decisions["1.2.10"].keep


def test_semver_parsing_is_strict() -> None:
    """Only v?MAJOR.MINOR.PATCH[-suffix] parses; build metadata is not a tag character."""
    assert parse_release("v1.2.3") is not None
    assert parse_release("1.2") is None
    assert parse_release("V1.2.3") is None
    assert parse_release("1.2.3+build") is None


def test_invalid_user_regex_is_reported() -> None:
    """A broken --include-tag regex is a ValueError naming the flag."""
    with pytest.raises(ValueError, match="--include-tag"):
        TagPolicy.from_patterns(include=["("])


PACKAGES = [
    ((), (), "team/app", True),
    (("team/*",), (), "team/app", True),
    (("team/*",), (), "other", False),
    ((), ("*-test",), "app-test", False),
    (("*",), ("legacy/*",), "legacy/x", False),
]


@pytest.mark.parametrize(("include", "exclude", "name", "allowed"), PACKAGES)
def test_package_filter(
    include: tuple[str, ...], exclude: tuple[str, ...], name: str, allowed: bool
) -> None:
    """Package globs: include narrows, exclude removes."""
    assert PackageFilter(include, exclude).allows(name) is allowed


def test_signature_tags_follow_their_subject() -> None:
    """Cosign .sig/.att/.sbom and referrers fallback tags follow the image they name."""
    from github_org_backup.plan.package import decide_tags

    kept_digest, dropped_digest = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    tags = {
        "1.2.10": kept_digest,
        "1.2.9": dropped_digest,
        "sha256-" + "a" * 64 + ".sig": "sha256:" + "1" * 64,
        "sha256-" + "a" * 64 + ".att": "sha256:" + "2" * 64,
        "sha256-" + "a" * 64: "sha256:" + "3" * 64,
        "sha256-" + "b" * 64 + ".sig": "sha256:" + "4" * 64,
        "sha256-" + "b" * 64 + ".sbom": "sha256:" + "5" * 64,
    }
    decisions = {d.tag: d for d in decide_tags(tags, TagPolicy())}
    assert [t for t, d in decisions.items() if d.keep] == [
        "1.2.10",
        "sha256-" + "a" * 64,
        "sha256-" + "a" * 64 + ".att",
        "sha256-" + "a" * 64 + ".sig",
    ]
    assert decisions["sha256-" + "b" * 64 + ".sig"].reason == "belongs to an image not kept"
    # Even a policy that would drop them does not: they go where their image goes.
    excluded = TagPolicy.from_patterns(exclude=[r"sha256-.*"])
    assert "sha256-" + "a" * 64 + ".sig" in {d.tag for d in decide_tags(tags, excluded) if d.keep}
