"""Inputs as real tools and real mistakes make them: plain-tag OCI layouts written by skopeo and
umoci, manifests that are not JSON or not manifests, and descriptors whose size is wrong."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.stores.layout import split_ref_name
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import Corpus, Manifest, generate_corpus
from tests.harness.layouts import OCI_INDEX, OCI_MANIFEST, Layout, skopeo_to_layout, umoci_new

pytestmark = pytest.mark.integration

REF_NAMES = [
    ("latest", ("", "latest")),  # skopeo, umoci, regclient, go-containerregistry
    ("v1.2.3-RC_1", ("", "v1.2.3-RC_1")),
    ("acme/app:1.2.3", ("acme/app", "1.2.3")),  # this tool's own form
    ("app:latest", ("app", "latest")),
    ("Acme/App:1", None),  # neither a tag nor repository:tag: not listed
    ("acme/app:", None),
    ("", None),
]


@pytest.mark.parametrize(("ref_name", "expected"), REF_NAMES)
def test_ref_names_split_into_repository_and_tag(
    ref_name: str, expected: tuple[str, str] | None
) -> None:
    """A plain ref name is a tag of the unnamed repository; ``repo:tag`` is this tool's form."""
    assert split_ref_name(ref_name) == expected


def ref(registry: LiveRegistry, path: str) -> str:
    return f"http://{registry.host}/{path}"


@pytest.fixture
def corpus(source: LiveRegistry, namespace: str) -> Corpus:
    """One OCI repository, two multi-arch tags with buildx attestations, in the source."""
    images = generate_corpus(repositories=1, tags=2, prefix=namespace, artifacts=False)
    source.pusher().push(images)
    return images


@pytest.fixture
def skopeo_layout(tmp_path: Path, source: LiveRegistry, corpus: Corpus) -> Layout:
    """What ``skopeo copy --all docker://... oci:DIR:latest`` writes: plain-tag ref names."""
    root = tmp_path / "skopeo-layout"
    for image, name in zip(corpus.images, ("latest", "1.1.0"), strict=True):
        skopeo_to_layout(
            source.url,
            source.username,
            source.password,
            f"{image.repository}:{image.tag}",
            root,
            name,
        )
    layout = Layout(root)
    assert sorted(layout.refs()) == ["1.1.0", "latest"]  # skopeo's own naming, not ours
    return layout


def report_of(path: Path) -> dict[str, dict[str, Any]]:
    """The report's images by source reference."""
    return {i["source"]: i for i in json.loads(path.read_text())["images"]}


def assert_clean_failure(result: Any) -> None:
    """Exit 1, with no traceback on stderr."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


# Plain-tag layouts (skopeo, umoci): copy, verify, restore


def test_copy_from_a_skopeo_layout_by_plain_tag(
    cli: CliRunner, skopeo_layout: Layout, destination: LiveRegistry, namespace: str
) -> None:
    """``copy oci:DIR:TAG`` names skopeo's ref TAG; ``oci:DIR::TAG`` says the same explicitly."""
    refs = skopeo_layout.refs()
    for source, tag in (
        (f"oci:{skopeo_layout.root}:latest", "latest"),
        (f"oci:{skopeo_layout.root}::1.1.0", "1.1.0"),
    ):
        result = cli("copy", source, ref(destination, f"{namespace}/from-skopeo:{tag}"))
        assert result.returncode == 0, result.stderr[-3000:]
        walked = destination.walker().walk(f"{namespace}/from-skopeo", tag)
        assert (walked.digest, walked.problems) == (refs[tag]["digest"], [])
        assert walked.manifests == 5  # the index, two platforms, two attestations


