"""A hostile GitHub listing and a hostile git server against `repos` and `verify --repos`.

The listing comes from the GitHub stand-in, the mirrors from the real `git http-backend`, and
the attacker's endpoint is a recorder reached under another host name (``localhost`` where the
user named ``127.0.0.1``). Each run is a child process in a sandbox: the tests assert what the
attacker received, that nothing was written outside DEST/OWNER, the peak RSS and the wall time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from github_org_backup.cli import build_parser
from github_org_backup.errors import GitHubAnswerInvalid, UsageError
from github_org_backup.github.http import ApiLimits
from github_org_backup.github.repos import GitHubRepos
from github_org_backup.model.packages import Owner
from github_org_backup.repos.git import LOW_SPEED_LIMIT_BPS, Git
from github_org_backup.repos.host import GitHost
from github_org_backup.repos.mirror import DEFAULT_REPO_TIMEOUT_S
from github_org_backup.settings.repos import load_repos_config, verify_repos_options
from tests.harness.background import BackgroundLoop
from tests.harness.github_repos import GitHubReposStandIn, StandInRepo
from tests.harness.gitserver import GitServer, git
from tests.harness.hostile import Measured, Recorder, Sandbox, run_measured

pytestmark = pytest.mark.integration

ORG = "acme"
RSS_LIMIT_MIB = 200
READ_TIMEOUT_S = 3.0  # the T of "ends within 3 T", small to keep the suite fast


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.stop()


@dataclass
class Hostile:
    sandbox: Sandbox
    server: GitServer
    github: GitHubReposStandIn
    attacker: Recorder
    token: str

    @property
    def dest(self) -> Path:
        return self.sandbox.work / "mirrors"

    @property
    def out(self) -> Path:
        return self.sandbox.root / "out"

    @property
    def report_path(self) -> Path:
        return self.out / "report.json"

    def env(self) -> dict[str, str]:
        return {"GITHUB_TOKEN": self.token, "GITHUB_API_URL": self.github.url}

    def add(self, name: str) -> None:
        self.github.owners.setdefault(ORG, []).append(StandInRepo(name, has_wiki=False))
        self.server.create(ORG, name)

    def raw(self, name: str, clone_url: str, owner: str = ORG, **fields: Any) -> None:
        """A listing entry as the attacker writes it."""
        self.github.owners.setdefault(ORG, [])
        entry = {"name": name, "owner": {"login": owner}, "clone_url": clone_url} | fields
        self.github.raw.setdefault(ORG, []).append(entry)

    def repos(self, *extra: str, timeout: float = 60) -> Measured:
        args = ["repos", "--org", ORG, "--dest", str(self.dest), "--report", str(self.report_path)]
        return run_measured(
            [*args, "--log-format", "json", *extra], self.sandbox, self.env(), timeout
        )

    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.report_path.read_text()))

    def entry(self, name: str) -> dict[str, Any]:
        found = [r for r in self.report()["repositories"] if r["repository"] == name]
        assert len(found) == 1, self.report()
        return dict(found[0])

    def secrets(self) -> list[str]:
        basic = base64.b64encode(f"github-org-backup:{self.token}".encode()).decode()
        return [self.token, basic, base64.b64encode(self.token.encode()).decode()]

    def assert_contained(self, result: Measured, wall_s: float) -> None:
        """Nothing reached the attacker, nothing outside DEST/OWNER, within RSS and time."""
        assert "Traceback" not in result.stderr, result
        assert self.attacker.received == [], self.attacker.received
        assert self.attacker.saw_secret(*self.secrets()) == []
        assert self.sandbox.files_outside(self.dest / ORG, self.out) == [], result
        assert result.peak_rss_mib <= RSS_LIMIT_MIB, result
        assert result.wall_s <= wall_s, result
        assert not result.timed_out, result


@pytest.fixture
def hostile(tmp_path: Path, loop: BackgroundLoop) -> Iterator[Hostile]:
    token = "ghp_" + secrets.token_hex(18)
    sandbox = Sandbox.make(tmp_path)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = GitHubReposStandIn(server.url, tokens={token: "backup-bot"}).start()
    attacker = Recorder(loop).start()
    (sandbox.root / "out").mkdir()
    yield Hostile(sandbox, server, github, attacker, token)
    github.stop()
    server.stop()


def elsewhere(hostile: Hostile, path: str) -> str:
    """The attacker's URL: loopback, but not the host the user named."""
    return f"http://localhost:{hostile.attacker.port}{path}"


