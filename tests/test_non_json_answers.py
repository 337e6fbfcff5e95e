"""A 200 whose body is not the JSON the protocol promises: an SSO or login proxy's HTML page
in front of a registry or its token service. It is that registry's failure, named, never a
crash (exit 70) and never retried as if it were transient."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import AuthError, RegistryError
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from github_org_backup.stores.registry.credentials import Credentials
from tests.harness.clirun import run_cli

BASE = "https://r.example.com"
FAST = RetryPolicy(attempts=4, base_delay_s=0.001, max_delay_s=0.002, max_retry_after_s=0.01)
LOGIN_PAGE = "<html><head><title>Sign in</title></head><body>SSO</body></html>"


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    async with aiohttp.ClientSession() as session:
        yield RegistryClient(Registry("r.example.com"), session, Credentials("u", "p"), FAST)


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/v2/acme/app/tags/list?n=1000", LOGIN_PAGE, "text/html"),
        ("/v2/acme/app/tags/list?n=1000", "[]", "application/json"),
        ("/v2/_catalog?n=1000", '"repositories"', "application/json"),
    ],
)
async def test_a_listing_that_is_not_a_json_object_fails_once_with_its_name(
    client: RegistryClient, path: str, body: str, content_type: str
) -> None:
    with aioresponses() as mocked:
        mocked.get(BASE + path, status=200, body=body, content_type=content_type)
        with pytest.raises(RegistryError, match="not a JSON object") as caught:  # noqa: PT012
            if "_catalog" in path:
                await client.list_repositories()
            else:
                await client.list_tags("acme/app")
        assert sum(len(c) for c in mocked.requests.values()) == 1  # not retried
    assert content_type in str(caught.value)


TOKEN_URL = (
    "https://auth.example.com/token?scope=repository%3Aacme%2Fapp%3Apull&service=r.example.com"
)


def challenged(mocked: aioresponses) -> None:
    """The registry asks for a Bearer token from auth.example.com."""
    challenge = 'Bearer realm="https://auth.example.com/token",service="r.example.com"'
    mocked.head(
        f"{BASE}/v2/acme/app/manifests/1", status=401, headers={"WWW-Authenticate": challenge}
    )


async def test_a_token_service_answering_a_login_page_is_an_auth_error(
    client: RegistryClient,
) -> None:
    with aioresponses() as mocked:
        challenged(mocked)
        mocked.get(TOKEN_URL, status=200, body=LOGIN_PAGE, content_type="text/html")
        with pytest.raises(AuthError, match="returned no token"):
            await client.resolve_manifest("acme/app", "1")


async def test_a_token_lifetime_that_is_not_a_number_takes_the_default(
    client: RegistryClient,
) -> None:
    with aioresponses() as mocked:
        challenged(mocked)
        mocked.get(TOKEN_URL, status=200, payload={"token": "t", "expires_in": "soon"})
        mocked.head(f"{BASE}/v2/acme/app/manifests/1", status=404)
        assert await client.resolve_manifest("acme/app", "1") is None


class _LoginPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = LOGIN_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def login_proxy() -> Iterator[str]:
    """Answers every GET with 200 and an HTML sign-in page, /v2/ included."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoginPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", ["snapshots", "verify"])
def test_commands_behind_a_login_page_fail_with_the_reason(
    command: str, login_proxy: str, tmp_path: Path
) -> None:
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text("{}")
    result = run_cli([command, "--dest", f"http://{login_proxy}/bk"], config, timeout=120)
    assert result.returncode in (1, 2), result.stderr[-3000:]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert not [e for e in events if e.get("event") == "run_crashed"]
    assert "not a JSON object" in result.stderr and "text/html" in result.stderr
    assert "Traceback" not in result.stderr
