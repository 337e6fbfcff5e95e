"""The repos command against a real `git http-backend` behind Basic auth, listed by a GitHub
stand-in: first mirror, incremental runs through force-pushes and deletions, token canaries,
failures of one repository, wikis, LFS, SIGTERM, verify --repos and the documented restore."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from github_org_backup.output.summary import markdown_text
from tests.harness.clirun import COMMAND, ROOT, cli_env, run_cli
from tests.harness.github_repos import GitHubReposStandIn, StandInRepo
from tests.harness.gitserver import GitServer, git
from tests.harness.repos_world import ReposPlaces

ORG = "acme"


@dataclass
class World(ReposPlaces):
    server: GitServer
    github: GitHubReposStandIn
    token: str
    tmp: Path
    dest_folder: ClassVar[str] = "mirrors"

    def env(self, **extra: str) -> dict[str, str]:
        return {"GITHUB_TOKEN": self.token, "GITHUB_API_URL": self.github.url} | extra

    def add(self, name: str, *, on_server: bool = True, **listing: Any) -> StandInRepo:
        repo = StandInRepo(name, **listing)
        self.github.owners.setdefault(ORG, []).append(repo)
        if on_server:
            self.server.create(ORG, name)
        return repo

    def run(
        self, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(self.args(*extra), self.tmp, env=env or self.env(), timeout=240)

    def entry(self, name: str) -> dict[str, Any]:
        found = [r for r in self.report()["repositories"] if r["repository"] == name]
        assert len(found) == 1, self.report()
        return found[0]

    def mirror(self, name: str) -> Path:
        return self.dest / ORG / f"{name}.git"

    def mirror_refs(self, name: str, prefix: str = "refs/") -> dict[str, str]:
        out = git(
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            prefix,
            env={"GIT_DIR": str(self.mirror(name))},
        )
        return {ref: sha for sha, ref in (line.split(" ", 1) for line in out.splitlines())}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = GitHubReposStandIn(server.url, tokens={token: "backup-bot"}).start()
    yield World(server, github, token, tmp_path)
    github.stop()
    server.stop()


def heads_and_tags(refs: dict[str, str]) -> dict[str, str]:
    return {r: s for r, s in refs.items() if r.startswith(("refs/heads/", "refs/tags/"))}


# First mirror


def test_first_run_mirrors_every_listed_repository(world: World) -> None:
    """Private, internal, public and archived repositories become bare mirrors with every
    branch and tag, found on the second page of the listing; forks are left out."""
    for i in range(101):  # page one of the listing: filtered out by --include-repo
        world.add(f"filler{i:03}", on_server=False)
    world.add("app", visibility="private")
    world.add("tools", visibility="internal", default_branch="trunk")
    world.add("site", visibility="public", archived=True)
    world.add("forked", fork=True)
    world.server.commit(ORG, "app", "feature/x", {"x.txt": "x"}, "feature")
    world.server.commit(ORG, "tools", "trunk", {"t.txt": "t"}, "trunk")
    main = world.server.refs(ORG, "app")["refs/heads/main"]
    world.server.set_ref(ORG, "app", "refs/tags/v1.0.0", main)

    result = world.run(
        "--include-repo",
        "app",
        "--include-repo",
        "tools",
        "--include-repo",
        "site",
        "--include-repo",
        "forked",
    )

    assert result.returncode == 0, result.stderr
    summary = world.report()["summary"]
    assert summary["repositories_copied"] == 3
    assert summary["repositories_failed"] == 0
    assert summary["repositories_listed"] == 105
    for name in ("app", "tools", "site"):
        mirror = world.mirror(name)
        assert git("rev-parse", "--is-bare-repository", env={"GIT_DIR": str(mirror)}) == "true"
        assert heads_and_tags(world.mirror_refs(name)) == world.server.refs(ORG, name)
        origin = git("config", "remote.origin.url", env={"GIT_DIR": str(mirror)})
        assert origin == world.server.clone_url(ORG, name)
        assert world.entry(f"{ORG}/{name}")["status"] == "copied"
    assert not world.mirror("forked").exists()
    tools_head = git("symbolic-ref", "HEAD", env={"GIT_DIR": str(world.mirror("tools"))})
    assert tools_head == "refs/heads/trunk"
    assert not any(p.name.startswith(".") for p in (world.dest / ORG).iterdir())

    assert world.run("--include-forks", "--include-repo", "forked").returncode == 0
    assert heads_and_tags(world.mirror_refs("forked")) == world.server.refs(ORG, "forked")


def test_pull_refs_only_when_asked(world: World) -> None:
    """GitHub's refs/pull/* are fetched with --pull-refs, and not without it."""
    world.add("app")
    head = world.server.commit(ORG, "app", "topic", {"p.txt": "p"}, "pr")
    world.server.set_ref(ORG, "app", "refs/pull/1/head", head)
    world.server.set_ref(ORG, "app", "refs/heads/topic", None)

    assert world.run().returncode == 0
    assert world.mirror_refs("app", "refs/pull/") == {}
    assert world.run("--pull-refs").returncode == 0
    assert world.mirror_refs("app", "refs/pull/") == {"refs/pull/1/head": head}


