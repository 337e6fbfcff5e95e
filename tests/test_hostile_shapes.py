"""Hostile shapes that used to end in exit 70 or an unbounded read: JSON nested past the
parser's depth, URLs that are not URLs, tokens that are not header values, branch names that
are not branches, and layout files that are devices or FIFOs."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest
import yarl
from aioresponses import aioresponses

from github_org_backup.base import jsonio
from github_org_backup.errors import (
    AuthError,
    ContentError,
    InvalidManifest,
    SpecError,
    UnsafeRedirect,
)
from github_org_backup.model.oci import OCI_MANIFEST, parse_manifest
from github_org_backup.model.reference import Registry
from github_org_backup.model.specs import parse_specs
from github_org_backup.repos.refs import branch_name
from github_org_backup.stores.layout import LayoutStore
from github_org_backup.stores.registry.auth import Authenticator
from github_org_backup.stores.registry.credentials import Credentials
from github_org_backup.stores.registry.transport import _joined

DEEP = "[" * 100_000 + "]" * 100_000


def test_json_nested_past_the_parsers_depth_is_malformed_input() -> None:
    """The decoder's RecursionError comes out as the ValueError every reader expects."""
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonio.loads(DEEP)
    with pytest.raises(InvalidManifest):
        parse_manifest(DEEP.encode(), OCI_MANIFEST)
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_specs(DEEP)


@pytest.mark.parametrize("reference", ["http://[::1", "https://[x/v2/", "http://[::1>"])
def test_a_location_or_link_that_is_not_a_url_is_refused(reference: str) -> None:
    """An unclosed IPv6 bracket in a redirect, Location or Link: refused, not a crash."""
    base = yarl.URL("http://127.0.0.1:5000/v2/app/tags/list")
    with pytest.raises(UnsafeRedirect, match="not a valid URL"):
        _joined(base, reference, "next page")


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc def", "t\x00ken", "tök"])
async def test_a_token_that_is_not_a_header_value_is_refused(token: str) -> None:
    """A token service cannot smuggle a header or a control character into our requests."""
    with aioresponses() as mocked:
        mocked.get("https://r.example.com/token?service=r", payload={"token": token})
        async with aiohttp.ClientSession() as session:
            auth = Authenticator(Registry("r.example.com"), Credentials("u", "p"), session)
            challenge = 'Bearer realm="https://r.example.com/token",service="r"'
            with pytest.raises(AuthError, match="cannot be sent as a header"):
                await auth.challenge(challenge, [], None)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("main", True),
        ("release/1.2", True),
        ("feature.x-y_z", True),
        ("../config", False),
        ("a\nb", False),
        ("a\x00b", False),
        ("-rf", False),
        ("x.lock", False),
        ("a//b", False),
        ("", False),
    ],
)
def test_a_default_branch_is_used_only_when_it_is_a_branch_name(name: str, ok: bool) -> None:
    """The listing's default_branch goes into `git symbolic-ref` only as a real branch name."""
    assert branch_name(name) is ok


def _layout_with(tmp_path: Path, replace: str) -> tuple[LayoutStore, str]:
    """A one-image layout whose manifest blob is replaced by a symlink to /dev/zero or a FIFO."""
    root = tmp_path / "layout"
    digest = "sha256:" + "a" * 64
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": 100,
        "annotations": {"org.opencontainers.image.ref.name": "app:1"},
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    path = blobs / ("a" * 64)
    if replace == "zero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    return LayoutStore(Registry.layout_at(str(root))), digest


@pytest.mark.parametrize("replace", ["zero", "fifo"])
async def test_a_layout_blob_that_is_a_device_or_fifo_is_never_read(
    tmp_path: Path, replace: str
) -> None:
    """/dev/zero as a manifest took 2.7 GB; a FIFO blocked a thread for ever. Both are a
    damaged layout now, refused at once."""
    store, digest = _layout_with(tmp_path, replace)
    async with asyncio.timeout(5):
        with pytest.raises(ContentError, match="is not a regular file"):
            await store.get_manifest("app", "1")
        with pytest.raises(ContentError, match="is not a regular file"):
            await store.blob_size("app", digest)
        with pytest.raises(ContentError, match="is not a regular file"):
            async with store.read_blob("app", digest):
                pass


def test_a_manifest_of_250000_annotations_is_refused_unparsed() -> None:
    """Under the 4 MiB cap, 250,000 annotations would parse to ~40 MB a manifest, and 16
    children are read at once (605 MB): refused before parsing. A real 4,096-child index of
    platform descriptors still parses."""
    annotations = {f"a{n}": "" for n in range(250_000)}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "b" * 64}
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [layer | {"size": 1}]}
    raw = json.dumps(body | {"annotations": annotations}, separators=(",", ":")).encode()
    assert len(raw) < 4 * 2**20
    with pytest.raises(InvalidManifest, match="over the 50000 a manifest may hold"):
        parse_manifest(raw, OCI_MANIFEST)
    child = {
        "mediaType": OCI_MANIFEST,
        "digest": "sha256:" + "c" * 64,
        "size": 500,
        "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child] * 4096,
    }
    parsed = parse_manifest(json.dumps(index).encode(), index["mediaType"])  # type: ignore[arg-type]
    assert len(list(parsed.children())) == 4096
