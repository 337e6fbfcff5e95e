"""The repos command when the source renames a ref across a directory/file clash in git's ref
namespace (`foo` -> `foo/bar` and back, branches and tags): the mirror follows, every old tip
stays under refs/backup/<time>/, and backups of one second never clash with each other."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from github_org_backup.repos.git import Git, GitSettings
from github_org_backup.repos.refs import RefChange, RefNames, transactions
from tests.harness.github_repos import GitHubReposStandIn
from tests.harness.gitserver import GitServer, git
from tests.test_repos import ORG, World, heads_and_tags

RENAMES = [
    ("refs/heads/foo", "refs/heads/foo/bar"),
    ("refs/heads/foo/bar", "refs/heads/foo"),
    ("refs/tags/v1", "refs/tags/v1/rc"),
    ("refs/tags/v1/rc", "refs/tags/v1"),
]


@pytest.fixture(name="world")
def _world(tmp_path: Path) -> Iterator[World]:
    """The git server and GitHub stand-in of tests/test_repos.py."""
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = GitHubReposStandIn(server.url, tokens={token: "backup-bot"}).start()
    yield World(server, github, token, tmp_path)
    github.stop()
    server.stop()


def _pack(world: World, name: str) -> None:
    git("pack-refs", "--all", "--prune", env={"GIT_DIR": str(world.mirror(name))})


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
@pytest.mark.parametrize(("old", "new"), RENAMES, ids=[f"{o[5:]}->{n[5:]}" for o, n in RENAMES])
def test_a_rename_across_a_name_clash_is_followed_and_keeps_the_old_tip(
    world: World, old: str, new: str, packed: bool
) -> None:
    """`foo` renamed to `foo/bar` (or back) between two runs: the second run exits 0, the mirror's
    refs equal the source's, main advances, the old tip is kept under refs/backup/<time>/ and the
    report names the deleted and the created ref; a third run changes nothing."""
    world.add("app")
    s = world.server
    tip = s.commit(ORG, "app", "topic", {"t.txt": "1"}, "topic work")
    s.set_ref(ORG, "app", "refs/heads/topic", None)
    s.set_ref(ORG, "app", old, tip)
    assert world.run().returncode == 0
    assert heads_and_tags(world.mirror_refs("app")) == s.refs(ORG, "app")
    if packed:
        _pack(world, "app")

    s.set_ref(ORG, "app", old, None)
    s.set_ref(ORG, "app", new, tip)
    main = s.commit(ORG, "app", "main", {"m.txt": "2"}, "more on main")
    result = world.run()

    assert result.returncode == 0, result.stderr
    refs = world.mirror_refs("app")
    assert heads_and_tags(refs) == s.refs(ORG, "app")
    assert refs["refs/heads/main"] == main
    stamp = world.report()["summary"]["backup_ref_prefix"]
    kept_as = stamp + old.removeprefix("refs/")
    assert world.mirror_refs("app", "refs/backup/") == {kept_as: tip}
    assert world.mirror_refs("app", "refs/incoming/") == {}
    app = world.entry(f"{ORG}/app")
    assert app["status"] == "copied"
    changes = {c["ref"]: (c["change"], c["kept_as"]) for c in app["ref_changes"]}
    assert changes == {
        old: ("deleted", kept_as),
        new: ("created", None),
        "refs/heads/main": ("fast-forward", None),
    }
    events = [json.loads(line) for line in result.stderr.splitlines()]
    warned = [e for e in events if e["event"] == "ref_rewritten_at_source"]
    assert [(e["ref"], e["kept_as"]) for e in warned] == [(old, kept_as)]

    assert world.run().returncode == 0
    assert world.entry(f"{ORG}/app")["status"] == "unchanged"
    assert world.mirror_refs("app") == refs


def test_backups_of_one_second_never_clash(world: World) -> None:
    """Two runs under the same time stamp keep `foo` and then `foo/bar`, then `foo` again:
    refs/backup/<time>/heads/foo would block refs/backup/<time>/heads/foo/bar (and the same name
    twice cannot be created), so the later run's backups move together to <time>-2, <time>-3."""
    world.add("app")
    s = world.server
    a = s.commit(ORG, "app", "foo", {"a.txt": "a"}, "a")
    mirror = world.mirror("app")
    settings = GitSettings(token=world.token)
    url = s.clone_url(ORG, "app")

    def run(stamp: str) -> dict[str, str | None]:
        result = asyncio.run(Git(settings).mirror(url, mirror, pull_refs=False, stamp=stamp))
        assert heads_and_tags(world.mirror_refs("app")) == s.refs(ORG, "app")
        return {c.ref: c.kept_as for c in result.changes if c.kept_as}

    stamp = "20250101T000000Z"
    run("20241231T235959Z")
    s.set_ref(ORG, "app", "refs/heads/foo", None)
    b = s.commit(ORG, "app", "foo/bar", {"b.txt": "b"}, "b", parent=a)
    first_other = s.commit(ORG, "app", "other", {"o.txt": "o"}, "other")
    assert run(stamp) == {"refs/heads/foo": f"refs/backup/{stamp}/heads/foo"}

    s.set_ref(ORG, "app", "refs/heads/foo/bar", None)
    c = s.commit(ORG, "app", "foo", {"c.txt": "c"}, "c", parent=a)
    s.commit(ORG, "app", "other", {"o.txt": "rewritten"}, "o2", parent=None)
    assert run(stamp) == {
        "refs/heads/foo/bar": f"refs/backup/{stamp}-2/heads/foo/bar",
        "refs/heads/other": f"refs/backup/{stamp}-2/heads/other",
    }

    s.set_ref(ORG, "app", "refs/heads/foo", None)
    assert run(stamp) == {"refs/heads/foo": f"refs/backup/{stamp}-3/heads/foo"}

    assert world.mirror_refs("app", "refs/backup/") == {
        f"refs/backup/{stamp}/heads/foo": a,
        f"refs/backup/{stamp}-2/heads/foo/bar": b,
        f"refs/backup/{stamp}-2/heads/other": first_other,
        f"refs/backup/{stamp}-3/heads/foo": c,
    }


