"""verify of a backup made in shards, on a registry without /v2/_catalog (ECR, GAR): each
shard keeps its own snapshot series, and --shard I/N or --shard-count N names the series whose
latest snapshots say which tags to check. Flags on the command line beat the environment."""

from __future__ import annotations

import argparse
import base64
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from github_org_backup.cli import build_parser
from github_org_backup.commands.tags import backup_tags
from github_org_backup.errors import RegistryError, UsageError
from github_org_backup.history.model import TaggedImage, new_snapshot
from github_org_backup.history.store import Snapshots
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.plan.policy import PackageFilter
from github_org_backup.settings.config import Shard
from github_org_backup.settings.images import restore_options, snapshots_options, verify_options
from github_org_backup.stores.layout import LayoutStore
from tests.conftest import LiveRegistry
from tests.harness.clirun import run_cli, run_in_process
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.github_api import GitHubStandIn, StandInPackage
from tests.harness.images import OCI_LAYER, Blob, Manifest, build_image

# Of 2 shards, lib belongs to shard 0 and app to shard 1 (sha256 of the name, mod 2).
SHARD_OF = {"lib": 0, "app": 1}


class _NoCatalogProxy(FaultProxy):
    """ECR or GAR in front of the real registry: everything works but /v2/_catalog (404)."""

    async def _early_fault(self, fault: str, request: web.Request) -> web.StreamResponse | None:
        if fault == "no-catalog":
            body = {"errors": [{"code": "NOT_FOUND", "message": "not found"}]}
            return web.json_response(body, status=404)
        return await super()._early_fault(fault, request)


@pytest.fixture
def no_catalog(destination: LiveRegistry) -> Iterator[_NoCatalogProxy]:
    proxy = _NoCatalogProxy(destination.url)
    proxy.rules = [Rule("no-catalog", methods=("GET",), path=r"^/v2/_catalog$")]
    proxy.start()
    yield proxy
    proxy.stop()


class _Org:
    """Two packages in the GHCR-like source, one for each of 2 shards, listed by a stand-in."""

    def __init__(self, source: LiveRegistry, name: str, pat: str) -> None:
        self.name = name
        self.rng = random.Random(name)
        self.pusher = source.pusher()
        self.tags: dict[str, dict[str, Manifest]] = {"app": {}, "lib": {}}
        for package, tags in (("app", ["1.0.0", "1.1.0"]), ("lib", ["3.0.0"])):
            for tag in tags:
                self.push(package, tag)
        self.stand_in = GitHubStandIn(owners={name: self.api()}, tokens={pat: {"read:packages"}})

    def push(self, package: str, tag: str) -> None:
        blob = Blob(self.rng.randbytes(700), OCI_LAYER)
        manifest = build_image(self.rng, "linux/amd64", [blob], False, 0, tag)
        self.pusher.push_manifest(f"{self.name}/{package}", tag, manifest)
        self.tags[package][tag] = manifest
        if hasattr(self, "stand_in"):
            self.stand_in.owners[self.name] = self.api()

    def api(self) -> list[StandInPackage]:
        return [
            StandInPackage(package, [(m.digest, [tag]) for tag, m in tags.items()])
            for package, tags in self.tags.items()
        ]

    def count(self, *packages: str) -> int:
        return sum(len(self.tags[p]) for p in packages or tuple(self.tags))


@pytest.fixture
def small_org(source: LiveRegistry, namespace: str, pat: str) -> Iterator[_Org]:
    org = _Org(source, f"org{namespace}", pat)
    org.stand_in.start()
    yield org
    org.stand_in.stop()


