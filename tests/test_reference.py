"""References, repository names, tags and digests: parsing and strict grammars."""

from __future__ import annotations

import pytest

from github_org_backup.errors import InvalidReference
from github_org_backup.model.reference import (
    Reference,
    Registry,
    Repository,
    parse_reference,
    parse_repository,
)

D = "sha256:" + "a" * 64

PARSED = [
    ("ghcr.io/acme/app:1.2.3", "ghcr.io", False, "acme/app", "1.2.3", None),
    ("ghcr.io/acme/team/app", "ghcr.io", False, "acme/team/app", "latest", None),
    (f"ghcr.io/acme/app@{D}", "ghcr.io", False, "acme/app", None, D),
    (f"ghcr.io/acme/app:v1@{D}", "ghcr.io", False, "acme/app", "v1", D),
    ("http://127.0.0.1:5000/a/b:t", "127.0.0.1:5000", True, "a/b", "t", None),
    ("https://registry.example.com/x/y:1", "registry.example.com", False, "x/y", "1", None),
    ("localhost:5000/a__b/c-d.e:tag_1", "localhost:5000", False, "a__b/c-d.e", "tag_1", None),
    ("[::1]:5000/a:b", "[::1]:5000", False, "a", "b", None),
]


@pytest.mark.parametrize(("text", "host", "plain", "name", "tag", "digest"), PARSED)
def test_parse_reference(
    text: str, host: str, plain: bool, name: str, tag: str | None, digest: str | None
) -> None:
    """Each part of a reference lands in its field, and the string form round-trips."""
    ref = parse_reference(text)
    assert ref.repository.registry == Registry(host, "http" if plain else "https")
    assert (ref.repository.name, ref.tag, ref.digest) == (name, tag, digest)
    assert parse_reference(str(ref)) == ref


INVALID = [
    "app:1.0",  # no host
    "ghcr.io/Acme/app:1",  # uppercase
    "ghcr.io/acme/app:-bad",
    "ghcr.io/acme/app:" + "x" * 129,
    "ghcr.io/acme//app:1",
    "ghcr.io/acme/app@sha256:abc",
    "ghcr.io/acme/app@md5:" + "a" * 32,
    "ghcr.io/acme/app@sha256:" + "A" * 64,
    "ghcr.io/acme/app:1\n",
    "ghcr.io/acme/ápp:1",
    "ftp://ghcr.io/acme/app:1",
    "ghcr.io/acme/../app:1",
    "ghcr.io/" + "a" * 250 + ":1",
    "localhost:99999/acme/app:1",  # port out of range
    "localhost:0/acme/app:1",
    "http://127.0.0.1:65536/acme/app:1",
    "[::1]:0/acme/app:1",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references_are_refused(text: str) -> None:
    """Off-grammar input raises InvalidReference, which is also a ValueError."""
    with pytest.raises(InvalidReference):
        parse_reference(text)
    assert issubclass(InvalidReference, ValueError)


def test_trailing_newline_is_not_accepted_by_fullmatch() -> None:
    """`$` would accept a trailing newline; the grammar uses fullmatch."""
    with pytest.raises(InvalidReference):
        Reference(Repository(Registry("ghcr.io"), "acme/app"), tag="v1\n")


def test_repository_prefix_and_child() -> None:
    """A destination prefix keeps the full source path below it."""
    prefix = parse_repository("registry.example.com/ghcr-backup")
    assert str(prefix.child("acme/team/app")) == "registry.example.com/ghcr-backup/acme/team/app"
    with pytest.raises(InvalidReference):
        parse_repository("registry.example.com")


def test_a_layout_is_a_scheme_with_a_path() -> None:
    """oci:DIR parses to the oci scheme with an absolute path and no host; it prints back."""
    prefix = parse_repository("oci:relative/dir:acme")
    registry = prefix.registry
    assert (registry.scheme, registry.host, registry.layout, registry.plain_http) == (
        "oci",
        "",
        True,
        False,
    )
    assert registry.path.startswith("/") and registry.path.endswith("/relative/dir")
    assert str(prefix) == f"oci:{registry.path}:acme"
    assert parse_repository(str(prefix)) == prefix
    with pytest.raises(AssertionError):
        registry.base_url  # noqa: B018 - a layout has no URL