def test_a_run_stopped_between_the_two_steps_of_a_rename_loses_nothing(world: World) -> None:
    """The rename's second transaction fails (main is locked): the old tip is already kept, the
    repository fails alone, and the next run creates the new ref and advances main."""
    world.add("app")
    s = world.server
    tip = s.commit(ORG, "app", "foo", {"f.txt": "1"}, "foo work")
    assert world.run().returncode == 0
    s.set_ref(ORG, "app", "refs/heads/foo", None)
    s.set_ref(ORG, "app", "refs/heads/foo/bar", tip)
    main = s.commit(ORG, "app", "main", {"m.txt": "2"}, "more on main")
    lock = world.mirror("app") / "refs" / "heads" / "main.lock"
    lock.write_text("")

    assert world.run().returncode == 1
    assert world.entry(f"{ORG}/app")["error"].startswith("git update-ref: ")
    stamp = world.report()["summary"]["backup_ref_prefix"]
    assert world.mirror_refs("app", "refs/backup/") == {f"{stamp}heads/foo": tip}
    assert "refs/heads/foo" not in world.mirror_refs("app")

    lock.unlink()
    assert world.run().returncode == 0
    assert heads_and_tags(world.mirror_refs("app")) == s.refs(ORG, "app")
    assert world.mirror_refs("app")["refs/heads/main"] == main
    assert world.mirror_refs("app", "refs/backup/") == {f"{stamp}heads/foo": tip}
    changes = {c["ref"]: c["change"] for c in world.entry(f"{ORG}/app")["ref_changes"]}
    assert changes == {"refs/heads/foo/bar": "created", "refs/heads/main": "fast-forward"}


def test_one_transaction_unless_a_created_ref_clashes_with_a_deleted_one() -> None:
    """A force-push, a deletion and a new branch move in one transaction; `foo` deleted and
    `foo/bar` created need two, the first keeping and deleting, the second writing."""
    a, b = "a" * 40, "b" * 40
    kept = "refs/backup/20250101T000000Z/heads/"
    common = [
        RefChange("refs/heads/dev", a, b, "forced", kept + "dev"),
        RefChange("refs/heads/old", a, None, "deleted", kept + "old"),
        RefChange("refs/heads/new", None, b, "created"),
        RefChange("refs/heads/foo/bar/baz", None, b, "created"),
    ]
    assert transactions(common, ["delete refs/incoming/heads/dev " + b]) == [
        [
            f"create {kept}dev {a}",
            f"create {kept}old {a}",
            f"delete refs/heads/old {a}",
            f"update refs/heads/dev {b} {a}",
            f"create refs/heads/new {b}",
            f"create refs/heads/foo/bar/baz {b}",
            f"delete refs/incoming/heads/dev {b}",
        ]
    ]
    assert transactions([], []) == []
    for deleted, created in [("foo", "foo/bar"), ("foo/bar", "foo"), ("foo", "foo/bar/baz")]:
        rename = [
            RefChange(f"refs/heads/{deleted}", a, None, "deleted", kept + deleted),
            RefChange(f"refs/heads/{created}", None, a, "created"),
        ]
        assert transactions(rename, []) == [
            [f"create {kept}{deleted} {a}", f"delete refs/heads/{deleted} {a}"],
            [f"create refs/heads/{created} {a}"],
        ]


@pytest.mark.parametrize(
    ("taken", "name", "clash"),
    [
        (["refs/b/S/heads/foo"], "refs/b/S/heads/foo", True),
        (["refs/b/S/heads/foo"], "refs/b/S/heads/foo/bar", True),
        (["refs/b/S/heads/foo/bar"], "refs/b/S/heads/foo", True),
        (["refs/b/S/heads/foo/bar/baz"], "refs/b/S/heads/foo", True),
        (["refs/b/S/heads/foo"], "refs/b/S/heads/foobar", False),
        (["refs/b/S/heads/foo"], "refs/b/S/heads/fo", False),
        (["refs/b/S/heads/foo-bar"], "refs/b/S/heads/foo/bar", False),
        (["refs/b/S/heads/foo"], "refs/b/S/tags/foo/bar", False),
        ([], "refs/b/S/heads/foo", False),
    ],
)
def test_ref_names_clash_when_equal_or_one_is_a_directory_of_the_other(
    taken: list[str], name: str, clash: bool
) -> None:
    """Only the same name, or a name that is a directory of the other, clash in git."""
    assert RefNames(taken).clashes(name) is clash