class _Cli:
    def __init__(
        self,
        tmp_path: Path,
        org: _Org,
        pat: str,
        source: LiveRegistry,
        dest: LiveRegistry,
        proxy: FaultProxy,
    ) -> None:
        self.tmp_path = tmp_path
        # The backup's credentials for the proxy's host too, where restore reads it.
        auth = base64.b64encode(f"{dest.username}:{dest.password}".encode()).decode()
        self.config = tmp_path / "docker"
        self.config.mkdir()
        hosts = (dest.host, proxy.host)
        auths = {"auths": {host: {"auth": auth} for host in hosts}}
        (self.config / "config.json").write_text(json.dumps(auths))
        self.env = {
            "GITHUB_TOKEN": pat,
            "GITHUB_API_URL": org.stand_in.url,
            "SOURCE_REGISTRY": f"http://{source.host}",
            "DEST_USERNAME": dest.username,
            "DEST_PASSWORD": dest.password,
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = run_cli(list(args), self.config, env=self.env | (env or {}), timeout=300)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        return result

    def verify(self, dest: str, *args: str, env: dict[str, str] | None = None) -> Any:
        """(exit status, the report's summary or None, stderr)."""
        report = self.tmp_path / "verify.json"
        report.unlink(missing_ok=True)
        result = self("verify", "--dest", dest, "--report", str(report), *args, env=env)
        summary = json.loads(report.read_text())["summary"] if report.exists() else None
        return result.returncode, summary, result.stderr


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.integration
def test_verify_without_a_catalog_checks_every_shards_latest_snapshot(
    small_org: _Org,
    no_catalog: _NoCatalogProxy,
    destination: LiveRegistry,
    source: LiveRegistry,
    pat: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """A backup once unsharded, now made in 2 shards, on a registry without a catalog: without
    shard flags verify checks the stale unsharded snapshot; --shard-count 2 checks the union of
    both shards' latest snapshots, --shard I/N one shard's; a wrong count names the series."""
    assert {p: next(i for i in range(2) if Shard(i, 2).owns(p)) for p in SHARD_OF} == SHARD_OF
    org = small_org
    cli = _Cli(tmp_path, org, pat, source, destination, no_catalog)
    behind_proxy = f"http://{no_catalog.host}/{namespace}"
    run = ["registry", "--org", org.name, "--dest", behind_proxy, "--all-patches"]

    # Sharded only: before, verify had nothing to go by but the unsharded series.
    for index in range(2):
        _ok(cli(*run, "--shard", f"{index}/2"))
    status, summary, stderr = cli.verify(behind_proxy, "--shard-count", "2")
    assert (status, summary and summary["tags"]) == (0, org.count()), stderr[-3000:]
    for package, index in SHARD_OF.items():
        status, summary, stderr = cli.verify(behind_proxy, "--shard", f"{index}/2")
        assert (status, summary and summary["tags"]) == (0, org.count(package)), stderr[-3000:]
    # The environment names the shards as well.
    status, summary, stderr = cli.verify(behind_proxy, env={"BACKUP_SHARD_COUNT": "2"})
    assert (status, summary and summary["tags"]) == (0, org.count()), stderr[-3000:]
    status, _, stderr = cli.verify(behind_proxy)
    assert status == 2 and "--shard-count N" in stderr, stderr[-3000:]

    # A wrong shard count: a series without a snapshot is a usage error that names it.
    status, summary, stderr = cli.verify(behind_proxy, "--shard-count", "3")
    assert status == 2 and "shard-0-of-3" in stderr and summary is None, stderr[-3000:]
    status, _, stderr = cli.verify(behind_proxy, "--shard", "2/3")
    assert status == 2 and "shard-2-of-3" in stderr, stderr[-3000:]

    # An unsharded run's snapshot goes stale once the backup is made in shards: the flags
    # choose the shards' series over it, and a new tag is checked.
    _ok(cli(*run))
    org.push("app", "1.2.0")
    for index in range(2):
        _ok(cli(*run, "--shard", f"{index}/2"))
    status, summary, stderr = cli.verify(behind_proxy)
    assert (status, summary and summary["tags"]) == (0, org.count() - 1), stderr[-3000:]
    status, summary, stderr = cli.verify(behind_proxy, "--shard-count", "2")
    assert (status, summary and summary["tags"]) == (0, org.count()), stderr[-3000:]

    # With a catalog the flags are not needed: every tag below the prefix is checked, each
    # shard's snapshots and histories included, with or without them.
    direct = f"http://{destination.host}/{namespace}"
    plain = cli.verify(direct)
    assert plain[0] == 0 and plain[1] is not None, plain[2]
    assert (plain[1]["tags"], plain[1]["backup_tags"] > 0) == (org.count(), True), plain[2]
    assert cli.verify(direct, "--shard-count", "2")[:2] == plain[:2]
    assert cli.verify(direct, "--shard-count", "3")[:2] == plain[:2]

    # restore without a catalog still takes each shard's series with --shard-count.
    restored = cli(
        "restore", "--from", behind_proxy, "--to", f"http://{destination.host}/{namespace}-r",
        "--shard-count", "2",
    )  # fmt: skip
    _ok(restored)
    walker = destination.walker()
    assert walker.image_tags(f"{namespace}-r/{org.name}/app") == sorted(org.tags["app"])


@pytest.mark.integration
def test_restore_without_a_catalog_or_snapshot_asks_for_a_report_or_the_shard_count(
    small_org: _Org,
    no_catalog: _NoCatalogProxy,
    destination: LiveRegistry,
    source: LiveRegistry,
    pat: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """restore of a sharded backup given no shard flag finds no unsharded snapshot and no
    catalog: a usage error that says what to pass, and nothing restored."""
    cli = _Cli(tmp_path, small_org, pat, source, destination, no_catalog)
    behind_proxy = f"http://{no_catalog.host}/{namespace}"
    for index in range(2):
        _ok(
            cli(
                "registry", "--org", small_org.name, "--dest", behind_proxy, "--shard", f"{index}/2"
            )
        )
    target = f"http://{destination.host}/{namespace}-r"
    result = cli("restore", "--from", behind_proxy, "--to", target)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "--from-report FILE" in result.stderr and "--shard-count N" in result.stderr
    assert destination.walker().image_tags(f"{namespace}-r/{small_org.name}/app") == []


# In process: the tags backup_tags finds without a catalog


class _NoCatalog:
    """A store like ECR or GAR: everything works but listing repositories."""

    def __init__(self, store: LayoutStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_repositories(self) -> list[str]:
        raise RegistryError("list the catalog: HTTP 404 (this registry has no /v2/_catalog)")


def _image(repository: str, tag: str, n: int) -> TaggedImage:
    digest = f"sha256:{n:064x}"
    return TaggedImage(repository, tag, digest, "application/vnd.oci.image.manifest.v1+json", 500)


async def test_backup_tags_takes_the_union_of_the_series_latest_snapshots(tmp_path: Path) -> None:
    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    prefix = Repository(store.registry, "backup")
    await Snapshots(store, prefix).save(new_snapshot("ghcr.io", [_image("acme/old", "1", 1)]))
    await Snapshots(store, prefix, "shard-0-of-2").save(
        new_snapshot("ghcr.io", [_image("acme/lib", "3.0.0", 2)])
    )
    await Snapshots(store, prefix, "shard-1-of-2").save(
        new_snapshot("ghcr.io", [_image("acme/app", "1.0.0", 3), _image("acme/app", "1.1.0", 4)])
    )
    series = ("shard-0-of-2", "shard-1-of-2")
    found = await backup_tags(
        _NoCatalog(store), prefix, PackageFilter(()), None, None, series=series
    )
    assert sorted(found) == [
        ("backup/acme/app", "1.0.0"),
        ("backup/acme/app", "1.1.0"),
        ("backup/acme/lib", "3.0.0"),
    ]
    only_lib = await backup_tags(
        _NoCatalog(store), prefix, PackageFilter(("acme/lib",)), None, None, series=series
    )
    assert only_lib == [("backup/acme/lib", "3.0.0")]
    # Unsharded, as restore asks: the unsharded series alone.
    assert await backup_tags(_NoCatalog(store), prefix, PackageFilter(()), None, None) == [
        ("backup/acme/old", "1")
    ]
    with pytest.raises(UsageError, match="shard series shard-2-of-3 of .* has no snapshot"):
        await backup_tags(
            _NoCatalog(store),
            prefix,
            PackageFilter(()),
            None,
            None,
            series=("shard-0-of-3", "shard-1-of-3", "shard-2-of-3")[2:],
        )


# Flags beat the environment


def _layout(tmp_path: Path) -> str:
    layout = tmp_path / "layout"
    layout.mkdir(exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    return f"oci:{layout}"


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


FOUR = tuple(f"shard-{i}-of-4" for i in range(4))


def test_a_shard_count_flag_beats_a_shard_in_the_environment(tmp_path: Path) -> None:
    """restore --shard-count 4 with BACKUP_SHARD=0/4 set reads all four series, not one."""
    dest = _layout(tmp_path)
    env = {"BACKUP_SHARD": "0/4"}
    restore = _parse("restore", "--from", dest, "--to", "backup.test/r", "--shard-count", "4")
    assert restore_options(restore, env).series == FOUR
    assert (
        snapshots_options(_parse("snapshots", "--dest", dest, "--shard-count", "4"), env).series
        == FOUR
    )
    assert (
        verify_options(_parse("verify", "--dest", dest, "--shard-count", "4"), env).series == FOUR
    )


def test_a_shard_flag_beats_a_shard_count_in_the_environment(tmp_path: Path) -> None:
    """--shard 2/4 with BACKUP_SHARD_COUNT=4 (and even BACKUP_SHARD=0/4) set reads shard 2."""
    dest = _layout(tmp_path)
    restore = _parse("restore", "--from", dest, "--to", "backup.test/r", "--shard", "2/4")
    snapshots = _parse("snapshots", "--dest", dest, "--shard", "2/4")
    verify = _parse("verify", "--dest", dest, "--shard", "2/4")
    for env in ({"BACKUP_SHARD_COUNT": "4"}, {"BACKUP_SHARD_COUNT": "4", "BACKUP_SHARD": "0/4"}):
        assert restore_options(restore, env).series == ("shard-2-of-4",)
        assert snapshots_options(snapshots, env).series == ("shard-2-of-4",)
        assert verify_options(verify, env).series == ("shard-2-of-4",)


def test_without_flags_the_environment_names_the_series(tmp_path: Path) -> None:
    dest = _layout(tmp_path)
    verify = _parse("verify", "--dest", dest)
    assert verify_options(verify, {}).series == ("",)
    assert verify_options(verify, {"BACKUP_SHARD_COUNT": "4"}).series == FOUR
    assert verify_options(verify, {"BACKUP_SHARD": "1/4"}).series == ("shard-1-of-4",)
    # Both set: refused, as the two flags are.
    both = {"BACKUP_SHARD": "1/4", "BACKUP_SHARD_COUNT": "4"}
    with pytest.raises(UsageError, match="both set"):
        verify_options(verify, both)
    with pytest.raises(UsageError, match="BACKUP_SHARD_COUNT='x': 'x' is not an integer"):
        verify_options(verify, {"BACKUP_SHARD_COUNT": "x"})
    with pytest.raises(SystemExit):
        _parse("verify", "--dest", dest, "--shard-count", "0")  # argparse: must be at least 1
    with pytest.raises(UsageError, match="expected I/N"):
        verify_options(verify, {"BACKUP_SHARD": "3"})


def test_verify_help_names_the_shard_flags_and_variables(tmp_path: Path) -> None:
    text = run_in_process(["verify", "--help"]).stdout
    for name in ("--shard I/N", "--shard-count N", "BACKUP_SHARD ", "BACKUP_SHARD_COUNT"):
        assert name in text, name


def test_verify_repos_refuses_the_shard_flags(tmp_path: Path) -> None:
    """Git mirrors have no shards: the flags are refused, not ignored."""
    for flag in (["--shard", "0/2"], ["--shard-count", "2"]):
        result = run_in_process(["verify", "--repos", str(tmp_path), *flag])
        assert result.returncode == 2, result.stderr
        assert "--shard and --shard-count are for image backups" in result.stderr