# Credentials go only where the user pointed


def test_a_listing_pointing_elsewhere_fails_those_repositories_only(hostile: Hostile) -> None:
    """Clone URLs on another host, another owner's repository, names that climb out of DEST,
    odd characters, credentials in the URL and a folder listed twice: each is refused as that
    repository's failure with a reason naming the host; the token goes nowhere else, nothing is
    written outside DEST/acme, and the good repository is mirrored."""
    hostile.add("app")
    hostile.server.create("victim", "app")
    git_url = hostile.server.url
    hostile.raw("stolen", elsewhere(hostile, "/acme/stolen.git"))
    hostile.raw("other-path", f"{git_url}/victim/app.git")
    hostile.raw("app", f"{git_url}/victim/app.git", owner="victim")
    hostile.raw("APP", f"{git_url}/acme/APP.git")
    hostile.raw("creds", git_url.replace("http://", "http://u:p@") + "/acme/creds.git")
    hostile.raw("ftp", "ftp://127.0.0.1/acme/ftp.git")
    for name in ("..", "../../escape", "a/b", "/abs", "x y", "ａpp"):
        hostile.raw(name, f"{git_url}/acme/{name}.git")

    result = hostile.repos()

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=30)
    assert hostile.entry(f"{ORG}/app")["status"] == "copied"
    errors = {r["repository"]: r["error"] for r in hostile.report()["repositories"] if r["error"]}
    assert "'localhost' is not '127.0.0.1'" in errors[f"{ORG}/stolen"]
    assert "is not the repository acme/other-path" in errors[f"{ORG}/other-path"]
    assert "not 'acme'" in errors["victim/app"]
    assert "listed twice" in errors[f"{ORG}/APP"]
    assert "carries credentials" in errors[f"{ORG}/creds"]
    assert "uses ftp" in errors[f"{ORG}/ftp"]
    assert len(errors) == 12, errors
    assert sorted(p.name for p in hostile.dest.iterdir()) == [ORG]
    assert sorted(p.name for p in (hostile.dest / ORG).iterdir()) == ["app.git"]
    assert not any("/victim/" in r for r in hostile.server.requests)


def test_a_repository_named_like_a_wiki_never_shares_its_folder(hostile: Hostile) -> None:
    """A listed repository `app.wiki` and the wiki of `app` would both be app.wiki.git: the
    repository keeps the folder, the wiki fails with the reason, nothing is mixed."""
    hostile.github.owners[ORG] = [StandInRepo("app", has_wiki=True)]
    hostile.server.create(ORG, "app")
    hostile.server.create(ORG, "app.wiki", {"Home.md": "# Home"})
    hostile.raw("app.wiki", hostile.server.clone_url(ORG, "app.wiki"))

    result = hostile.repos("--wikis")

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=30)
    report = hostile.report()["repositories"]
    assert {(r["repository"], r["kind"], r["status"]) for r in report} == {
        (f"{ORG}/app", "repository", "copied"),
        (f"{ORG}/app.wiki", "repository", "copied"),
        (f"{ORG}/app.wiki", "wiki", "failed"),
    }
    wiki = next(r for r in report if r["kind"] == "wiki")
    assert "app.wiki.git is taken by acme/app.wiki" in wiki["error"]


