"""Session fixtures: a GHCR-like source (token auth) and a Basic-auth backup registry.

Also where the integration marker is given centrally: a test that starts a process (a
registry, git, skopeo, umoci, nginx, prometheus, the CLI as a subprocess, ...) or needs a
binary is integration, and the unit loop (``pytest -m "not integration"``) runs without
any. Tests reaching the fixtures in INTEGRATION_FIXTURES, and the modules and tests named
below, are marked here; a test that starts a process without the marker fails
(tests/harness/spawnguard.py).
"""

from __future__ import annotations

import base64
import inspect
import json
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.clirun import run_cli
from tests.harness.github_api import GitHubStandIn
from tests.harness.images import Pusher
from tests.harness.org import Org, build_org
from tests.harness.registry import RegistryProcess, htpasswd_auth, token_auth
from tests.harness.spawnguard import guarded
from tests.harness.tokens import ISSUER, TokenService, read_only, read_write
from tests.harness.walker import Walker

# Fixtures that start a process, as "module::fixture" where the fixture is defined: every
# test reaching one (directly or through another fixture) is integration.
INTEGRATION_FIXTURES = frozenset(
    {
        "conftest.py::source",  # docker-registry
        "conftest.py::destination",  # docker-registry
        "conftest.py::cli",  # the CLI as a subprocess
        "test_repos_renames.py::world",  # git, through the git server stand-in
    }
)

# Modules whose every test starts a process (most also say so with a pytestmark).
INTEGRATION_MODULES = frozenset(
    {
        "test_repos.py",  # git and git-lfs, the CLI as a subprocess
    }
)

# Single tests, as "module::test" (parameters left out).
INTEGRATION_TESTS = frozenset(
    {
        "test_alerts.py::test_rules_pass_promtool_check_and_unit_tests",  # promtool
        "test_alerts.py::test_prometheus_rule_carries_the_same_groups",  # promtool
        "test_auth.py::test_credential_helper",  # a docker-credential helper process
        "test_auth.py::test_credential_helper_runs_off_the_event_loop",
        "test_layout_writers.py::test_concurrent_processes_writing_one_layout_lose_nothing",
        "test_non_json_answers.py::test_commands_behind_a_login_page_fail_with_the_reason",
        "test_shards_and_prune.py::test_shard_assignment_does_not_depend_on_the_hash_seed",
        "test_cli_usage.py::test_verify_repos_reads_every_flag_it_offers",  # git on PATH
        # The CLI as a subprocess.
        "test_cli_declarations.py::test_the_entry_points_run",
    }
)


def _fixture_origins(item: pytest.Item) -> set[str]:
    """Every fixture ``item`` reaches, as "module::fixture" where it is defined."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {
        f"{Path(inspect.getfile(definition.func)).name}::{name}"
        for name, definitions in info.name2fixturedefs.items()
        for definition in definitions
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        name = f"{module}::{getattr(item, 'originalname', item.name)}"
        if (
            module in INTEGRATION_MODULES
            or name in INTEGRATION_TESTS
            or _fixture_origins(item) & INTEGRATION_FIXTURES
        ):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with guarded(item):
        return (yield)


@dataclass
class LiveRegistry:
    process: RegistryProcess
    username: str
    password: str
    authorize_admin: Callable[[str], str | None]

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def url(self) -> str:
        return self.process.url

    def pusher(self) -> Pusher:
        return Pusher(self.url, self.authorize_admin)

    def walker(self) -> Walker:
        return Walker(self.url, self.authorize_admin)


@pytest.fixture(scope="session")
def token_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    service = TokenService("ghcr-test", tmp_path_factory.mktemp("tokens")).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def source(
    tmp_path_factory: pytest.TempPathFactory, token_service: TokenService
) -> Iterator[LiveRegistry]:
    """A registry behaving like GHCR: Bearer tokens from a realm that takes Basic user:PAT."""
    password = token_service.add_user("reader", read_only)
    token_service.add_user("admin", read_write)
    auth = token_auth(token_service.realm, token_service.service, token_service.cert_path, ISSUER)
    process = RegistryProcess(tmp_path_factory.mktemp("source"), auth).start()
    yield LiveRegistry(
        process, "reader", password, lambda repo: "Bearer " + token_service.admin_token([repo])
    )
    process.stop()


@pytest.fixture(scope="session")
def destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    """A private backup registry with htpasswd Basic auth."""
    directory = tmp_path_factory.mktemp("destination")
    password = uuid.uuid4().hex
    process = RegistryProcess(directory, htpasswd_auth(directory, {"backup": password})).start()
    basic = "Basic " + base64.b64encode(f"backup:{password}".encode()).decode()
    yield LiveRegistry(process, "backup", password, lambda _repo: basic)
    process.stop()


def docker_config_for(directory: Path, *registries: LiveRegistry) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auths = {
        r.host: {"auth": base64.b64encode(f"{r.username}:{r.password}".encode()).decode()}
        for r in registries
    }
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


@pytest.fixture
def docker_config(tmp_path: Path, source: LiveRegistry, destination: LiveRegistry) -> Path:
    return docker_config_for(tmp_path / "docker", source, destination)


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(docker_config: Path) -> CliRunner:
    """Run the real CLI as a subprocess, with the test registries' credentials."""

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), docker_config, input, env, timeout)

    return run


@pytest.fixture
def namespace() -> str:
    """A fresh repository prefix, so tests sharing the session registries never collide."""
    return f"t{uuid.uuid4().hex[:10]}"


# A GitHub organisation: packages in the GHCR-like source, listed by a GitHub API stand-in.

GHOSTS = 101  # with the 4 real packages: two pages of the package list
UNTAGGED = 120  # app's children plus these: two pages of app's versions


@pytest.fixture(scope="session")
def pat(token_service: TokenService) -> str:
    token = "ghp_" + secrets.token_hex(18)
    token_service.tokens[token] = read_only
    return token


@pytest.fixture(scope="session")
def org(source: LiveRegistry) -> Org:
    return build_org(
        f"acme{secrets.token_hex(3)}",
        source.pusher(),
        ghost_packages=GHOSTS,
        extra_untagged=UNTAGGED,
    )


@pytest.fixture(scope="session")
def github(org: Org, pat: str) -> Iterator[GitHubStandIn]:
    stand_in = GitHubStandIn(
        owners={org.name: org.api}, tokens={pat: {"read:packages"}, "ghp_norepo": {"repo"}}
    ).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def env(
    tmp_path: Path, pat: str, github: GitHubStandIn, source: LiveRegistry, destination: LiveRegistry
) -> dict[str, str]:
    (tmp_path / "empty-docker").mkdir()
    return {
        "GITHUB_TOKEN": pat,
        "GITHUB_API_URL": github.url,
        "SOURCE_REGISTRY": f"http://{source.host}",
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": destination.password,
        "DOCKER_CONFIG": str(tmp_path / "empty-docker"),
    }