def test_copy_into_a_plain_tag_ref_is_read_by_skopeo(
    cli: CliRunner, skopeo_layout: Layout, tmp_path: Path
) -> None:
    """``copy ... oci:DIR::TAG`` writes a plain-tag ref, as skopeo would, and skopeo reads it."""
    out = tmp_path / "plain"
    result = cli("copy", f"oci:{skopeo_layout.root}:latest", f"oci:{out}::v9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(Layout(out).refs()) == ["v9"]
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{out}:v9"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == skopeo_layout.refs()["latest"]["digest"]


def test_verify_a_skopeo_layout(cli: CliRunner, skopeo_layout: Layout) -> None:
    """``verify --dest oci:DIR`` finds skopeo's plain-tag refs and checks them, deep too."""
    for deep in ((), ("--deep",)):
        result = cli("verify", "--dest", f"oci:{skopeo_layout.root}", *deep)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert '"tags": 2' in result.stderr and '"problems": 0' in result.stderr


def test_restore_a_skopeo_layout_into_one_repository(
    cli: CliRunner, skopeo_layout: Layout, destination: LiveRegistry, namespace: str
) -> None:
    """Every plain ref becomes a tag of the one repository given as --to; a bare host is refused."""
    target = ref(destination, f"{namespace}/restored")
    result = cli("restore", "--from", f"oci:{skopeo_layout.root}", "--to", target)
    assert result.returncode == 0, result.stderr[-3000:]
    walker = destination.walker()
    assert walker.tags(f"{namespace}/restored") == ["1.1.0", "latest"]
    for name, entry in skopeo_layout.refs().items():
        walked = walker.walk(f"{namespace}/restored", name)
        assert (walked.digest, walked.problems) == (entry["digest"], [])

    bare = cli(
        "restore", "--from", f"oci:{skopeo_layout.root}", "--to", f"http://{destination.host}"
    )
    assert bare.returncode == 2
    assert "give --to HOST/REPOSITORY" in bare.stderr


def test_umoci_layout_without_manifest_media_types(
    cli: CliRunner, tmp_path: Path, destination: LiveRegistry, namespace: str
) -> None:
    """umoci's manifests carry no mediaType: it is taken from the index descriptor."""
    layout = Layout(tmp_path / "umoci")
    umoci_new(layout.root, "v1")
    umoci_new(layout.root, "v2")
    digest, document = layout.image_manifest("v1")
    assert "mediaType" not in document  # what makes this layout a real-world input
    assert cli("verify", "--dest", f"oci:{layout.root}", "--deep").returncode == 0
    target = ref(destination, f"{namespace}/umoci")
    result = cli("restore", "--from", f"oci:{layout.root}", "--to", target)
    assert result.returncode == 0, result.stderr[-3000:]
    walked = destination.walker().walk(f"{namespace}/umoci", "v1")
    assert (walked.digest, walked.problems) == (digest, [])
    assert destination.walker().tags(f"{namespace}/umoci") == ["v1", "v2"]


# Manifests that are not JSON, or not manifests


def damage_with_non_manifests(layout: Layout) -> dict[str, str]:
    """Add refs whose 'manifest' is gzip bytes, ``{"foo":1}``, an image config, and an index
    whose child is gzip bytes. Returns each damaged ref and a word its error must contain."""
    _, image = layout.image_manifest("latest")
    config = layout.blob(image["config"]["digest"])
    gz = gzip.compress(b"\x00\xff not a manifest " * 64)
    layout.add_ref("gzip", gz)
    layout.add_ref("foo", b'{"foo":1}')
    layout.add_ref("config", config)
    gz_child = gzip.compress(b"\x00\xff not a child manifest " * 64)
    child = layout.add_blob(gz_child)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(gz_child)}],
    }
    layout.add_ref("gzip-child", json.dumps(index).encode(), OCI_INDEX)
    return {
        "gzip": "not valid JSON",
        "foo": "does not have the fields",
        "config": "descriptor lacks a string digest",
        "gzip-child": "not valid JSON",
    }