def test_verify_sends_no_token_to_a_remote_repointed_elsewhere(hostile: Hostile) -> None:
    """A mirror whose remote.origin.url was changed to another host is reported, and
    verify --repos never contacts that host; the other mirror is still compared."""
    hostile.add("app")
    hostile.add("lib")
    assert hostile.repos().returncode == 0
    mirror = hostile.dest / ORG / "app.git"
    git(
        "config",
        "remote.origin.url",
        elsewhere(hostile, "/acme/app.git"),
        env={"GIT_DIR": str(mirror)},
    )
    hostile.server.reset_counters()

    result = run_measured(
        ["verify", "--repos", str(hostile.dest), "--report", str(hostile.out / "v.json")],
        hostile.sandbox,
        hostile.env(),
        timeout=60,
    )

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=20)
    assert "acme/app.git: not compared with the source, and the token not sent" in result.stdout
    assert "'localhost'" in result.stdout
    assert "acme/lib.git" not in result.stdout
    assert any("/acme/lib.git/" in r for r in hostile.server.requests)


def test_a_redirect_from_the_git_host_is_not_followed(hostile: Hostile) -> None:
    """The git server answering 302 to another host: git follows no redirect, so the attacker
    receives nothing, and only that repository fails."""
    hostile.add("app")
    hostile.add("moved")
    hostile.server.redirect[f"{ORG}/moved.git"] = elsewhere(hostile, "")

    result = hostile.repos()

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=30)
    assert hostile.entry(f"{ORG}/app")["status"] == "copied"
    assert "302" in hostile.entry(f"{ORG}/moved")["error"]
    assert not (hostile.dest / ORG / "moved.git").exists()


def test_lfs_downloads_on_another_host_get_no_token(hostile: Hostile) -> None:
    """An LFS batch answer sending the download to another host: git-lfs goes there, as it
    must for GitHub's object store, but without the token. It retries a refused download for
    about 36 s: --repo-timeout (5 s here) ends it, and that repository fails alone."""
    hostile.add("app")
    hostile.add("assets")
    hostile.server.add_lfs_object(ORG, "assets", "main", "blob.bin", secrets.token_bytes(2000))
    hostile.server.lfs_href_base = elsewhere(hostile, "")

    result = hostile.repos("--lfs", "--repo-timeout", "5")

    assert result.returncode == 1, result
    assert [r.path_qs.split("/")[1] for r in hostile.attacker.received] == ["lfs-object"] * len(
        hostile.attacker.received
    )
    assert all(r.header("Authorization") is None for r in hostile.attacker.received)
    hostile.attacker.received.clear()  # reached, as designed: now the usual containment
    hostile.assert_contained(result, wall_s=15)
    assert hostile.entry(f"{ORG}/app")["status"] == "copied"
    assets = hostile.entry(f"{ORG}/assets")
    assert assets["status"] == "failed" and "--repo-timeout 5 s" in assets["error"], assets


def test_verify_repos_refuses_the_registry_bounds() -> None:
    """verify --repos refuses --min-speed and the other image-only bounds instead of
    ignoring them."""
    args = build_parser().parse_args(["verify", "--repos", ".", "--min-speed", "5"])
    with pytest.raises(UsageError, match="--min-speed: for image backups only"):
        verify_repos_options(args, {})


# Git bounds


def test_a_trickling_git_server_ends_within_three_read_timeouts(hostile: Hostile) -> None:
    """A git server sending 2 bytes/s is abandoned by the low-speed limit within 3 T of
    --read-timeout T; the other repository is mirrored and the run ends."""
    hostile.add("fine")
    hostile.add("slow")
    hostile.server.trickle_bps[f"{ORG}/slow.git"] = 2

    result = hostile.repos("--read-timeout", str(READ_TIMEOUT_S))

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=3 * READ_TIMEOUT_S + 8)
    slow = hostile.entry(f"{ORG}/slow")
    assert slow["status"] == "failed" and "slow" in slow["error"].lower()
    assert slow["duration_s"] <= 3 * READ_TIMEOUT_S, slow
    assert hostile.entry(f"{ORG}/fine")["status"] == "copied"
    assert not list((hostile.dest / ORG).glob(".*partial"))


