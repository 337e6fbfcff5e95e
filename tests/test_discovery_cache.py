"""The discovery cache: what a warm run is certain to notice, and what it costs against GitHub.

In-process tests drive GitHubPackages against the GitHub stand-in, carrying the cache from run
to run through its bytes; end-to-end tests keep it beside the snapshots of a real registry and
of an OCI layout.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.github.cache import (
    CACHE_TAG,
    DiscoveryCache,
    load_cache,
    save_cache,
)
from github_org_backup.github.packages import GitHubPackages
from github_org_backup.model.packages import FailedPackage, Owner, Package
from github_org_backup.model.reference import Registry
from github_org_backup.model.reserved import SNAPSHOT_REPOSITORY
from github_org_backup.stores.layout import LayoutStore
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.github_api import Fault, GitHubStandIn, StandInPackage
from tests.harness.org import Org

OWNER = Owner("orgs", "acme")


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def versions(first: int, count: int, *, tag_every: int = 3) -> list[tuple[str, list[str]]]:
    """Newest first, as GitHub lists them: every third version tagged, the rest untagged."""
    return [
        (digest(n), [f"b{n}"] if n % tag_every == 0 else [])
        for n in range(first + count - 1, first - 1, -1)
    ]


def org() -> list[StandInPackage]:
    """Twenty small packages and one with 250 versions (three pages)."""
    packages = [
        StandInPackage(f"svc-{i:02d}", versions(1000 * (i + 1), 3), id=i) for i in range(20)
    ]
    packages.append(StandInPackage("big", versions(100_000, 250), id=500))
    return packages


@pytest.fixture
def api() -> Iterator[GitHubStandIn]:
    stand_in = GitHubStandIn(owners={"acme": org()}, tokens={"t": {"read:packages"}}).start()
    yield stand_in
    stand_in.stop()


class Run:
    """One discovery, as the registry command runs it: from a cache, learning the next one."""

    def __init__(self, api: GitHubStandIn, cache: DiscoveryCache | None, **options: int) -> None:
        requests, counted = len(api.requests), api.counted
        self.found, self.github, learned = asyncio.run(_discover(api, cache, options))
        self.requests = api.requests[requests:]
        self.counted = api.counted - counted
        assert learned is not None
        # Through its bytes, as it travels between runs.
        self.cache = DiscoveryCache.from_bytes(learned.state_bytes(), learned.packages_bytes())

    def tags(self, name: str) -> dict[str, str]:
        package = self.found[name]
        assert isinstance(package, Package), package
        return package.tags

    @property
    def version_requests(self) -> list[str]:
        return [r for r in self.requests if "/versions" in r]


async def _discover(
    api: GitHubStandIn, cache: DiscoveryCache | None, options: dict[str, Any]
) -> tuple[dict[str, Package | FailedPackage], GitHubPackages, DiscoveryCache | None]:
    github = GitHubPackages(OWNER, "t", api.url, request_interval_s=0, retries=0, **options)
    try:
        github.use_cache(cache)
        found = {p.name: p async for p in github.packages(lambda _name: True)}
        return found, github, github.learned_cache()
    finally:
        github.close()


# Options that switch the rotating revalidation off: only the package list can show a change.
NO_REVALIDATION = {"revalidate_rounds": 0, "revalidate_min_pages": 0}


def package(api: GitHubStandIn, name: str) -> StandInPackage:
    return next(p for p in api.owners["acme"] if p.name == name)


def move_tag(package: StandInPackage, start: int = 0) -> tuple[str, str]:
    """Move the first tag at or after ``start`` to the untagged version after it, which
    already exists: the version count stays. Returns (tag, digest it now names)."""
    i = next(i for i in range(start, len(package.versions)) if package.versions[i][1])
    j = i + 1 if i + 1 < len(package.versions) else i - 1
    (di, tags), (dj, _) = package.versions[i], package.versions[j]
    package.versions[i], package.versions[j] = (di, []), (dj, tags)
    return tags[0], dj


def test_a_warm_run_of_an_unchanged_org_costs_nothing_against_the_rate_limit(
    api: GitHubStandIn,
) -> None:
    """Cold: every page, each counted. Warm: the same packages from 304s that are not counted,
    and only a slice of the versions pages revalidated."""
    cold = Run(api, None)
    assert cold.github.packages_read == 21
    assert cold.counted == len(cold.requests) == 1 + 20 + 3
    warm = Run(api, cold.cache, revalidate_rounds=7, revalidate_min_pages=0)
    assert warm.found == cold.found
    assert warm.counted == 0
    # The list (1 page), then ceil(23 / 7) = 4 versions pages: big's 3 and one small one.
    assert len(warm.requests) == 1 + 4
    assert warm.github.pages_not_modified == 5
    assert warm.github.cache_summary() | {"packages_from_cache": 19} == {
        "discovery_cache": "used",
        "github_requests_not_modified": 5,
        "packages_from_cache": 19,
        "packages_revalidated": 2,
        "packages_read": 0,
    }
    assert warm.cache.packages == cold.cache.packages


def test_revalidation_rotates_through_every_package(api: GitHubStandIn) -> None:
    """Each run goes on after the last one's cursor: in `rounds` runs every package is checked."""
    cache = Run(api, None).cache
    checked: set[str] = set()
    for _ in range(7):
        warm = Run(api, cache, revalidate_rounds=7, revalidate_min_pages=0)
        assert warm.counted == 0
        checked |= {r.split("/container/")[1].split("/")[0] for r in warm.version_requests}
        cache = warm.cache
    assert checked == {p.name for p in org()}