def test_a_manifest_that_is_not_json_fails_only_its_image(
    cli: CliRunner,
    skopeo_layout: Layout,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """restore from a layout with non-manifests: those fail, the rest is copied, report written."""
    damaged = damage_with_non_manifests(skopeo_layout)
    report = tmp_path / "report.json"
    target = ref(destination, f"{namespace}/mixed")
    result = cli(
        "restore", "--from", f"oci:{skopeo_layout.root}", "--to", target, "--report", str(report)
    )
    assert_clean_failure(result)
    images = report_of(report)
    root = f"oci:{skopeo_layout.root}"
    for name, words in damaged.items():
        entry = images[f"{root}:{name}"]
        assert entry["status"] == "failed" and words in entry["error"], entry
    assert images[f"{root}:latest"]["status"] == "copied"
    assert images[f"{root}:1.1.0"]["status"] == "copied"
    assert destination.walker().tags(f"{namespace}/mixed") == ["1.1.0", "latest"]

    verify = cli("verify", "--dest", f"oci:{skopeo_layout.root}")
    assert_clean_failure(verify)
    for name, words in damaged.items():
        assert any(
            re.match(f"{re.escape(root)}:{name}[: ]", line) and words in line
            for line in verify.stdout.splitlines()
        ), (name, verify.stdout)
    assert f"{root}:latest" not in verify.stdout and f"{root}:1.1.0" not in verify.stdout


def test_copy_specs_with_a_non_json_manifest(
    cli: CliRunner,
    skopeo_layout: Layout,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """``copy --specs`` mixing a gzip 'manifest' with good images: exit 1, the good are copied."""
    damage_with_non_manifests(skopeo_layout)
    root = f"oci:{skopeo_layout.root}"
    specs = [
        {"src": f"{root}::{name}", "dst": ref(destination, f"{namespace}/specs:{name}")}
        for name in ("gzip", "latest", "foo", "1.1.0")
    ]
    report = tmp_path / "report.json"
    result = cli("copy", "--specs", "-", "--report", str(report), input=json.dumps(specs))
    assert_clean_failure(result)
    statuses = [i["status"] for i in json.loads(report.read_text())["images"]]
    assert statuses == ["failed", "copied", "failed", "copied"]


# Descriptors whose size disagrees with the blob


def with_wrong_layer_size(document: dict[str, Any]) -> dict[str, Any]:
    wrong = copy.deepcopy(document)
    wrong["layers"][-1]["size"] += 1
    return wrong


def test_wrong_size_from_a_layout_fails_that_image_only_and_is_not_retried(
    cli: CliRunner,
    skopeo_layout: Layout,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """A layer descriptor one byte too large fails its image at once (no retries), while an image
    naming the same layer with the right size, in the same run, is copied."""
    _, good = skopeo_layout.image_manifest("latest")
    skopeo_layout.add_ref("bad", json.dumps(with_wrong_layer_size(good)).encode())
    skopeo_layout.add_ref("good", json.dumps(good).encode())
    root = f"oci:{skopeo_layout.root}"
    layer = good["layers"][-1]["digest"]
    alone = cli("copy", f"{root}::bad", ref(destination, f"{namespace}/alone:bad"))
    assert_clean_failure(alone)
    assert "blob_transfer_retry" not in alone.stderr  # the same bytes would come back every time
    assert f"blob {layer} ended after" in alone.stderr and "the layout is damaged" in alone.stderr

    specs = [
        {"src": f"{root}::{name}", "dst": ref(destination, f"{namespace}/sizes:{name}")}
        for name in ("bad", "good")
    ]
    report = tmp_path / "report.json"
    result = cli("copy", "--specs", "-", "--report", str(report), input=json.dumps(specs))
    assert_clean_failure(result)
    images = report_of(report)
    assert images[f"{root}:good"]["status"] == "copied"
    bad = images[f"{root}:bad"]
    assert bad["status"] == "failed" and layer in bad["error"], bad
    assert "blob_transfer_retry" not in result.stderr
    walker = destination.walker()
    assert walker.tags(f"{namespace}/sizes") == ["good"]
    assert walker.walk(f"{namespace}/sizes", "good").problems == []


def test_wrong_child_manifest_size_in_a_layout_index_fails(
    cli: CliRunner,
    skopeo_layout: Layout,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """An index whose child descriptor is one byte off fails, whether or not the destination
    already holds that child."""
    index = skopeo_layout.document(skopeo_layout.refs()["latest"]["digest"])
    wrong = copy.deepcopy(index)
    wrong["manifests"][0]["size"] += 1
    skopeo_layout.add_ref("badchild", json.dumps(wrong).encode(), wrong["mediaType"])
    root = f"oci:{skopeo_layout.root}"
    children = f"{namespace}/children"
    report = tmp_path / "report.json"
    fresh = cli(
        "copy", f"{root}::badchild", ref(destination, f"{children}:fresh"), "--report", str(report)
    )
    assert_clean_failure(fresh)
    failed = report_of(report)[f"{root}:badchild"]
    assert failed["status"] == "failed" and "descriptor says" in failed["error"], failed

    ok = cli("copy", f"{root}:latest", ref(destination, f"{children}:ok"))
    assert ok.returncode == 0, ok.stderr[-3000:]
    present = cli(
        "copy",
        f"{root}::badchild",
        ref(destination, f"{children}:present"),
        "--report",
        str(report),
    )
    assert_clean_failure(present)
    failed = report_of(report)[f"{root}:badchild"]
    assert failed["status"] == "failed" and "descriptor says" in failed["error"], failed
    assert destination.walker().tags(children) == ["ok"]


def push_wrong_size_image(
    registry: LiveRegistry, repository: str, image: Manifest
) -> dict[str, Any]:
    """Push ``image`` as ``good`` and, naming the same layer one byte too large, as ``bad``
    (distribution accepts it: it checks only that the layer exists)."""
    pusher = registry.pusher()
    pusher.push_manifest(repository, "good", image)
    wrong = with_wrong_layer_size(json.loads(image.raw))
    raw = json.dumps(wrong).encode()
    pusher.push_manifest(repository, "bad", Manifest(raw, image.media_type))
    return wrong


def test_wrong_size_against_a_blob_already_at_the_destination(
    cli: CliRunner,
    corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The destination holds the layer already; the image whose descriptor disagrees with it is
    failed, not skipped as copied; the one with the right size, in the same run, is copied."""
    platform_image = corpus.images[0].manifest.children[0]
    repository = f"{namespace}/lies"
    wrong = push_wrong_size_image(source, repository, platform_image)
    first = cli("copy", ref(source, f"{repository}:good"), ref(destination, f"{repository}:g0"))
    assert first.returncode == 0, first.stderr[-3000:]
    specs = [
        {"src": ref(source, f"{repository}:{tag}"), "dst": ref(destination, f"{repository}:{tag}")}
        for tag in ("bad", "good")
    ]
    report = tmp_path / "report.json"
    result = cli("copy", "--specs", "-", "--report", str(report), input=json.dumps(specs))
    assert_clean_failure(result)
    images = report_of(report)
    bad = images[ref(source, f"{repository}:bad")]
    layer = wrong["layers"][-1]
    assert bad["status"] == "failed", bad
    assert f"{layer['size'] - 1} bytes" in bad["error"] and str(layer["size"]) in bad["error"]
    assert images[ref(source, f"{repository}:good")]["status"] == "copied"
    assert destination.walker().tags(repository) == ["g0", "good"]


# verify checks every descriptor


def with_layer_twice(document: dict[str, Any]) -> dict[str, Any]:
    """The last layer named twice: first with its true size, then one byte too large."""
    twice = copy.deepcopy(document)
    twice["layers"].append(with_wrong_layer_size(document)["layers"][-1])
    return twice


def test_verify_checks_every_descriptor_of_a_shared_blob(
    cli: CliRunner,
    skopeo_layout: Layout,
    corpus: Corpus,
    destination: LiveRegistry,
    namespace: str,
) -> None:
    """A blob named with its true size and also with a wrong one is a problem wherever the wrong
    one appears, whichever is checked first: in a layout and in a registry, shallow and deep."""
    _, good = skopeo_layout.image_manifest("latest")
    skopeo_layout.add_ref("twice", json.dumps(with_layer_twice(good)).encode())
    skopeo_layout.add_ref("zz-wrong-size", json.dumps(with_wrong_layer_size(good)).encode())
    layer = good["layers"][-1]["digest"]
    root = f"oci:{skopeo_layout.root}"
    for deep in ((), ("--deep",)):
        result = cli("verify", "--dest", root, *deep)
        assert_clean_failure(result)
        problems = result.stdout.splitlines()
        assert len(problems) == 2, problems
        assert problems[0].startswith(f"{root}:twice: blob {layer} is "), problems
        assert problems[1].startswith(f"{root}:zz-wrong-size: blob {layer} is "), problems

    repository = f"{namespace}/verified"
    image = corpus.images[0].manifest.children[0]
    push_wrong_size_image(destination, repository, image)
    raw = json.dumps(with_layer_twice(json.loads(image.raw))).encode()
    destination.pusher().push_manifest(repository, "twice", Manifest(raw, image.media_type))
    for deep in ((), ("--deep",)):
        result = cli("verify", "--dest", ref(destination, namespace), *deep)
        assert_clean_failure(result)
        problems = result.stdout.splitlines()
        assert [p.split(": blob ")[0] for p in problems] == [
            ref(destination, f"{repository}:bad"),
            ref(destination, f"{repository}:twice"),
        ], problems
