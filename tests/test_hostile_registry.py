"""A compromised source registry against the real CLI: no credential leaves for a host the user
did not name, and no answer makes the run hold unbounded memory, disk or time.

Each test plays the attack with ``HostileRegistry`` on loopback, copies into an OCI layout in a
sandbox, and asserts what the attacker's endpoints received, that nothing was written outside
the destination, and the child's peak RSS and wall time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.harness.background import BackgroundLoop
from tests.harness.hostile import Measured, Recorder, Sandbox, run_measured
from tests.harness.hostile_registry import (
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    HostileRegistry,
    descriptor,
    endless,
    image_manifest,
    sha,
    trickle,
)

pytestmark = pytest.mark.integration

MAX_RSS_MIB = 200
PASSWORD = "s3cret-" + secrets.token_hex(8)
IDENTITY_TOKEN = "idt-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.stop()


def _login(sandbox: Sandbox, host: str, *, identity_token: bool = False) -> None:
    entry: dict[str, str] = {"auth": base64.b64encode(f"reader:{PASSWORD}".encode()).decode()}
    if identity_token:
        entry = {"auth": base64.b64encode(b"<token>:").decode(), "identitytoken": IDENTITY_TOKEN}
    (sandbox.docker / "config.json").write_text(json.dumps({"auths": {host: entry}}))


def _copy(
    sandbox: Sandbox, registry: HostileRegistry, repo: str, *flags: str, timeout: float = 90
) -> tuple[Measured, Path, dict[str, object]]:
    dest = sandbox.root / "backup"
    report = sandbox.root / "report.json"
    run = run_measured(
        [
            "copy",
            f"http://{registry.host}/{repo}",
            f"oci:{dest}:{repo}",
            "--report",
            str(report),
            "--log-format",
            "json",
            *flags,
        ],
        sandbox,
        timeout=timeout,
    )
    assert not run.timed_out, run
    body = json.loads(report.read_text()) if report.exists() else {}
    return run, dest, body


def _errors(report: dict[str, object]) -> str:
    images = report.get("images")
    assert isinstance(images, list)
    return " | ".join(str(i.get("error")) for i in images if isinstance(i, dict))


def _bounded(run: Measured, sandbox: Sandbox, dest: Path, report: Path, wall_s: float) -> None:
    assert sandbox.files_outside(dest, report) == [], run
    assert run.peak_rss_mib <= MAX_RSS_MIB, run
    assert run.wall_s <= wall_s, run
    assert "Traceback" not in run.stderr, run


def _token_thief(loop: BackgroundLoop) -> Recorder:
    async def hand_out(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": "stolen-" + secrets.token_hex(4)})

    return Recorder(loop, hand_out).start()


def test_credentials_never_go_to_a_token_realm_on_another_host(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A realm on another host gets no credentials; the image fails, naming that host."""
    thief = _token_thief(loop)
    realm_host = f"localhost:{thief.port}"  # another host name than the registry's 127.0.0.1
    registry = HostileRegistry(loop, challenge=f'Bearer realm="http://{realm_host}/token"')
    registry.start().add_image("acme/app", "1.0", [b"layer"])
    sandbox = Sandbox.make(tmp_path)
    _login(sandbox, registry.host)

    run, dest, report = _copy(sandbox, registry, "acme/app:1.0")

    assert run.returncode == 2, run  # no access: the run could not go on
    assert thief.received == [], [r.path_qs for r in thief.received]
    assert realm_host in _errors(report) and "--allow-token-realm" in _errors(report)
    assert PASSWORD not in run.stderr + run.stdout
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_an_allowed_token_realm_gets_the_credentials(tmp_path: Path, loop: BackgroundLoop) -> None:
    """With --allow-token-realm the same realm gets them: the check above can see a leak."""
    thief = _token_thief(loop)
    realm_host = f"localhost:{thief.port}"
    registry = HostileRegistry(loop, challenge=f'Bearer realm="http://{realm_host}/token"')
    registry.start().add_image("acme/app", "1.0", [b"layer"])
    sandbox = Sandbox.make(tmp_path)
    _login(sandbox, registry.host)

    run, dest, _ = _copy(sandbox, registry, "acme/app:1.0", "--allow-token-realm", realm_host)

    assert run.returncode == 0, run
    basic = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert [r.header("Authorization") for r in thief.received] == [basic]
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