def test_a_new_version_is_noticed(api: GitHubStandIn) -> None:
    """version_count moves in the package list: the package is read again, and only it."""
    cold = Run(api, None)
    package(api, "svc-03").versions.insert(0, (digest(9), ["1.0.0"]))
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert warm.tags("svc-03")["1.0.0"] == digest(9)
    assert {r.split("?")[0] for r in warm.version_requests} == {
        "/orgs/acme/packages/container/svc-03/versions"
    }
    assert warm.counted == 2  # the changed list page and the package's one page


def test_a_tag_moved_to_a_new_version_is_noticed(api: GitHubStandIn) -> None:
    """A push over an existing tag adds a version and takes the tag from the old one."""
    cold = Run(api, None)
    big = package(api, "big")
    newest = next(i for i, (_, tags) in enumerate(big.versions) if tags)
    newest_digest, newest_tags = big.versions[newest]
    big.versions[newest] = (newest_digest, [])
    big.versions.insert(0, (digest(7), newest_tags))
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert warm.tags("big")[newest_tags[0]] == digest(7)
    assert cold.tags("big")[newest_tags[0]] == newest_digest


def test_a_deleted_version_is_noticed(api: GitHubStandIn) -> None:
    """The deleted version's tag is gone from what discovery reports (the backup keeps it)."""
    cold = Run(api, None)
    big = package(api, "big")
    deep = next(i for i in range(200, 250) if big.versions[i][1])
    gone = big.versions.pop(deep)[1][0]
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert gone in cold.tags("big") and gone not in warm.tags("big")
    assert warm.tags("big") == {t: d for t, d in cold.tags("big").items() if t != gone}


def test_a_new_package_and_a_deleted_package_are_noticed(api: GitHubStandIn) -> None:
    """The package list is read on every run: what left it is gone, what joined it is read."""
    cold = Run(api, None)
    api.owners["acme"] = [p for p in api.owners["acme"] if p.name != "svc-05"]
    api.owners["acme"].append(StandInPackage("newcomer", [(digest(5), ["v1"])], id=999))
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert "svc-05" not in warm.found and "svc-05" not in warm.cache.packages
    assert warm.tags("newcomer") == {"v1": digest(5)}
    assert [r.split("?")[0] for r in warm.version_requests] == [
        "/orgs/acme/packages/container/newcomer/versions"
    ]


def test_a_package_deleted_and_recreated_under_its_name_is_noticed(api: GitHubStandIn) -> None:
    """Same name, same number of versions, new id: read again."""
    cold = Run(api, None)
    old = package(api, "svc-07")
    old.id, old.versions = 4242, [(digest(1), ["fresh"]), (digest(2), []), (digest(3), [])]
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert warm.tags("svc-07") == {"fresh": digest(1)}


