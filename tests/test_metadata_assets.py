"""Asset downloads against a storage host on loopback that trickles its bytes: the
deadline and a stop hold even when every read beats the socket timeout."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from github_org_backup.errors import DiscoveryStopped, GitHubUnavailable
from github_org_backup.metadata.assets import Asset, Downloader

BODY = bytes(range(256)) * 1024  # 256 KiB


class Trickle(BaseHTTPRequestHandler):
    """Serves BODY in 1 KiB pieces, ``pause`` seconds apart."""

    pause = 0.0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        try:
            for at in range(0, len(BODY), 1024):
                self.wfile.write(BODY[at : at + 1024])
                self.wfile.flush()
                time.sleep(self.pause)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def storage() -> Iterator[tuple[str, type[Trickle]]]:
    handler = type("Handler", (Trickle,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/asset?X-Amz-Signature=s3cr3t", handler
    server.shutdown()
    server.server_close()


ASSET = Asset(7, "tool.tar.gz", len(BODY), hashlib.sha256(BODY).hexdigest(), "2026-01-01T00:00:00Z")


def test_a_steady_storage_host_gives_the_asset_whole(
    storage: tuple[str, type[Trickle]], tmp_path: Path
) -> None:
    url, _ = storage
    downloader = Downloader("http://127.0.0.1:1", grace_s=1.0, min_average_bps=256 * 1024)
    assert downloader.fetch(url, ASSET, tmp_path) == ASSET.sha256
    assert (tmp_path / ASSET.sha256).read_bytes() == BODY


def test_a_trickling_storage_host_is_abandoned_at_the_deadline(
    storage: tuple[str, type[Trickle]], tmp_path: Path
) -> None:
    """1 KiB every 20 ms never trips a 30 s socket timeout; at 256 KiB the deadline here is
    1.5 s, where the whole body would take about 5 s."""
    url, handler = storage
    handler.pause = 0.02
    downloader = Downloader("http://127.0.0.1:1", grace_s=0.5, min_average_bps=256 * 1024)
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable, match="abandoned") as caught:
        downloader.fetch(url, ASSET, tmp_path)
    assert time.monotonic() - started < 3.0
    assert "s3cr3t" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_stop_ends_a_download_under_way(
    storage: tuple[str, type[Trickle]], tmp_path: Path
) -> None:
    url, handler = storage
    handler.pause = 0.02
    downloader = Downloader("http://127.0.0.1:1")
    threading.Timer(0.3, downloader.stop).start()
    started = time.monotonic()
    with pytest.raises(DiscoveryStopped):
        downloader.fetch(url, ASSET, tmp_path)
    assert time.monotonic() - started < 2.0
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DiscoveryStopped):  # and no new download begins
        downloader.fetch(url, ASSET, tmp_path)
