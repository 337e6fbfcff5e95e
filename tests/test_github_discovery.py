"""Discovery against GitHub's failure modes: per-package failures, the kinds of 403, rate limits,
an unreachable API, SIGTERM while requests are retried, and PyGithub's logs in the tool's format.

End-to-end tests run the CLI against a fresh GitHub stand-in (tests/harness/github_api.py) that
answers with GitHub's real headers and bodies; unit tests drive GitHubPackages in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, ReadTimeoutError

from github_org_backup.base.logs import configure_logging
from github_org_backup.errors import DiscoveryStopped, GitHubRateLimited
from github_org_backup.github.packages import GitHubPackages
from github_org_backup.github.refusals import classify_refusal, explain_refusal, network_reason
from github_org_backup.model.packages import FailedPackage, Owner, Package
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.clirun import ROOT, cli_env
from tests.harness.github_api import Fault, GitHubStandIn, StandInPackage
from tests.harness.org import Org

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def api(org: Org, pat: str) -> Iterator[GitHubStandIn]:
    """A stand-in of its own per test, so its faults never reach another test."""
    stand_in = GitHubStandIn(owners={org.name: org.api}, tokens={pat: {"read:packages"}}).start()
    yield stand_in
    stand_in.stop()


def registry_args(org: Org, destination: LiveRegistry, namespace: str, *extra: str) -> list[str]:
    return [
        "registry",
        "--org",
        org.name,
        "--dest",
        f"http://{destination.host}/{namespace}",
        "--exclude-package",
        "legacy-*",
        *extra,
    ]


def api_env(env: dict[str, str], api: GitHubStandIn, retries: str | None = "1") -> dict[str, str]:
    extra = {"GITHUB_API_URL": api.url}
    if retries is not None:
        extra["GITHUB_API_RETRIES"] = retries
    return env | extra


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line, parsed: each must be one JSON object."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    """The JSON events called ``name`` (a usage error's last line is plain text by design)."""
    found = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in found if e.get("event") == name]


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound but never listening, and held for the
    whole test, so no other process (another test's registry, say) can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# Item 1: one package's failure is that package's


@pytest.mark.integration
def test_a_failing_package_fails_alone_and_the_rest_is_backed_up(
    cli: CliRunner,
    org: Org,
    api: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    tmp_path: Path,
    namespace: str,
) -> None:
    """403 (SAML SSO) on the first package, 404 and a persistent 503 on two more: each fails
    under its own name in the report, the last package is still backed up, exit 1."""
    api.faults = {
        "app": Fault("sso"),
        "team/api": Fault("not-found"),
        "team/tools/cli": Fault("server-error", status=503),
    }
    report_path = tmp_path / "report.json"
    result = cli(
        *registry_args(org, destination, namespace, "--report", str(report_path)),
        env=api_env(env, api),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    packages = {p["package"]: p for p in report["packages"]}
    assert packages["app"]["status"] == "failed"
    assert "SAML single sign-on" in packages["app"]["error"]
    assert "authorize the token" in packages["app"]["error"]
    assert packages["team/api"]["status"] == "failed"
    assert "HTTP 404" in packages["team/api"]["error"]
    assert packages["team/tools/cli"]["status"] == "failed"
    assert "HTTP 503" in packages["team/tools/cli"]["error"]
    assert "2 attempts" in packages["team/tools/cli"]["error"]  # GITHUB_API_RETRIES=1
    assert packages["worker"] == {
        "package": "worker",
        "status": "discovered",
        "tags": 2,
        "error": None,
    }
    summary = report["summary"]
    assert summary["packages"] == 1 and summary["packages_failed"] == 3
    assert summary["discovery_error"] is None
    assert summary["images_copied"] == 2 and summary["images_failed"] == 0

    walker = destination.walker()
    repository = f"{namespace}/{org.name}/worker"
    assert walker.image_tags(repository) == sorted(["3.4.5", org.signature("worker", "3.4.5")])
    assert walker.walk(repository, "3.4.5").digest == org.packages["worker"]["3.4.5"].digest
    failed = {e["package"]: e for e in events(result.stderr, "package_failed")}
    assert set(failed) == {"app", "team/api", "team/tools/cli"}
    assert failed["app"]["status"] == 403


@pytest.mark.integration
def test_a_missing_scope_on_one_package_and_a_rate_limit_past_the_cap(
    cli: CliRunner,
    org: Org,
    api: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    tmp_path: Path,
    namespace: str,
) -> None:
    """A missing scope fails its package; a primary rate limit resetting in an hour ends
    discovery with a message naming the limit and the reset time; what was found is copied."""
    reset_in = 3600
    api.faults = {"team/api": Fault("scope"), "worker": Fault("primary", reset_in=reset_in)}
    report_path = tmp_path / "report.json"
    started = time.time()
    result = cli(
        *registry_args(
            org,
            destination,
            namespace,
            "--include-package",
            "app",
            "--include-package",
            "team/api",
            "--include-package",
            "worker",
            "--report",
            str(report_path),
        ),
        env=api_env(env, api, retries=None),  # the default retries: the cap, not them, decides
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert time.time() - started < 60
    report = json.loads(report_path.read_text())
    packages = {p["package"]: p for p in report["packages"]}
    assert packages["app"]["status"] == "discovered"
    assert packages["team/api"]["status"] == "failed"
    assert "missing a scope" in packages["team/api"]["error"]
    assert "read:packages" in packages["team/api"]["error"]
    assert "worker" not in packages  # discovery ended there
    error = report["summary"]["discovery_error"]
    assert "primary rate limit" in error
    reset_iso = error.split("resets at ")[1][:25]
    assert abs(datetime.fromisoformat(reset_iso).timestamp() - (started + reset_in)) < 30
    assert report["summary"]["images_copied"] == 3  # app's 1.0.1, 1.1.2, latest
    assert events(result.stderr, "discovery_failed")[0]["error"] == error


@pytest.mark.integration
def test_dry_run_shows_a_failed_package_and_exits_1(
    cli: CliRunner, org: Org, api: GitHubStandIn, destination: LiveRegistry, env: dict[str, str]
) -> None:
    api.faults = {"team/api": Fault("not-found")}
    result = cli(*registry_args(org, destination, "x", "--dry-run"), env=api_env(env, api))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "team/api: failed  GitHub answered HTTP 404" in result.stdout
    assert "app: keep 3, drop 7" in result.stdout
    assert "worker: keep 2" in result.stdout


# Item 2: the package list refused or limited: nothing can be discovered, exit 2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("sso"), "authorize the token for the organisation"),
        (Fault("scope"), "it has [none] and GitHub accepts [read:packages]"),
        (Fault("primary"), "GitHub's primary rate limit"),
        (Fault("secondary", retry_after=3600), "GitHub's secondary rate limit"),
    ],
    ids=["sso", "scope", "primary", "secondary"],
)
def test_a_refused_package_list_exits_2_saying_which_403(
    cli: CliRunner,
    org: Org,
    api: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    tmp_path: Path,
    fault: Fault,
    message: str,
) -> None:
    api.faults = {"": fault}
    report_path = tmp_path / "report.json"
    result = cli(
        *registry_args(org, destination, "x", "--report", str(report_path)), env=api_env(env, api)
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    if fault.kind in ("primary", "secondary"):
        assert "resets at 20" in result.stderr
    assert "authorization_request" not in result.stderr  # the SSO link's one-time query
    summary = json.loads(report_path.read_text())["summary"]
    assert message in summary["discovery_error"]
    assert summary["images_copied"] == 0 and summary["packages"] == 0


# Item 3: PyGithub's log lines in the tool's format, and the tool's own wait event


@pytest.mark.integration
def test_rate_limit_wait_is_logged_and_pygithub_logs_are_json(
    cli: CliRunner, org: Org, api: GitHubStandIn, destination: LiveRegistry, env: dict[str, str]
) -> None:
    """A secondary rate limit (403 + Retry-After: 1) is waited out; every stderr line is JSON,
    PyGithub's own lines included, and the tool says how long it waits and until when."""
    api.faults = {"": Fault("secondary", times=1, retry_after=1)}
    result = cli(
        *registry_args(org, destination, "x", "--include-package", "worker", "--emit-specs"),
        env=api_env(env, api),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2
    lines = json_lines(result.stderr)  # raises if any line is not JSON
    pygithub = [e for e in lines if e.get("logger", "").startswith("github.")]
    assert any(
        e["event"].startswith(f"Request GET /orgs/{org.name}/packages")
        and "failed with 403" in e["event"]
        and e["level"] == "info"
        and "timestamp" in e
        for e in pygithub
    ), pygithub
    (wait,) = events(result.stderr, "github_rate_limit_wait")
    assert wait["limit"] == "secondary" and wait["wait_s"] == 1
    assert datetime.fromisoformat(wait["resets_at"]).tzinfo is not None


def test_library_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The "github" logger goes through the same redaction as the tool's own events."""
    configure_logging("json", "info")
    try:
        logging.getLogger("github.Requester").info(
            "GET https://cdn.example/blob?X-Amz-Signature=s3cr3t Authorization: Bearer abc.def"
        )
        (line,) = capsys.readouterr().err.splitlines()
        event = json.loads(line)
        assert "s3cr3t" not in line and "abc.def" not in line
        assert event["logger"] == "github.Requester" and event["level"] == "info"
    finally:
        for name in ("github", "urllib3"):
            logging.getLogger(name).handlers.clear()
        structlog.reset_defaults()


# Item 4: SIGTERM while GitHub requests are being retried


@pytest.mark.integration
def test_sigterm_during_discovery_retries_stops_within_the_grace_period(
    org: Org,
    api: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    docker_config: Path,
    tmp_path: Path,
) -> None:
    """The package list answers 503 for ever and PyGithub sleeps between retries (about 60 s in
    all): SIGTERM still ends the run within --grace-period, with exit 143 and a report."""
    api.faults = {"": Fault("server-error", status=503)}
    report_path = tmp_path / "report.json"
    args = registry_args(org, destination, "x", "--report", str(report_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "github_org_backup", *args, "--grace-period", "2"],
        cwd=ROOT,
        env=cli_env(docker_config, api_env(env, api, retries=None)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(api.requests) < 3 and time.monotonic() < deadline:  # in the 2nd backoff
            time.sleep(0.05)
        assert len(api.requests) >= 3
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 143, stderr[-2000:]
    # The retries still ahead sleep about 4 + 8 + 16 + 32 s; stopping within the 2 s grace
    # period plus a loaded machine's shutdown (report, coverage data) stays far below that.
    assert elapsed < 2 + 13, elapsed
    assert json.loads(report_path.read_text())["summary"]["interrupted"] is True
    assert events(stderr, "signal_received")
    json_lines(stderr)


async def test_stop_does_not_wait_for_a_rate_limit_sleep() -> None:
    """A stop wakes the worker's rate-limit wait and the awaiting coroutine at once."""
    api = GitHubStandIn(owners={"acme": []}, tokens={"t": {"read:packages"}}).start()
    api.faults = {"": Fault("secondary", retry_after=600)}
    github = GitHubPackages(Owner("orgs", "acme"), "t", api.url, request_interval_s=0)
    stopped_at: list[float] = []

    async def stop_once_limited() -> None:
        # Stop once GitHub has answered with the limit, however long that took on this machine
        # (a stop after a fixed 0.5 s could land before the request and prove nothing).
        while not api.requests:
            await asyncio.sleep(0.01)
        stopped_at.append(time.monotonic())
        github.stop()

    stopper = asyncio.create_task(stop_once_limited())
    try:
        with pytest.raises(DiscoveryStopped):
            async for _ in github.packages(lambda _: True):
                pass
        await stopper
        # The Retry-After is 600 s: anything near a few seconds is a woken sleep.
        assert time.monotonic() - stopped_at[0] < 15
    finally:
        stopper.cancel()
        github.close()
        api.stop()


# Item 5: an unreachable API


@pytest.mark.integration
def test_unreachable_api_says_what_failed_and_where_and_exits_2(
    cli: CliRunner, org: Org, destination: LiveRegistry, env: dict[str, str], tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/orgs/{org.name}/packages"
        result = cli(
            *registry_args(org, destination, "x", "--report", str(report_path)),
            env=env | {"GITHUB_API_URL": f"http://127.0.0.1:{port}", "GITHUB_API_RETRIES": "2"},
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot reach the GitHub API: connection refused on {url} (3 attempts)" in (
        result.stderr
    )
    retries = events(result.stderr, "github_api_unreachable")
    # The first failure, and each one after it that is retried; the last is the error above.
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[1]["retry_in_s"] >= 2
    assert all(e["url"] == url and e["error"] == "connection refused" for e in retries)
    assert "connection refused" in json.loads(report_path.read_text())["summary"]["discovery_error"]


def test_network_reasons_name_dns_and_timeouts() -> None:
    dns = NameResolutionError("api.example", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
    assert network_reason(dns).startswith("DNS lookup failed")
    assert network_reason(ConnectTimeoutError(None, "timed out")) == "connect timed out"
    assert network_reason(ReadTimeoutError(None, "/x", "timed out")) == "read timed out"  # type: ignore[arg-type]


# Telling 403s apart (unit)

OK = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4000"}
SSO_URL = "required; url=https://github.com/orgs/a/sso?x=1"
SAML = "Resource protected by organization SAML enforcement. You must grant your token access."
SCOPES = {"X-OAuth-Scopes": "repo, gist", "X-Accepted-OAuth-Scopes": "read:packages"}
HAS_SCOPE = {"X-OAuth-Scopes": "read:packages", "X-Accepted-OAuth-Scopes": "read:packages"}
EXHAUSTED = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000000"}


@pytest.mark.parametrize(
    ("headers", "message", "kind"),
    [
        (EXHAUSTED, "API rate limit exceeded for user ID 1.", "primary"),
        (OK | {"Retry-After": "60"}, "", "secondary"),
        (OK, "You have exceeded a secondary rate limit. Please wait.", "secondary"),
        (OK | {"X-GitHub-SSO": SSO_URL}, "", "sso"),
        (OK, SAML, "sso"),
        (OK | SCOPES, "", "scope"),
        (OK | HAS_SCOPE, "Forbidden", "forbidden"),
        ({}, "Must have admin rights to Repository.", "forbidden"),
    ],
)
def test_classify_refusal(headers: dict[str, str], message: str, kind: str) -> None:
    assert classify_refusal(headers, message) == kind
    lowered = {k.lower(): v for k, v in headers.items()}  # PyGithub lowercases on one path only
    assert classify_refusal(lowered, message) == kind


def test_each_403_has_its_own_message() -> None:
    owner = Owner("orgs", "acme")
    sso = explain_refusal(
        403,
        {"x-github-sso": "required; url=https://github.com/orgs/acme/sso?authorization_request=Z"},
        "Resource protected by organization SAML enforcement.",
        owner,
    )
    assert "authorize the token for the organisation" in sso and "'acme'" in sso
    assert "https://github.com/orgs/acme/sso" in sso and "authorization_request" not in sso
    scope = explain_refusal(
        403, {"x-oauth-scopes": "repo", "x-accepted-oauth-scopes": "read:packages"}, "", owner
    )
    assert "[repo]" in scope and "[read:packages]" in scope
    other = explain_refusal(403, {}, "Must have admin rights.", owner)
    assert other == "GitHub refused access (HTTP 403) (Must have admin rights)"


async def test_rate_limits_in_process() -> None:
    """A primary limit resetting within the cap is waited out (the wait logged with the reset
    time); a secondary one past the cap ends discovery after the packages before it."""
    packages = [StandInPackage(name, [(DIGEST, ["1.0.0"])]) for name in ("a", "b", "c")]
    api = GitHubStandIn(owners={"acme": packages}, tokens={"t": {"read:packages"}}).start()
    api.faults = {
        "a": Fault("primary", times=1, reset_in=1),
        "c": Fault("secondary", retry_after=120),
    }
    github = GitHubPackages(
        Owner("orgs", "acme"), "t", api.url, request_interval_s=0, max_rate_limit_wait_s=60
    )
    found: list[Package | FailedPackage] = []
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(GitHubRateLimited) as raised:  # noqa: PT012
            async for package in github.packages(lambda _: True):
                found.append(package)
    finally:
        github.close()
        api.stop()
    assert [p.name for p in found] == ["a", "b"]
    assert all(isinstance(p, Package) for p in found)
    assert raised.value.limit == "secondary"
    assert "secondary rate limit" in str(raised.value) and "60 s" in str(raised.value)
    (wait,) = [e for e in logs if e["event"] == "github_rate_limit_wait"]
    assert wait["limit"] == "primary" and 0 < wait["wait_s"] <= 3
    assert datetime.fromisoformat(wait["resets_at"]).timestamp() <= time.time() + 1