# Incremental runs


def test_incremental_run_keeps_what_the_source_rewrote_or_deleted(world: World) -> None:
    """New commits, a new branch, a force-push, a deleted branch and a moved tag: the mirror
    follows the source, and every tip the source dropped stays under refs/backup/<time>/."""
    world.add("app")
    world.add("lib")
    s = world.server
    s.commit(ORG, "app", "dev", {"d.txt": "1"}, "dev work")
    s.commit(ORG, "app", "old", {"o.txt": "1"}, "old work")
    s.set_ref(ORG, "app", "refs/tags/v1", s.refs(ORG, "app")["refs/heads/main"])
    assert world.run().returncode == 0
    before = world.mirror_refs("app")

    s.commit(ORG, "app", "main", {"m.txt": "2"}, "more on main")
    s.commit(ORG, "app", "new", {"n.txt": "1"}, "a new branch")
    forced = s.commit(ORG, "app", "dev", {"d.txt": "rewritten"}, "rewritten", parent=None)
    s.set_ref(ORG, "app", "refs/heads/old", None)
    s.set_ref(ORG, "app", "refs/tags/v1", forced)
    result = world.run()

    assert result.returncode == 0, result.stderr
    assert heads_and_tags(world.mirror_refs("app")) == s.refs(ORG, "app")
    stamp = world.report()["summary"]["backup_ref_prefix"]
    assert stamp.startswith("refs/backup/") and stamp.endswith("Z/")
    kept = world.mirror_refs("app", "refs/backup/")
    assert kept == {
        f"{stamp}heads/dev": before["refs/heads/dev"],
        f"{stamp}heads/old": before["refs/heads/old"],
        f"{stamp}tags/v1": before["refs/tags/v1"],
    }
    for sha in kept.values():  # the commits themselves, not just the names
        git("cat-file", "-e", f"{sha}^{{commit}}", env={"GIT_DIR": str(world.mirror("app"))})
    app = world.entry(f"{ORG}/app")
    assert app["status"] == "copied"
    changes = {c["ref"]: (c["change"], c["kept_as"]) for c in app["ref_changes"]}
    assert changes == {
        "refs/heads/main": ("fast-forward", None),
        "refs/heads/new": ("created", None),
        "refs/heads/dev": ("forced", f"{stamp}heads/dev"),
        "refs/heads/old": ("deleted", f"{stamp}heads/old"),
        "refs/tags/v1": ("forced", f"{stamp}tags/v1"),
    }
    assert world.entry(f"{ORG}/lib")["status"] == "unchanged"
    summary = world.report()["summary"]
    assert (summary["refs_updated"], summary["refs_kept"]) == (5, 3)
    assert summary["repositories_copied"] == summary["repositories_unchanged"] == 1
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert {e["ref"] for e in events if e["event"] == "ref_rewritten_at_source"} == {
        "refs/heads/dev",
        "refs/heads/old",
        "refs/tags/v1",
    }

    assert world.run().returncode == 0  # nothing changed since: nothing moves
    assert world.report()["summary"]["repositories_unchanged"] == 2
    assert world.mirror_refs("app", "refs/backup/") == kept
    assert world.mirror_refs("app", "refs/incoming/") == {}