def test_a_git_server_sending_without_end_meets_the_repo_timeout(hostile: Hostile) -> None:
    """An endless ref advertisement at 32 KiB/s (above the low-speed limit) is killed at
    --repo-timeout; the other repository is mirrored."""
    hostile.add("fine")
    hostile.add("endless")
    hostile.server.endless_bps[f"{ORG}/endless.git"] = 32 * 1024

    result = hostile.repos("--repo-timeout", "3", "--read-timeout", "30")

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=15)
    endless = hostile.entry(f"{ORG}/endless")
    assert "--repo-timeout 3 s" in endless["error"]
    assert endless["duration_s"] <= 5, endless
    assert hostile.entry(f"{ORG}/fine")["status"] == "copied"
    assert not (hostile.dest / ORG / "endless.git").exists()


def test_an_lfs_batch_api_falling_silent_ends_at_the_read_timeout(hostile: Hostile) -> None:
    """git-lfs has no low-speed limit, but lfs.activitytimeout (--read-timeout) ends a batch
    answer that falls silent (a byte every 5 s here); only a steady trickle is left to
    --repo-timeout."""
    hostile.add("assets")
    hostile.server.add_lfs_object(ORG, "assets", "main", "blob.bin", secrets.token_bytes(2000))
    hostile.server.trickle_bps[f"{ORG}/assets.git"] = 0.2
    hostile.server.trickle_only_lfs = True

    result = hostile.repos("--lfs", "--read-timeout", str(READ_TIMEOUT_S))

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=3 * READ_TIMEOUT_S + 8)
    assets = hostile.entry(f"{ORG}/assets")
    assert "timeout" in assets["error"] and assets["duration_s"] <= 3 * READ_TIMEOUT_S, assets


def test_the_default_git_bounds() -> None:
    """Without flags: a 1 KiB/s low-speed limit over --read-timeout (300 s), no redirects,
    http(s) only, and a 3600 s deadline per repository; the token only for the git host."""
    args = build_parser().parse_args(["repos", "--org", ORG])
    config = load_repos_config(args, {"GITHUB_TOKEN": "ghp_default"})
    assert config.git.repo_timeout_s == DEFAULT_REPO_TIMEOUT_S == 3600
    env = Git(config.git).environment("https://github.com/acme/app.git")
    settings = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert settings["http.lowSpeedLimit"] == str(LOW_SPEED_LIMIT_BPS) == "1024"
    assert settings["http.lowSpeedTime"] == settings["lfs.activitytimeout"] == "300"
    assert settings["http.followRedirects"] == "false"
    assert env["GIT_ALLOW_PROTOCOL"] == "http:https"
    assert settings["http.https://github.com/.extraHeader"].startswith("Authorization: Basic")
    foreign = Git(config.git).environment("https://github.com.evil.example/acme/app.git")
    assert not any("extraHeader" in v for k, v in foreign.items() if k.startswith("GIT_CONFIG"))