def test_a_moved_updated_at_alone_is_noticed(api: GitHubStandIn) -> None:
    """A tag moved to a version that already existed, where GitHub moves updated_at."""
    cold = Run(api, None)
    svc = package(api, "svc-01")
    tag, now = move_tag(svc)
    svc.updated_at = "2026-02-02T02:02:02Z"
    warm = Run(api, cold.cache, **NO_REVALIDATION)
    assert warm.tags("svc-01")[tag] == now != cold.tags("svc-01")[tag]


def test_what_the_list_cannot_show_waits_for_the_revalidation(api: GitHubStandIn) -> None:
    """A tag moved to an existing version, with the package's list entry unchanged: without
    revalidation the cache keeps the old digest; the rotation finds it within its rounds."""
    cold = Run(api, None)
    moved, now = move_tag(package(api, "big"), start=150)  # deep in the list: page 2
    stale = Run(api, cold.cache, **NO_REVALIDATION)
    assert stale.tags("big")[moved] == cold.tags("big")[moved] != now  # not noticed
    cache = stale.cache
    for _ in range(7):
        warm = Run(api, cache, revalidate_rounds=7, revalidate_min_pages=0)
        cache = warm.cache
        if warm.tags("big")[moved] == now:
            break
    else:
        pytest.fail("seven runs did not revalidate the big package")
    # Once noticed, the cache holds the new digest: later runs agree without reading it again.
    again = Run(api, cache, **NO_REVALIDATION)
    assert again.tags("big")[moved] == now
    assert again.version_requests == []


def test_a_small_org_is_revalidated_in_full_on_every_run(api: GitHubStandIn) -> None:
    """Below MIN_REVALIDATE_PAGES every versions page is checked each run, all by 304s."""
    cold = Run(api, None)
    tag, now = move_tag(package(api, "svc-11"))  # the list entry does not move
    warm = Run(api, cold.cache)
    assert warm.tags("svc-11")[tag] == now
    assert warm.counted == 2  # svc-11's changed page, then its page read again
    assert warm.github.packages_revalidated == 20


def test_a_failed_package_is_not_cached_and_is_read_again(api: GitHubStandIn) -> None:
    """A 404 on one package's versions: not taken from the cache, and read on the next run."""
    cold = Run(api, None)
    api.owners["acme"][2].updated_at = "2026-03-03T00:00:00Z"
    api.faults["svc-02"] = Fault("not-found", times=1)
    failed = Run(api, cold.cache, **NO_REVALIDATION)
    assert isinstance(failed.found["svc-02"], FailedPackage)
    assert "svc-02" not in failed.cache.packages
    healed = Run(api, failed.cache, **NO_REVALIDATION)
    assert healed.tags("svc-02") == cold.tags("svc-02")
    assert len(healed.version_requests) == 1


def test_a_full_last_list_page_is_followed_once(api: GitHubStandIn) -> None:
    """100 packages fill page 1 exactly: a warm run asks for page 2 once, then by ETag."""
    api.owners["acme"] = [StandInPackage(f"p{i:03d}", [(digest(i), ["v"])]) for i in range(100)]
    cold = Run(api, None, **NO_REVALIDATION)
    first = Run(api, cold.cache, **NO_REVALIDATION)
    second = Run(api, first.cache, **NO_REVALIDATION)
    assert [r.split("page=")[1].split("&")[0] for r in first.requests] == ["1", "2"]
    assert first.counted == 1  # the empty page 2
    assert [r.split("page=")[1].split("&")[0] for r in second.requests] == ["1", "2"]
    assert second.counted == 0
    api.owners["acme"].append(StandInPackage("p100", [(digest(100), ["v"])]))
    third = Run(api, second.cache, **NO_REVALIDATION)
    assert third.tags("p100") == {"v": digest(100)}


def test_a_cache_of_another_owner_or_api_is_not_used(api: GitHubStandIn) -> None:
    """Keyed by owner and API URL: another organisation's cache means a full listing."""
    cold = Run(api, None)
    foreign = DiscoveryCache("orgs/other", cold.cache.api_url, cold.cache.list_pages, {})
    warm = Run(api, foreign)
    assert warm.github.cache_state == "absent"
    assert warm.github.packages_read == 21