@pytest.mark.parametrize("identity_token", [False, True], ids=["basic", "refresh-token"])
def test_a_token_request_follows_no_redirect(
    tmp_path: Path, loop: BackgroundLoop, identity_token: bool
) -> None:
    """The realm's 307 is not followed: the Basic header or the refresh token stays home."""
    thief = _token_thief(loop)
    registry = HostileRegistry(loop)

    async def redirect(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": f"{thief.url}/token"})

    registry.routes["/token"] = redirect
    registry.start().add_image("acme/app", "1.0", [b"layer"])
    registry.challenge = f'Bearer realm="http://{registry.host}/token",service="x"'
    sandbox = Sandbox.make(tmp_path)
    _login(sandbox, registry.host, identity_token=identity_token)

    run, dest, report = _copy(sandbox, registry, "acme/app:1.0")

    assert run.returncode == 2, run  # no access: the run could not go on
    assert thief.received == []
    assert "redirect" in _errors(report)
    assert IDENTITY_TOKEN not in run.stderr + run.stdout and PASSWORD not in run.stderr
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_an_endless_token_answer_is_cut_off(tmp_path: Path, loop: BackgroundLoop) -> None:
    """A token service that never stops answering costs at most 1 MiB of it."""
    registry = HostileRegistry(loop)
    registry.routes["/token"] = endless("application/json")
    registry.start().add_image("acme/app", "1.0", [b"layer"])
    registry.challenge = f'Bearer realm="http://{registry.host}/token"'
    sandbox = Sandbox.make(tmp_path)

    run, dest, report = _copy(sandbox, registry, "acme/app:1.0")

    assert run.returncode == 2, run  # no access: the run could not go on
    assert "bytes" in _errors(report) and "token" in _errors(report)
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_an_index_of_25000_children_fails_before_any_child_is_fetched(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A 3.8 MB index listing 25,000 children fails alone, after a handful of requests."""
    registry = HostileRegistry(loop).start()
    registry.add_image("acme/good", "1.0", [b"good layer"])
    children = [descriptor(OCI_MANIFEST, f"child {n}".encode()) for n in range(25_000)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    raw = json.dumps(index, separators=(",", ":")).encode()
    assert 3_500_000 < len(raw) < 4 * 2**20
    registry.manifests["acme/big:1.0"] = (OCI_INDEX, raw)
    sandbox = Sandbox.make(tmp_path)
    specs = tmp_path / "specs.jsonl"
    dest = sandbox.root / "backup"
    specs.write_text(
        "".join(
            json.dumps({"src": f"http://{registry.host}/{r}", "dst": f"oci:{dest}:{r}"}) + "\n"
            for r in ("acme/big:1.0", "acme/good:1.0")
        )
    )
    report_path = sandbox.root / "report.json"

    run = run_measured(["copy", "--specs", str(specs), "--report", str(report_path)], sandbox)

    assert run.returncode == 1, run
    report = json.loads(report_path.read_text())
    # Refused unparsed by its 50,000-value cap; a leaner index would meet the 4,096-child cap.
    assert "over the 50000 a manifest may hold" in _errors(report)
    statuses = {i["source"].split("/", 3)[3]: i["status"] for i in report["images"]}
    assert statuses == {"acme/big:1.0": "failed", "acme/good:1.0": "copied"}
    assert registry.recorder is not None
    big = [r for r in registry.recorder.received if "/acme/big/" in r.path_qs]
    assert len(big) <= 3, [r.path_qs for r in big]
    _bounded(run, sandbox, dest, report_path, 60)


def test_endless_referrer_pages_end_the_image_not_the_memory(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """``Link: rel="next"`` for ever on the referrers API stops at the listing bounds."""
    registry = HostileRegistry(loop).start()
    registry.add_image("acme/app", "1.0", [b"layer"])
    page = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, f"sig {n}".encode()) for n in range(1000)],
        }
    ).encode()
    served = 0

    async def pages(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        link = f'<{request.path}?page={served}>; rel="next"'
        return web.Response(body=page, content_type=OCI_INDEX, headers={"Link": link})

    registry.routes["/v2/acme/app/referrers/"] = pages
    sandbox = Sandbox.make(tmp_path)

    run, dest, report = _copy(sandbox, registry, "acme/app:1.0")

    assert run.returncode == 1, run
    assert "referrers" in _errors(report), run
    assert served <= 10, served
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_a_blob_claiming_2_to_the_62_bytes_fails_before_a_byte_moves(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A descriptor claiming 4 EiB is refused on the manifest: no blob GET, nothing on disk."""
    registry = HostileRegistry(loop).start()
    config = b'{"architecture":"amd64","os":"linux"}'
    registry.blobs[sha(config)] = config
    huge = {"mediaType": OCI_LAYER, "digest": sha(b"x"), "size": 2**62}
    raw = image_manifest(config, [huge])
    registry.manifests["acme/huge:1.0"] = (OCI_MANIFEST, raw)
    registry.routes["/v2/acme/huge/blobs/"] = endless("application/octet-stream")
    sandbox = Sandbox.make(tmp_path)

    run, dest, report = _copy(sandbox, registry, "acme/huge:1.0")

    assert run.returncode == 1, run
    assert "--max-blob-size" in _errors(report)
    assert registry.recorder is not None
    assert [r for r in registry.recorder.received if "/blobs/" in r.path_qs] == []
    stored = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert stored < 10_000, stored
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_a_blob_is_never_written_past_its_descriptor_size(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """An endless body for a 1000-byte layer: the layout never holds more than 1000 of it."""
    registry = HostileRegistry(loop).start()
    config = b'{"architecture":"amd64","os":"linux"}'
    registry.blobs[sha(config)] = config
    layer = {"mediaType": OCI_LAYER, "digest": sha(b"y" * 1000), "size": 1000}
    registry.manifests["acme/long:1.0"] = (OCI_MANIFEST, image_manifest(config, [layer]))
    registry.routes["/v2/acme/long/blobs/" + sha(b"y" * 1000)] = endless("application/octet-stream")
    sandbox = Sandbox.make(tmp_path)

    run, dest, report = _copy(sandbox, registry, "acme/long:1.0")

    assert run.returncode == 1, run
    assert "longer than its 1000 bytes" in _errors(report)
    assert max((p.stat().st_size for p in dest.rglob("*") if p.is_file()), default=0) <= 1000
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 30)


def test_trickled_manifests_and_blobs_fail_their_image_within_30_s(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """With the default floor, one byte every 5 s fails that image; a good image still lands."""
    registry = HostileRegistry(loop).start()
    registry.add_image("acme/good", "1.0", [b"good layer"])
    registry.add_image("acme/slowblob", "1.0", [b"slow layer"])
    registry.routes["/v2/acme/slowblob/blobs/" + sha(b"slow layer")] = trickle(
        "application/octet-stream"
    )
    registry.routes["/v2/acme/slowmanifest/manifests/"] = trickle(OCI_MANIFEST)
    sandbox = Sandbox.make(tmp_path)
    dest = sandbox.root / "backup"
    specs = tmp_path / "specs.jsonl"
    specs.write_text(
        "".join(
            json.dumps({"src": f"http://{registry.host}/{r}", "dst": f"oci:{dest}:{r}"}) + "\n"
            for r in ("acme/slowmanifest:1.0", "acme/slowblob:1.0", "acme/good:1.0")
        )
    )
    report_path = sandbox.root / "report.json"

    run = run_measured(
        ["copy", "--specs", str(specs), "--report", str(report_path)], sandbox, timeout=90
    )

    assert run.returncode == 1, run
    report = json.loads(report_path.read_text())
    by_source = {i["source"].split("/", 3)[3]: i for i in report["images"]}
    assert by_source["acme/good:1.0"]["status"] == "copied"
    for slow in ("acme/slowmanifest:1.0", "acme/slowblob:1.0"):
        assert by_source[slow]["status"] == "failed"
        assert "KiB/s" in by_source[slow]["error"], by_source[slow]
    _bounded(run, sandbox, dest, report_path, 30)


def test_a_404_whose_error_body_trickles_fails_its_image_within_30_s(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A missing manifest's or blob's error body is read for its codes, but only within the
    throughput floor: a 404 that trickles its body fails that image, and a good image lands."""
    registry = HostileRegistry(loop).start()
    registry.add_image("acme/good", "1.0", [b"good layer"])
    registry.add_image("acme/goneblob", "1.0", [b"gone layer"])
    gone = trickle("application/json", status=404)
    registry.routes["/v2/acme/goneblob/blobs/" + sha(b"gone layer")] = gone
    registry.routes["/v2/acme/gonemanifest/manifests/"] = gone
    sandbox = Sandbox.make(tmp_path)
    dest = sandbox.root / "backup"
    specs = tmp_path / "specs.jsonl"
    specs.write_text(
        "".join(
            json.dumps({"src": f"http://{registry.host}/{r}", "dst": f"oci:{dest}:{r}"}) + "\n"
            for r in ("acme/gonemanifest:1.0", "acme/goneblob:1.0", "acme/good:1.0")
        )
    )
    report_path = sandbox.root / "report.json"

    run = run_measured(
        ["copy", "--specs", str(specs), "--report", str(report_path)], sandbox, timeout=90
    )

    assert run.returncode == 1, run
    report = json.loads(report_path.read_text())
    by_source = {i["source"].split("/", 3)[3]: i for i in report["images"]}
    assert by_source["acme/good:1.0"]["status"] == "copied"
    for missing in ("acme/gonemanifest:1.0", "acme/goneblob:1.0"):
        assert by_source[missing]["status"] == "failed", by_source[missing]
    _bounded(run, sandbox, dest, report_path, 30)


def test_an_image_slower_than_its_deadline_fails_alone(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A blob that moves above the floor but would take minutes fails at --image-timeout."""
    registry = HostileRegistry(loop).start()
    registry.add_image("acme/slow", "1.0", [b"s" * 2**20])

    async def steady(request: web.Request) -> web.StreamResponse:  # 32 KiB/s: above the floor
        response = web.StreamResponse(headers={"Content-Length": str(2**20)})
        await response.prepare(request)
        try:
            for _ in range(128):
                await response.write(b"s" * 8192)
                await asyncio.sleep(0.25)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    registry.routes["/v2/acme/slow/blobs/" + sha(b"s" * 2**20)] = steady
    sandbox = Sandbox.make(tmp_path)

    run, dest, report = _copy(sandbox, registry, "acme/slow:1.0", "--image-timeout", "2")

    assert run.returncode == 1, run
    assert "not finished within 2 s (--image-timeout)" in _errors(report), run
    index = dest / "index.json"
    assert not index.exists() or "1.0" not in index.read_text()  # no tag for a partial image
    _bounded(run, sandbox, dest, sandbox.root / "report.json", 10)