def test_warm_run_with_nothing_changed_fetches_only_the_ref_listing(world: World) -> None:
    """A second run against unchanged repositories downloads no pack, only ref listings."""
    for i in range(5):
        world.add(f"r{i}")
        world.server.commit(ORG, f"r{i}", "main", {"big.txt": secrets.token_hex(20000)}, "data")
    assert world.run().returncode == 0
    cold = world.server.bytes_sent
    world.server.reset_counters()
    assert world.run().returncode == 0
    warm = world.server.bytes_sent
    assert world.report()["summary"]["repositories_unchanged"] == 5
    assert warm < 600 * 5 < cold
    assert world.server.requests.count("POST /acme/r0.git/git-upload-pack") == 1


# Tokens


def _token_forms(world: World) -> list[bytes]:
    basic = base64.b64encode(f"github-org-backup:{world.token}".encode())
    return [world.token.encode(), basic, base64.b64encode(world.token.encode())]


def test_token_never_in_argv_files_or_logs(world: World) -> None:
    """While a run is fetching, no process's command line holds the token; afterwards no file
    under the mirrors, the report, the temporary directory or the logs does."""
    for i in range(12):
        world.add(f"repo{i:02}")
    world.server.delay_s = 0.05
    tmpdir = world.tmp / "tmpdir"
    tmpdir.mkdir()
    forms = _token_forms(world)
    env = cli_env(world.tmp, world.env(TMPDIR=str(tmpdir)))
    process = subprocess.Popen(
        [*COMMAND, *world.args("--concurrency", "2", "--wikis")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen_git = 0
    while process.poll() is None:
        # Listing /proc by name and reading each entry in one step: a process may exit between
        # the listing and the read, and pathlib's glob would stat (and fail on) it in between.
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path("/proc", pid, "cmdline").read_bytes()
            except OSError:
                continue
            assert not any(form in argv for form in forms), argv
            seen_git += b"git" in argv.split(b"\0")[0] and b"fetch" in argv
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert seen_git > 0, "the scan never saw a git fetch running"
    assert any(
        world.token in base64.b64decode(a.split(" ")[1]).decode()
        for a in world.server.authorizations
        if a
    )  # the token was used
    for path in [*world.dest.rglob("*"), *tmpdir.rglob("*"), world.report_path]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(form in data for form in forms), path
    assert not any(form in out + err for form in forms)
    assert (world.mirror("repo00") / "config").read_text().count("127.0.0.1") == 1


def test_refused_token_is_a_failure_without_the_token(world: World) -> None:
    """A git server refusing the token fails each repository with a hint, never echoing it."""
    world.add("app")
    world.server.tokens.clear()
    result = world.run()
    assert result.returncode == 1
    error = world.entry(f"{ORG}/app")["error"]
    assert "check GITHUB_TOKEN" in error
    assert world.token not in result.stderr + world.report_path.read_text()


# One repository failing


def test_one_failing_repository_fails_only_itself(world: World) -> None:
    """A 500 on one repository and another listed but gone from the git server: those two fail
    with their reason, the rest are mirrored, and the run exits 1."""
    for name in ("alpha", "broken", "gamma"):
        world.add(name)
    world.add("vanished", on_server=False)
    world.server.failing[f"{ORG}/broken.git"] = 500

    result = world.run()

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    summary = world.report()["summary"]
    assert (summary["repositories_copied"], summary["repositories_failed"]) == (2, 2)
    assert "500" in world.entry(f"{ORG}/broken")["error"]
    assert "not found" in world.entry(f"{ORG}/vanished")["error"]
    assert not world.mirror("broken").exists()
    assert not list((world.dest / ORG).glob(".*partial"))
    for name in ("alpha", "gamma"):
        assert heads_and_tags(world.mirror_refs(name)) == world.server.refs(ORG, name)

    # A failure on a later run leaves the earlier mirror as it was.
    before = world.mirror_refs("alpha")
    world.server.commit(ORG, "alpha", "main", {"z": "z"}, "more")
    world.server.failing[f"{ORG}/alpha.git"] = 503
    assert world.run().returncode == 1
    assert world.mirror_refs("alpha") == before


def test_a_name_that_would_escape_dest_fails_only_that_repository(world: World) -> None:
    """A listed name that is not a GitHub name is refused; the others are mirrored."""
    world.add("good")
    world.add("..", on_server=False)
    result = world.run()
    assert result.returncode == 1
    assert "not a GitHub owner or repository name" in world.entry(f"{ORG}/..")["error"]
    assert world.entry(f"{ORG}/good")["status"] == "copied"
    assert sorted(p.name for p in world.dest.rglob("*.git")) == ["good.git"]


# Wikis and LFS


def test_wikis_are_mirrored_and_a_missing_wiki_is_not_a_failure(world: World) -> None:
    """--wikis mirrors REPO.wiki.git when it exists; has_wiki with no wiki is 'absent'."""
    world.add("documented")
    world.server.create(ORG, "documented.wiki", {"Home.md": "# Home\n"})
    world.add("bare", has_wiki=True)
    world.add("nowiki", has_wiki=False)

    assert world.run().returncode == 0
    assert not world.mirror("documented.wiki").exists()
    result = world.run("--wikis")

    assert result.returncode == 0, result.stderr
    wiki = world.mirror("documented.wiki")
    assert heads_and_tags(world.mirror_refs("documented.wiki")) == world.server.refs(
        ORG, "documented.wiki"
    )
    assert world.entry(f"{ORG}/documented.wiki")["kind"] == "wiki"
    assert world.entry(f"{ORG}/bare.wiki")["status"] == "absent"
    assert world.report()["summary"]["wikis_absent"] == 1
    assert not world.mirror("bare.wiki").exists() and wiki.is_dir()
    assert f"{ORG}/nowiki.wiki" not in {r["repository"] for r in world.report()["repositories"]}


def test_lfs_objects_are_fetched_with_lfs(world: World) -> None:
    """--lfs fetches every LFS object through the batch API, with the token from the env."""
    world.add("assets")
    data = secrets.token_bytes(3000)
    oid = world.server.add_lfs_object(ORG, "assets", "main", "blob.bin", data)

    assert world.run().returncode == 0
    assert not (world.mirror("assets") / "lfs").exists()
    result = world.run("--lfs")

    assert result.returncode == 0, result.stderr
    stored = world.mirror("assets") / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    assert stored.read_bytes() == data
    assert world.entry(f"{ORG}/assets")["lfs_objects"] == 1
    assert any(r.endswith("/info/lfs/objects/batch") for r in world.server.requests)
    assert not any(
        form in p.read_bytes()
        for p in world.dest.rglob("*")
        if p.is_file()
        for form in _token_forms(world)
    )


# Operating model


def test_sigterm_stops_within_the_grace_period_and_writes_the_report(world: World) -> None:
    """SIGTERM: no new repository starts, the one in flight is abandoned after the grace
    period without touching its refs, the report is written and the exit status is 143."""
    for i in range(6):
        world.add(f"slow{i}")
    world.server.delay_s = 0.6
    env = cli_env(world.tmp, world.env())
    process = subprocess.Popen(
        [*COMMAND, *world.args("--concurrency", "1", "--grace-period", "0.2")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not world.server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 143, err
    report = world.report()
    assert report["summary"]["interrupted"] is True
    errors = [r["error"] for r in report["repositories"] if r["status"] == "failed"]
    assert errors and all(("grace period" in e) or ("not started" in e) for e in errors)
    assert sum("not started" in e for e in errors) >= 4
    assert not list((world.dest / ORG).glob(".*partial")) if (world.dest / ORG).exists() else True


def test_a_second_signal_abandons_the_repositories_in_flight_at_once(world: World) -> None:
    """A second SIGTERM cuts a long grace period short: exit 143 well inside it, the report
    written, the repository in flight named as abandoned by the second signal."""
    for i in range(4):
        world.add(f"slow{i}")
    world.server.delay_s = 3.0
    env = cli_env(world.tmp, world.env())
    process = subprocess.Popen(
        [*COMMAND, *world.args("--concurrency", "1", "--grace-period", "120")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not world.server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert process.poll() is None  # the first signal waits for the work in flight
    cut_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert time.monotonic() - cut_at < 20, err
    assert '"grace_period_cut"' in err
    errors = [r["error"] for r in world.report()["repositories"] if r["status"] == "failed"]
    assert any("a second signal cut the grace period short" in e for e in errors), errors


def test_metrics_file_has_repos_metrics(world: World) -> None:
    """--metrics-file writes the repos metrics under names of their own."""
    world.add("app")
    metrics = world.tmp / "repos.prom"
    assert world.run("--metrics-file", str(metrics)).returncode == 0
    text = metrics.read_text()
    assert 'github_org_backup_repos_repositories{outcome="copied"} 1.0' in text
    assert "github_org_backup_repos_last_run_success 1.0" in text
    assert "github_org_backup_repos_last_success_timestamp_seconds" in text


def test_user_repositories_include_private_ones_for_the_token_owner(world: World) -> None:
    """--user NAME, when the token is NAME's, lists its private repositories too."""
    world.github.users.add("backup-bot")
    world.github.owners["backup-bot"] = [
        StandInRepo("secret"),
        StandInRepo("open", visibility="public"),
    ]
    for name in ("secret", "open"):
        world.server.create("backup-bot", name)
    args = [
        "repos",
        "--user",
        "backup-bot",
        "--dest",
        str(world.dest),
        "--report",
        str(world.report_path),
    ]
    result = run_cli(args, world.tmp, env=world.env())
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (world.dest / "backup-bot").iterdir()) == [
        "open.git",
        "secret.git",
    ]


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--org", ORG], {"GITHUB_TOKEN": ""}, "no GitHub token"),
        (["--org", ORG], {"GITHUB_TOKEN": "wrong"}, "HTTP 401"),
        (["--org", "nobody"], {}, "'nobody' not found"),
        ([], {}, "name exactly one owner"),
        (["--org", ORG, "--dest", "oci:./x"], {}, "writes git mirrors to a directory"),
    ],
)
def test_usage_errors_exit_2_with_a_hint(
    world: World, args: list[str], env: dict[str, str], needle: str
) -> None:
    """Missing or refused tokens, unknown owners and bad destinations: exit 2, no traceback."""
    world.add("app")
    result = run_cli(["repos", *args], world.tmp, env=world.env() | env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


# verify --repos


def test_verify_repos_runs_fsck_and_compares_with_the_source(world: World) -> None:
    """verify --repos passes on a fresh backup, reports a source ahead of the mirror when a
    token is given, and reports a missing object."""
    world.add("app")
    world.add("lib")
    assert world.run().returncode == 0
    verify = ["verify", "--repos", str(world.dest), "--report", str(world.tmp / "v.json")]

    ok = run_cli(verify, world.tmp, env=world.env())
    assert ok.returncode == 0, ok.stdout + ok.stderr
    summary = json.loads((world.tmp / "v.json").read_text())["summary"]
    assert summary == {
        "mirrors": 2,
        "metadata_stores": 0,
        "problems": 0,
        "deep": False,
        "compared_with_source": True,
    }

    ahead = world.server.commit(ORG, "app", "main", {"n": "n"}, "newer")
    stale = run_cli(verify, world.tmp, env=world.env())
    assert stale.returncode == 1
    assert f"acme/app.git: refs/heads/main is {ahead} at the source" in stale.stdout
    assert run_cli(verify, world.tmp, env=world.env(GITHUB_TOKEN="")).returncode == 0

    lib = world.mirror("lib")
    tip = world.mirror_refs("lib")["refs/heads/main"]
    (lib / "objects" / tip[:2] / tip[2:]).unlink()
    broken = run_cli(
        [*verify, "--include-package", "acme/lib"], world.tmp, env=world.env(GITHUB_TOKEN="")
    )
    assert broken.returncode == 1
    assert broken.stdout.startswith("acme/lib.git: git fsck")

    # A mirror that lost its HEAD is still checked, and is a problem, never passed over.
    (lib / "HEAD").unlink()
    headless = run_cli(
        [*verify, "--include-package", "acme/lib"], world.tmp, env=world.env(GITHUB_TOKEN="")
    )
    assert headless.returncode == 1, headless.stderr
    assert headless.stdout.startswith("acme/lib.git: ")


def test_verify_repos_with_nothing_to_check_fails(world: World) -> None:
    """An empty directory is not a successful verification (3, nothing matched); a missing
    one is a usage error."""
    (world.tmp / "empty").mkdir()
    assert run_cli(["verify", "--repos", str(world.tmp / "empty")], world.tmp).returncode == 3
    missing = run_cli(["verify", "--repos", str(world.tmp / "nope")], world.tmp)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


# Restore: the commands README documents


RESTORE = r"""
set -eu
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.$ORIGIN/.extraHeader"
export GIT_CONFIG_VALUE_0="Authorization: Basic $(printf 'x-access-token:%s' "$GITHUB_TOKEN" \
  | base64 -w0)"
git -C "$MIRROR" push --quiet "$TARGET" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
"""


def test_documented_restore_pushes_a_mirror_into_a_new_repository(world: World) -> None:
    """README's restore commands push every branch and tag into an empty repository on the
    git server, and an old tip kept under refs/backup/ can be pushed back as a branch."""
    world.add("app")
    s = world.server
    s.commit(ORG, "app", "dev", {"d": "1"}, "dev")
    s.set_ref(ORG, "app", "refs/tags/v1", s.refs(ORG, "app")["refs/heads/main"])
    assert world.run().returncode == 0
    old_dev = world.mirror_refs("app")["refs/heads/dev"]
    s.commit(ORG, "app", "dev", {"d": "2"}, "rewritten", parent=None)
    assert world.run().returncode == 0
    git("init", "--quiet", "--bare", str(s.bare("restored", "app")))

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
        "GITHUB_TOKEN": world.token,
        "ORIGIN": s.url,
        "MIRROR": str(world.mirror("app")),
        "TARGET": s.clone_url("restored", "app"),
    }
    done = subprocess.run(
        ["bash", "-c", RESTORE], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert s.refs("restored", "app") == s.refs(ORG, "app")

    (kept,) = world.mirror_refs("app", "refs/backup/")
    undo = RESTORE.replace(
        "'+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'",
        f"'{kept}:refs/heads/dev-before-force-push'",
    )
    done = subprocess.run(
        ["bash", "-c", undo], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert s.refs("restored", "app")["refs/heads/dev-before-force-push"] == old_dev


def test_job_summary_lists_failed_repositories_and_rewritten_refs(world: World) -> None:
    """In GitHub Actions, repos appends its counts, failures and rewritten refs to the summary."""
    world.add("app")
    world.add("vanished", on_server=False)
    s = world.server
    s.commit(ORG, "app", "dev", {"d.txt": "1"}, "dev work")
    summary_file = world.tmp / "summary.md"
    env = world.env(GITHUB_STEP_SUMMARY=str(summary_file))
    assert world.run(env=env).returncode == 1
    s.commit(ORG, "app", "dev", {"d.txt": "rewritten"}, "rewritten", parent=None)
    assert world.run(env=env).returncode == 1
    first, second = summary_file.read_text().split("## :x: github-org-backup repos")[1:]
    assert "| repositories copied | 1 |" in first and "| repositories failed | 1 |" in first
    assert f"| {markdown_text(ORG + '/vanished')} | " in first
    assert "### Moved at the source (1)" in second
    assert f"| {markdown_text(ORG + '/app refs/heads/dev')} | " in second