def test_the_cache_is_small() -> None:
    """2,000 packages and 10 of 5,000 versions (a third tagged), an ETag per page: < 1.5 MB."""
    from github_org_backup.github.cache import CachedPackage, Listed, ListPage

    def random_hex(seed: str) -> str:  # real digests and ETags do not compress
        return hashlib.sha256(seed.encode()).hexdigest()

    cache = DiscoveryCache("orgs/acme", "https://api.github.com")
    names = [f"service-{i:04d}" for i in range(2000)]
    for n, name in enumerate(names):
        count = 5000 if n < 10 else 1
        tags = {
            f"sha-{random_hex(f't{n}.{v}')[:7]}": "sha256:" + random_hex(f"{n}.{v}")
            for v in range(0, count, 3)
        }
        listed = Listed(name, n, count, "2026-01-01T00:00:00Z")
        etags = tuple(f'W/"{random_hex(f"e{n}.{p}")[:32]}"' for p in range(-(-count // 100)))
        cache.packages[name] = CachedPackage(listed, etags, tags, count - len(tags))
    cache.list_pages = [
        ListPage(f'W/"{i}"', tuple(cache.packages[n].listed for n in names[i : i + 100]), True)
        for i in range(0, 2000, 100)
    ]
    size = len(cache.state_bytes()) + len(cache.packages_bytes())
    assert size < 1_500_000, size
    again = DiscoveryCache.from_bytes(cache.state_bytes(), cache.packages_bytes())
    assert again.packages == cache.packages and again.list_pages == cache.list_pages


# Stored in the backup


def test_stored_in_a_layout_and_read_back(tmp_path: Path, api: GitHubStandIn) -> None:
    """Written as an OCI artifact under the discovery-cache tag; an unreadable one is ignored."""
    cache = Run(api, None).cache
    store = LayoutStore(Registry.layout_at(str(tmp_path / "layout")))
    repository = f"ghcr/{SNAPSHOT_REPOSITORY}"

    async def round_trip() -> DiscoveryCache | None:
        await save_cache(store, repository, cache)
        return await load_cache(store, repository, OWNER, api.url)

    loaded = asyncio.run(round_trip())
    assert loaded is not None and loaded.packages == cache.packages
    assert asyncio.run(store.list_tags(repository)) == [CACHE_TAG]
    assert asyncio.run(load_cache(store, repository, Owner("orgs", "other"), api.url)) is None

    # Damage the state layer: the next run goes cold instead of failing.
    manifest = asyncio.run(store.get_manifest(repository, CACHE_TAG))
    state = manifest.layers[0]
    path = tmp_path / "layout" / "blobs" / "sha256" / state.digest.split(":")[1]
    path.write_bytes(b"\x1f\x8b not gzip")
    assert asyncio.run(load_cache(store, repository, OWNER, api.url)) is None


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["registry", "layout"])
def test_registry_command_warm_run_reads_no_versions(
    cli: CliRunner,
    org: Org,
    github: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    tmp_path: Path,
    namespace: str,
    kind: str,
) -> None:
    """The second run takes every package from the cache kept in the backup, confirmed by 304s
    that do not count; the snapshots command does not list the cache; verify passes."""
    dest = f"http://{destination.host}/{namespace}" if kind == "registry" else f"oci:{tmp_path}/l"
    args = ["registry", "--org", org.name, "--dest", dest, "--exclude-package", "legacy-*"]
    first = cli(*args, "--report", str(tmp_path / "first.json"), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    counted = github.counted
    second = cli(*args, "--report", str(tmp_path / "second.json"), env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((tmp_path / "second.json").read_text())["summary"]
    assert summary["discovery_cache"] == "used"
    assert summary["packages_read"] == 0 and summary["packages_revalidated"] == 4
    assert github.counted == counted  # every request a 304
    assert summary["github_requests"] == summary["github_requests_not_modified"]
    first_summary = json.loads((tmp_path / "first.json").read_text())["summary"]
    assert first_summary["discovery_cache"] == "absent"
    assert summary["images_skipped"] == first_summary["images_copied"]

    listed = cli("snapshots", "--dest", dest, "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert len(json.loads(listed.stdout)) == 2
    checked = cli("verify", "--dest", dest, env=env)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]

    # --no-discovery-cache reads everything again (and still writes a fresh cache).
    third = cli(*args, "--no-discovery-cache", "--report", str(tmp_path / "third.json"), env=env)
    assert third.returncode == 0, third.stderr[-3000:]
    summary = json.loads((tmp_path / "third.json").read_text())["summary"]
    assert summary["packages_read"] == 4 and summary["github_requests_not_modified"] == 0