@pytest.mark.parametrize(
    ("api", "url", "refused_because"),
    [
        ("https://api.github.com", "https://github.com/acme/app.git", None),
        ("https://api.github.com", "https://GitHub.com/Acme/App.git", None),
        ("https://api.github.com", "http://github.com/acme/app.git", "uses http"),
        ("https://api.github.com", "https://api.github.com/acme/app.git", "is not 'github.com'"),
        ("https://api.github.com", "https://github.com.evil.example/acme/app.git", "is not"),
        ("https://api.github.com", "https://github.com@evil.example/acme/app.git", "credentials"),
        ("https://api.github.com", "https://evil.example\\@github.com/acme/app.git", "charact"),
        ("https://api.github.com", "https://github.com/acme/app.git?x=1", "not the repository"),
        ("https://api.github.com", "https://github.com/acme/../x/app.git", "not the repository"),
        ("https://ghes.example/api/v3", "https://ghes.example:8443/acme/app.git", None),
        ("https://ghes.example/api/v3", "http://ghes.example/acme/app.git", "uses http"),
        ("https://ghes.example/api/v3", "https://github.com/acme/app.git", "is not"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:6000/acme/app.git", None),
        ("http://127.0.0.1:5000", "https://127.0.0.1/acme/app.git", None),
        ("http://127.0.0.1:5000", "http://127.0.0.1:bad/acme/app.git", "invalid port"),
        ("https://api.github.com", "https://[x/acme/app.git", "not a valid URL"),
    ],
)
def test_the_git_host_of_an_api(api: str, url: str, refused_because: str | None) -> None:
    """github.com for api.github.com, the API's own host on any port otherwise; https unless
    the API is http; the clone URL must be the listed repository's own."""
    refusal = GitHost.for_api(api).refusal(url, "/acme/app.git")
    if refused_because is None:
        assert refusal is None
    else:
        assert refusal is not None and refused_because in refusal


def test_one_repository_pointing_elsewhere_is_its_own_failure_not_a_setting() -> None:
    """The one-foreign-host rule (a GHES under another name) needs two repositories or more:
    a single listed repository on another host, or on no valid URL at all, fails alone."""
    from github_org_backup.github.repos import Repo
    from github_org_backup.repos.screen import refuse_one_foreign_host

    config = SimpleNamespace(git_host=GitHost.for_api("https://api.github.com"), api_url="x")
    for url in ("https://evil.example/acme/app.git", "https://[x/acme/app.git"):
        lone = Repo("acme", "app", url)
        refuse_one_foreign_host([lone], config)  # type: ignore[arg-type]


# GitHub's answers


def test_an_entry_without_optional_fields_is_used_as_listed(hostile: Hostile) -> None:
    """Entries holding only name, owner and clone URL: nothing is fetched lazily (no
    /repos/{owner}/{repo}), a repository deleted since it was listed fails alone, and every
    request carries the pinned Accept and X-GitHub-Api-Version."""
    hostile.server.create(ORG, "lean")
    hostile.raw("lean", hostile.server.clone_url(ORG, "lean"))
    hostile.raw("gone", hostile.server.clone_url(ORG, "gone"))

    result = hostile.repos()

    assert result.returncode == 1, result
    hostile.assert_contained(result, wall_s=30)
    assert hostile.entry(f"{ORG}/lean")["status"] == "copied"
    assert "not found" in hostile.entry(f"{ORG}/gone")["error"]
    assert not any(p.startswith("/repos/") for p in hostile.github.requests)
    assert hostile.github.received
    for path, headers in hostile.github.received:
        assert headers.get("Accept") == "application/vnd.github+json", (path, headers)
        assert headers.get("X-GitHub-Api-Version") == "2022-11-28", (path, headers)


def test_the_user_listing_carries_the_pinned_headers_too(hostile: Hostile) -> None:
    """--user reads /user and /user/repos with the same pinned headers."""
    hostile.github.users.add("backup-bot")
    hostile.github.owners["backup-bot"] = [StandInRepo("mine", has_wiki=False)]
    hostile.server.create("backup-bot", "mine")
    args = ["repos", "--user", "backup-bot", "--dest", str(hostile.dest)]
    result = run_measured(args, hostile.sandbox, hostile.env(), timeout=60)
    assert result.returncode == 0, result
    paths = [path for path, _ in hostile.github.received]
    assert paths[0] == "/user" and paths[1].startswith("/user/repos?")
    assert all(
        h.get("Accept") == "application/vnd.github+json"
        and h.get("X-GitHub-Api-Version") == "2022-11-28"
        for _, h in hostile.github.received
    )


@pytest.mark.parametrize("where", ["next-page link", "clone URLs"])
def test_answers_naming_another_host_are_a_configuration_error(
    hostile: Hostile, where: str
) -> None:
    """A GHES whose answers name another host (a load balancer, an internal name) than
    --github-api-url: exit 2 naming both hosts, and nothing is sent to the other one."""
    github_port = hostile.github.url.rsplit(":", 1)[1]
    if where == "next-page link":
        hostile.github.public_url = f"http://localhost:{github_port}"
        for i in range(101):
            hostile.github.owners.setdefault(ORG, []).append(StandInRepo(f"r{i:03}"))
    else:
        hostile.github.git_url = hostile.server.url.replace("127.0.0.1", "localhost")
        hostile.add("app")
        hostile.add("lib")

    result = hostile.repos()

    assert result.returncode == 2, result
    hostile.assert_contained(result, wall_s=20)
    message = result.stderr
    assert "127.0.0.1" in message and "localhost" in message, result
    assert "--github-api-url" in message
    hosts = {h.get("Host", "") for _, h in hostile.github.received}
    assert all(h.startswith("127.0.0.1") for h in hosts), hosts
    assert hostile.server.requests == []
    assert hostile.token not in message


def test_an_oversized_listing_page_fails_the_listing_within_bounded_memory(
    hostile: Hostile,
) -> None:
    """A 24 MiB page is refused (GITHUB_API_MAX_PAGE_BYTES, 10 MiB by default): the listing
    fails (exit 2: nothing could be mirrored; named), RSS stays bounded and nothing is
    fetched."""
    hostile.add("app")
    hostile.github.padding_bytes = 24 * 2**20

    result = hostile.repos()

    assert result.returncode == 2, result
    hostile.assert_contained(result, wall_s=30)
    error = hostile.report()["summary"]["discovery_error"]
    assert "GITHUB_API_MAX_PAGE_BYTES" in error and "127.0.0.1" in error
    assert hostile.server.requests == []


def test_endless_listing_pages_stop_at_the_page_cap(hostile: Hostile) -> None:
    """Every page linking a next one: the listing stops after GITHUB_API_MAX_PAGES pages (5
    here, 1000 by default) and fails, named; nothing is fetched."""
    hostile.add("app")
    hostile.github.endless = True
    result = run_measured(
        ["repos", "--org", ORG, "--dest", str(hostile.dest), "--report", str(hostile.report_path)],
        hostile.sandbox,
        hostile.env() | {"GITHUB_API_MAX_PAGES": "5"},
        timeout=60,
    )
    assert result.returncode == 2, result  # the listing failed: nothing could be mirrored
    hostile.assert_contained(result, wall_s=20)
    assert "more than 5 pages" in hostile.report()["summary"]["discovery_error"]
    assert len(hostile.github.requests) == 5
    assert hostile.server.requests == []


def test_a_trickled_listing_page_fails_at_its_deadline(loop: BackgroundLoop) -> None:
    """A page trickled a byte at a time is refused at the page deadline (1 s here, 60 s by
    default), though every byte arrives well inside the socket timeout."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(b"[")
            for _ in range(200):
                await asyncio.sleep(0.05)
                await response.write(b" ")
            await response.write(b"]")
        except (ConnectionError, RuntimeError):
            pass
        return response

    api = Recorder(loop, trickle).start()
    limits = ApiLimits(read_deadline_s=1.0)
    github = GitHubRepos(Owner("orgs", ORG), "ghp_unused", api.url, retries=0, limits=limits)
    started = time.monotonic()
    try:
        with pytest.raises(GitHubAnswerInvalid, match="took longer than 1 s"):
            asyncio.run(github.repositories())
    finally:
        github.close()
    assert time.monotonic() - started < 4
    assert api.received[0].header("X-GitHub-Api-Version") == "2022-11-28"
