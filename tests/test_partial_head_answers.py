"""A backup registry (or a proxy before it) that leaves headers off a manifest HEAD.

A skipped tag's descriptor comes from the destination's HEAD, and it goes into the snapshot
and the history index. A HEAD without ``Content-Length`` or ``Content-Type`` must not make
the tag drop out of the snapshot, which ``--prune`` would then take as licence to delete it.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry, docker_config_for
from tests.harness.github_api import GitHubStandIn
from tests.harness.registry import RegistryProcess
from tests.test_history import HISTORY_TAG, SmallOrg, _env, _run

pytestmark = pytest.mark.integration


class HeaderStrippingProxy(http.server.ThreadingHTTPServer):
    """Passes every request to ``upstream``; drops ``strip`` from manifest HEAD answers."""

    daemon_threads = True

    def __init__(self, upstream: int, strip: str) -> None:
        self.upstream, self.strip, self.stripped = upstream, strip.lower(), 0
        super().__init__(("127.0.0.1", 0), _Relay)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HeaderStrippingProxy

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        strip = self.command == "HEAD" and "/manifests/" in self.path and answer.status == 200
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() in ("transfer-encoding", "connection"):
                continue
            if strip and name.lower() == self.server.strip:
                self.server.stripped += 1
                continue
            if name.lower() == "location":
                value = value.replace(f"127.0.0.1:{self.server.upstream}", self.server.host)
            self.send_header(name, value)
        if strip:  # without a length, only closing the connection ends a HEAD answer
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def small_org(
    source: LiveRegistry, namespace: str, pat: str
) -> Iterator[tuple[SmallOrg, GitHubStandIn]]:
    org = SmallOrg(source, f"org{namespace}")
    stand_in = GitHubStandIn(owners={org.name: org.api()}, tokens={pat: {"read:packages"}}).start()
    yield org, stand_in
    stand_in.stop()


@pytest.mark.parametrize("strip", ["Content-Length", "Content-Type"])
def test_unchanged_tags_stay_in_the_snapshot_and_are_never_pruned(
    strip: str,
    small_org: tuple[SmallOrg, GitHubStandIn],
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    org, stand_in = small_org
    backup = RegistryProcess(tmp_path / "backup").start()
    proxy = HeaderStrippingProxy(backup.port, strip)
    try:
        config = docker_config_for(tmp_path / "docker")
        env = _env(pat, stand_in, source)
        prefix = f"http://{proxy.host}/bk"
        args = ["registry", "--org", org.name, "--dest", prefix, "--all-patches"]
        assert _run(env, config, *args).returncode == 0
        report_path = tmp_path / "second.json"
        rerun = _run(
            env, config, *args, "--keep-last", "1", "--prune", "--report", str(report_path)
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert proxy.stripped > 0  # the proxy did leave the header off
        report = json.loads(report_path.read_text())
        assert {i["status"] for i in report["images"]} == {"skipped"}
        assert all(i["size"] > 0 and i["media_type"] for i in report["images"])
        assert report["pruned"] == []
        listed = json.loads(_run(env, config, "snapshots", "--dest", prefix, "--json").stdout)
        assert [entry["tags"] for entry in listed] == [5]
        walker = LiveRegistry(backup, "", "", lambda _repo: None).walker()
        for package, tags in org.tags.items():
            name = f"bk/{org.name}/{package}"
            assert sorted(walker.tags(name)) == sorted([*tags, HISTORY_TAG])
            for tag, manifest in tags.items():
                walked = walker.walk(name, tag)
                assert (walked.digest, walked.problems) == (manifest.digest, []), (package, tag)
    finally:
        proxy.shutdown()
        proxy.server_close()
        backup.stop()
