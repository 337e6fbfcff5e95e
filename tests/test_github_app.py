"""GitHub App authentication for `repos`: the identity seam, its settings and their errors, git
sent the current installation token and redacting every one, and whole runs against the
metadata stand-in's App endpoints (token minting, the installation lookup, renewal during a
run that outlives a token, a wrong key)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from github_org_backup.errors import GitError, GitHubAccessError, UsageError
from github_org_backup.github.identity import (
    APP_GIT_USERNAME,
    AppIdentity,
    Identity,
    TokenIdentity,
)
from github_org_backup.github.repos import GitHubRepos
from github_org_backup.model.packages import Owner
from github_org_backup.repos.git import Git, GitSettings
from github_org_backup.settings.config import identity_from, load_registry_config
from github_org_backup.settings.parser import build_parser
from github_org_backup.settings.repos import load_repos_config
from tests.harness.clirun import COMMAND, ROOT, cli_env, run_cli
from tests.harness.github_meta import BOT_LOGIN, GitHubOrgStandIn, app_key_pair
from tests.harness.gitserver import GitServer, git
from tests.harness.repos_world import ReposPlaces
from tests.test_deploy import (
    CREATES,
    kustomize,
    load,
    parse_line,
    run_lines,
    security_problems,
    zizmor_and_actionlint,
)

ORG = "acme"
APP_ID = 31337
INSTALLATION = 4242


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return app_key_pair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[bytes, bytes]:
    return app_key_pair()


def key_lines(pem: bytes) -> list[str]:
    """The body lines of a PEM key: what must never show anywhere."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def repos_args(*extra: str) -> Any:
    return build_parser().parse_args(["repos", "--org", ORG, *extra])


def app_env(key_file: Path, **extra: str) -> dict[str, str]:
    return {"GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY_FILE": str(key_file)} | extra


@pytest.fixture
def key_file(tmp_path: Path, keys: tuple[bytes, bytes]) -> Path:
    path = tmp_path / "app.pem"
    path.write_bytes(keys[0])
    path.chmod(0o600)
    return path


# Settings


def test_a_token_alone_is_a_token_identity() -> None:
    identity = identity_from(repos_args(), {"GITHUB_TOKEN": "ghp_only"})
    assert isinstance(identity, TokenIdentity)
    assert identity.kind == "token"
    assert identity.git_token() == "ghp_only"
    assert identity.git_username("github-org-backup") == "github-org-backup"
    assert identity.secrets() == ("ghp_only",)
    assert "ghp_only" not in repr(identity)


def test_the_app_variables_make_an_app_identity(key_file: Path, keys: tuple[bytes, bytes]) -> None:
    """The key is read at once; the installation id is asked for only when needed."""
    identity = identity_from(repos_args(), app_env(key_file, GITHUB_APP_INSTALLATION_ID="77"))
    assert isinstance(identity, AppIdentity)
    assert identity.kind == "app"
    assert identity.app_id == APP_ID and identity.owner == Owner("orgs", ORG)
    assert identity.installation_id == 77
    assert identity.git_username("github-org-backup") == APP_GIT_USERNAME == "x-access-token"
    assert all(line not in repr(identity) for line in key_lines(keys[0]))
    assert set(key_lines(keys[0])) <= set(identity.secrets())
    unresolved = identity_from(repos_args(), app_env(key_file))
    assert isinstance(unresolved, AppIdentity) and unresolved._installation_id is None


def test_load_repos_config_fills_the_identity_and_git_asks_it_each_run(key_file: Path) -> None:
    config = load_repos_config(repos_args(), app_env(key_file, GITHUB_USERNAME="someone"))
    assert config.identity.kind == "app"
    assert config.username == config.git.username == "x-access-token"
    assert config.git.token is None
    assert config.git.token_source is not None and config.git.secrets_source is not None
    token_config = load_repos_config(repos_args(), {"GITHUB_TOKEN": "ghp_plain"})
    assert token_config.identity == TokenIdentity("ghp_plain")
    assert token_config.token == token_config.git.token == "ghp_plain"
    assert token_config.git.token_source is None
    assert "ghp_plain" not in repr(token_config)


@pytest.mark.parametrize("token_from", ["variable", "file"])
def test_a_token_and_an_app_together_are_refused(
    token_from: str, key_file: Path, tmp_path: Path
) -> None:
    env = app_env(key_file)
    args = repos_args()
    if token_from == "variable":
        env["GITHUB_TOKEN"] = "ghp_both"
        named = "GITHUB_TOKEN"
    else:
        (tmp_path / "token").write_text("ghp_both\n")
        args = repos_args("--github-token-file", str(tmp_path / "token"))
        named = "--github-token-file"
    with pytest.raises(UsageError) as caught:
        identity_from(args, env)
    message = str(caught.value)
    assert f"both {named} and a GitHub App" in message
    assert "set one" in message
    assert "ghp_both" not in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_APP_ID": "12"}, "without GITHUB_APP_PRIVATE_KEY_FILE"),
        ({"GITHUB_APP_PRIVATE_KEY_FILE": "/k.pem"}, "without GITHUB_APP_ID"),
        ({"GITHUB_APP_INSTALLATION_ID": "3"}, "without GITHUB_APP_ID"),
        ({"GITHUB_APP_ID": "twelve", "GITHUB_APP_PRIVATE_KEY_FILE": "/k.pem"}, "whole number"),
        ({}, "or use a GitHub App: GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE"),
    ],
)
def test_incomplete_app_settings_say_what_is_missing(env: dict[str, str], expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        identity_from(repos_args(), env)


def _ec_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _encrypted(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("directory", "is a directory"),
        (b"", "is empty"),
        (b"ghs_notakeyatall0123456789\n", "is not a PEM file"),
        ("mangled", "holds no readable PEM private key"),
        ("ec", "not RSA"),
        ("encrypted", "holds an encrypted key"),
    ],
)
def test_a_key_file_that_is_no_app_key_is_a_clear_error_that_never_shows_it(
    content: bytes | str | None, expected: str, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    path = tmp_path / "app.pem"
    shown: list[str] = []
    if content == "directory":
        path.mkdir()
    elif content == "mangled":
        lines = keys[0].decode().splitlines()
        path.write_text("\n".join([lines[0], *lines[1:-1][::-1], lines[-1]]) + "\n")
        shown = key_lines(keys[0])
    elif content == "ec":
        data = _ec_key()
        path.write_bytes(data)
        shown = key_lines(data)
    elif content == "encrypted":
        data = _encrypted(keys[0])
        path.write_bytes(data)
        shown = key_lines(data)
    elif isinstance(content, bytes):
        path.write_bytes(content)
        shown = [content.decode().strip()] if content.strip() else []
    with pytest.raises(UsageError) as caught:
        identity_from(repos_args(), app_env(path))
    message = str(caught.value)
    assert expected in message and str(path) in message
    assert not [line for line in shown if line in message]


def test_an_unreadable_key_file_says_so(key_file: Path) -> None:
    below_a_file = key_file / "app.pem"  # not a directory: unreadable even by root
    with pytest.raises(UsageError, match="cannot read GITHUB_APP_PRIVATE_KEY_FILE .*directory"):
        identity_from(repos_args(), app_env(below_a_file))


def test_registry_keeps_its_token_and_says_an_app_will_not_do(
    key_file: Path, tmp_path: Path
) -> None:
    """registry ignores the App variables; with only them set, its error says why."""
    args = build_parser().parse_args(["registry", "--org", ORG, "--dest", f"oci:{tmp_path}/l"])
    with pytest.raises(UsageError) as caught:
        load_registry_config(args, app_env(key_file))
    message = str(caught.value)
    assert message.startswith("no GitHub token")
    assert "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE are set" in message
    assert "does not accept a GitHub App's tokens" in message
    assert "read:packages" in message
    both = app_env(key_file, GITHUB_TOKEN="ghp_classic")
    assert load_registry_config(args, both).token == "ghp_classic"


# git: the current token at each run, every token redacted


class Tokens:
    """A token source that hands out a new token each time it is told to renew."""

    def __init__(self) -> None:
        self.issued = ["ghs_first000000000000000000000000000000"]
        self.asked = 0

    def __call__(self) -> str:
        self.asked += 1
        return self.issued[-1]

    def renew(self) -> None:
        self.issued.append(f"ghs_next{len(self.issued):032d}")

    def secrets(self) -> tuple[str, ...]:
        return (*self.issued, "eyJhbGciOiJSUzI1NiJ9.jwt-of-the-app.signature")


def _header(env: dict[str, str], origin: str) -> str | None:
    for i in range(int(env["GIT_CONFIG_COUNT"])):
        if env[f"GIT_CONFIG_KEY_{i}"] == f"http.{origin}/.extraHeader":
            return env[f"GIT_CONFIG_VALUE_{i}"]
    return None


def _basic(user: str, token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def test_each_git_environment_carries_the_current_token() -> None:
    tokens = Tokens()
    git_ = Git(GitSettings("x-access-token", token_source=tokens, secrets_source=tokens.secrets))
    url = "https://github.com/acme/app.git"
    first = git_.environment(url)
    tokens.renew()
    second = git_.environment(url)
    assert _header(first, "https://github.com") == _basic("x-access-token", tokens.issued[0])
    assert _header(second, "https://github.com") == _basic("x-access-token", tokens.issued[1])
    assert tokens.asked == 2
    assert not any(tokens.issued[1] in v for v in first.values())
    local = git_.environment(None)  # a local step asks for no token
    assert _header(local, "https://github.com") is None and tokens.asked == 2


def test_redaction_covers_every_token_issued_so_far() -> None:
    """Computed at each use: a token renewed after Git was made is redacted too, in each of
    its forms, and so is every secret of the source (a JWT git never saw)."""
    tokens = Tokens()
    git_ = Git(GitSettings("x-access-token", token_source=tokens, secrets_source=tokens.secrets))
    git_.environment("https://github.com/acme/app.git")
    tokens.renew()
    late = tokens.issued[-1]
    text = " ".join(
        [
            *tokens.issued,
            _basic("x-access-token", late).split()[-1],
            base64.b64encode(late.encode()).decode(),
            tokens.secrets()[-1],
        ]
    )
    redacted = git_.redact(f"fatal: {text}")
    assert redacted.replace("<redacted>", "").strip() == "fatal:"
    alone = Git(GitSettings("u", token_source=tokens))  # without secrets_source: what git got
    alone.environment("https://github.com/acme/app.git")
    assert alone.redact(f"x {late} y") == "x <redacted> y"
    assert tokens.issued[0] in alone.redact(tokens.issued[0])  # never given to this one


def test_no_token_is_asked_for_a_foreign_host_and_a_failed_renewal_is_a_git_error() -> None:
    from github_org_backup.repos.host import GitHost

    tokens = Tokens()
    settings = GitSettings(
        "x-access-token", token_source=tokens, token_host=GitHost.for_api("https://api.github.com")
    )
    env = Git(settings).environment("https://github.com.evil.example/acme/app.git")
    assert tokens.asked == 0
    assert not any("extraHeader" in v for v in env.values())

    def refused() -> str:
        raise GitHubAccessError("GitHub App 1: the installation is gone")

    failing = Git(GitSettings("x-access-token", token_source=refused))
    with pytest.raises(GitError, match="no GitHub token for git: GitHub App 1"):
        failing.environment("https://github.com/acme/app.git")
    with pytest.raises(GitError, match="the installation is gone"):
        asyncio.run(
            failing.run(
                "ls-remote",
                "https://github.com/acme/app.git",
                url="https://github.com/acme/app.git",
            )
        )


# The identity against the stand-in's App endpoints


@pytest.fixture
def stand_in(keys: tuple[bytes, bytes]) -> Iterator[GitHubOrgStandIn]:
    with GitHubOrgStandIn(
        "http://127.0.0.1:9", app_id=APP_ID, app_public_key_pem=keys[1]
    ) as github:
        github.org(ORG)
        yield github


def _identity(
    github: GitHubOrgStandIn, pem: bytes, installation: int | None = None, owner: str = ORG
) -> AppIdentity:
    return AppIdentity(
        APP_ID, pem.decode(), installation, github.url, Owner("orgs", owner), retries=0
    )


def _sent(github: GitHubOrgStandIn, scheme: str) -> list[str]:
    found = []
    for _path, headers in github.received:
        kind, _, credential = headers.get("Authorization", "").partition(" ")
        if kind.lower() == scheme:
            found.append(credential)
    return found


def test_the_installation_is_found_and_its_token_kept_until_near_expiry(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    identity = _identity(stand_in, keys[0])
    token = identity.git_token()
    assert token == identity.git_token() == identity.auth().token
    assert stand_in.minted == [token]
    assert identity.installation_id == INSTALLATION
    assert [c.split("?")[0] for c in stand_in.calls] == [
        f"GET /orgs/{ORG}/installation",
        f"POST /app/installations/{INSTALLATION}/access_tokens",
    ]
    jwts = _sent(stand_in, "bearer")
    assert len(jwts) == 2 and set(jwts) <= set(identity.secrets())
    assert token in identity.secrets()
    identity.close()


def test_a_given_installation_id_is_not_looked_up(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    identity = _identity(stand_in, keys[0], INSTALLATION)
    identity.git_token()
    assert [c.split("?")[0] for c in stand_in.calls] == [
        f"POST /app/installations/{INSTALLATION}/access_tokens"
    ]


def test_a_token_near_expiry_is_renewed_for_the_api_and_for_git(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    """PyGithub renews 20 s before expires_at: a 21 s token is renewed about a second on.
    The listing sends the token of its moment, git then gets the same new one."""
    stand_in.token_life_s = 21
    stand_in.owners[ORG] = []
    identity = _identity(stand_in, keys[0])
    github = GitHubRepos(Owner("orgs", ORG), identity, stand_in.url, retries=0)
    try:
        asyncio.run(github.repositories())
        time.sleep(1.6)
        asyncio.run(github.repositories())
    finally:
        github.close()
    assert len(stand_in.minted) == 2
    assert [t for t in _sent(stand_in, "token")] == stand_in.minted
    assert identity.git_token() == stand_in.minted[-1]
    assert set(stand_in.minted) <= set(identity.secrets())


def test_threads_asking_at_once_buy_one_token(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    stand_in.delay_s = 0.2
    identity = _identity(stand_in, keys[0])
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(identity.git_token())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 8 and set(got) == set(stand_in.minted) and len(stand_in.minted) == 1
    assert sum(1 for c in stand_in.calls if c.endswith("/installation")) == 1


@pytest.mark.parametrize("installation", [None, INSTALLATION], ids=["looked-up", "given"])
def test_a_key_of_another_app_is_refused_with_what_to_check(
    installation: int | None,
    stand_in: GitHubOrgStandIn,
    other_keys: tuple[bytes, bytes],
) -> None:
    identity = _identity(stand_in, other_keys[0], installation)
    with pytest.raises(GitHubAccessError) as caught:
        identity.git_token()
    message = str(caught.value)
    assert "A JSON web token could not be decoded" in message
    assert "GITHUB_APP_PRIVATE_KEY_FILE is not one of this App's keys" in message
    assert "GITHUB_APP_ID" in message
    assert not [line for line in key_lines(other_keys[0]) if line in message]
    assert stand_in.minted == []


def test_an_app_not_installed_on_the_org_and_a_wrong_installation_id(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    with pytest.raises(GitHubAccessError) as caught:
        _identity(stand_in, keys[0], owner="elsewhere").git_token()
    assert f"GitHub App {APP_ID} is not installed on the organisation 'elsewhere'" in str(
        caught.value
    )
    assert "GITHUB_APP_INSTALLATION_ID" in str(caught.value)
    with pytest.raises(GitHubAccessError, match="installation 999 not found .*check GITHUB_APP"):
        _identity(stand_in, keys[0], 999).git_token()


def test_pygithub_debug_log_never_shows_a_minted_token(
    stand_in: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    """PyGithub logs each answer at debug level; the access-token answer holds the token."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("github.Requester")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        identity = _identity(stand_in, keys[0])
        token = identity.git_token()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        identity.close()
    assert any("access_tokens" in r for r in records), records
    assert not [r for r in records if token in r]
    assert not [r for r in records for jwt in _sent(stand_in, "bearer") if jwt in r]


@dataclass
class UserInstallStandIn(GitHubOrgStandIn):
    """The stand-in with the App installed on a user: ``/users/{user}/installation`` (JWT)
    and ``/installation/repositories`` (installation token), in GitHub's shapes."""

    def _answer(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        path = raw.partition("?")[0].strip("/").split("/")
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        if len(path) == 3 and path[0] == "users" and path[2] == "installation":
            with self._lock:
                self.calls.append(f"{method} {raw}")
                if scheme.lower() != "bearer" or self._check_jwt(credential):
                    return 401, b'{"message": "A JSON web token could not be decoded"}', {}
                if path[1] not in self.users:
                    return 404, b'{"message": "Not Found"}', {}
                found = self._installation_json(None) | {"target_type": "User"}
                return 200, json.dumps(found).encode(), {}
        if path == ["installation", "repositories"]:
            with self._lock:
                self.calls.append(f"{method} {raw}")
                self.received.append((raw, headers))
                if not self._token_valid(credential):
                    return 401, b'{"message": "Bad credentials"}', {}
                repos = [self._json(o, r) for o in self.users for r in self.owners.get(o, [])]
                page = {"total_count": len(repos), "repositories": repos}
                return 200, json.dumps(page).encode(), {}
        return super()._answer(method, raw, headers, body)


def test_an_app_installed_on_a_user_lists_what_the_installation_may_read(
    keys: tuple[bytes, bytes],
) -> None:
    """--user with an App: the installation is found at /users/USER/installation and the
    repositories, private ones too, come from /installation/repositories (an installation
    token has no /user)."""
    from tests.harness.github_repos import StandInRepo

    with UserInstallStandIn(
        "http://127.0.0.1:9", app_id=APP_ID, app_public_key_pem=keys[1], users={"alice"}
    ) as stand_in:
        stand_in.owners["alice"] = [StandInRepo("notes"), StandInRepo("site", visibility="public")]
        identity = AppIdentity(
            APP_ID, keys[0].decode(), None, stand_in.url, Owner("users", "alice"), retries=0
        )
        github = GitHubRepos(Owner("users", "alice"), identity, stand_in.url, retries=0)
        try:
            listed = asyncio.run(github.repositories())
        finally:
            github.close()
            identity.close()
    assert [(r.full_name, r.visibility) for r in listed] == [
        ("alice/notes", "private"),
        ("alice/site", "public"),
    ]
    paths = [c.split("?")[0] for c in stand_in.calls]
    assert paths == [
        "GET /users/alice/installation",
        f"POST /app/installations/{INSTALLATION}/access_tokens",
        "GET /installation/repositories",
    ]


def test_the_identity_protocol_is_met_by_both_kinds(key_file: Path) -> None:
    identities: list[Identity] = [
        TokenIdentity("ghp_x"),
        AppIdentity(APP_ID, key_file.read_text(), 1, "http://127.0.0.1:9", Owner("orgs", ORG)),
    ]
    assert [i.kind for i in identities] == ["token", "app"]


# Whole runs


@dataclass
class RecordingGitServer(GitServer):
    """The git server, keeping when each credential came and whether it was taken."""

    seen: list[tuple[float, str, bool]] = field(default_factory=list)

    def _authorized(self, header: str) -> bool:
        taken = super()._authorized(header)
        self.seen.append((time.time(), header, taken))
        return taken


@dataclass
class AppWorld(ReposPlaces):
    server: RecordingGitServer
    github: GitHubOrgStandIn
    key_pem: bytes
    key_file: Path
    tmp: Path
    dest_folder: ClassVar[str] = "mirrors"

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def tmpdir(self) -> Path:
        return self.tmp / "tmpdir"

    def add(self, *names: str) -> None:
        for name in names:
            self.github.owners[ORG].append(_repo(name))
            self.server.create(ORG, name)

    def env(self, **extra: str) -> dict[str, str]:
        return (
            app_env(
                self.key_file,
                GITHUB_API_URL=self.github.url,
                HOME=str(self.home),
                TMPDIR=str(self.tmpdir),
            )
            | extra
        )

    def run(self, *extra: str, env: dict[str, str] | None = None) -> Any:
        return run_cli(self.args(*extra), self.tmp, env=env or self.env(), timeout=120)

    def secrets(self) -> list[str]:
        """Every minted token and JWT, in every form, and the key's body lines."""
        found = []
        for token in self.github.minted:
            found += [
                token,
                base64.b64encode(token.encode()).decode(),
                base64.b64encode(f"x-access-token:{token}".encode()).decode(),
            ]
        found += _sent(self.github, "bearer")
        return found + key_lines(self.key_pem)

    def leaks(self, result: Any) -> list[str]:
        """Secrets found in the run's output, report, mirrors, HOME or TMPDIR."""
        blobs = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
        for root in (self.dest, self.home, self.tmpdir):
            for path in root.rglob("*"):
                if path.is_file():
                    blobs[str(path)] = path.read_bytes()
        if self.report_path.exists():
            blobs["report"] = self.report_path.read_bytes()
        return [
            f"{where}: {secret[:12]}…"
            for secret in self.secrets()
            for where, data in blobs.items()
            if secret.encode() in data
        ]


def _repo(name: str) -> Any:
    from tests.harness.github_repos import StandInRepo

    return StandInRepo(name, has_wiki=False)


@pytest.fixture
def world(tmp_path: Path, keys: tuple[bytes, bytes]) -> Iterator[AppWorld]:
    server = RecordingGitServer(tmp_path / "server").start()
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(keys[0])
    key_file.chmod(0o600)
    github = GitHubOrgStandIn(server.url, app_id=APP_ID, app_public_key_pem=keys[1]).start()
    github.org(ORG)
    github.accept_on(server)
    world = AppWorld(server, github, keys[0], key_file, tmp_path)
    world.home.mkdir()
    world.tmpdir.mkdir()
    yield world
    github.stop()
    server.stop()


def _git_users_and_tokens(world: AppWorld) -> set[tuple[str, str]]:
    pairs = set()
    for _when, header, _taken in world.server.seen:
        user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
        pairs.add((user, password))
    return pairs


@pytest.mark.integration
def test_repos_with_only_an_app_mirrors_and_shows_no_secret(world: AppWorld) -> None:
    """git gets user x-access-token and an installation token; no token, JWT or piece of
    the key is in the output (debug logs included), the report, the mirrors, HOME or TMPDIR."""
    world.add("app", "lib")

    result = world.run("--log-level", "debug")

    assert result.returncode == 0, result.stderr
    summary = world.report()["summary"]
    assert summary["repositories_copied"] == 2 and summary["repositories_failed"] == 0
    for name in ("app", "lib"):
        mirror = world.dest / ORG / f"{name}.git"
        refs = git("for-each-ref", "--format=%(refname)", env={"GIT_DIR": str(mirror)})
        assert "refs/heads/main" in refs.splitlines()
    assert world.github.minted, "no installation token was minted"
    assert _git_users_and_tokens(world) <= {("x-access-token", t) for t in world.github.minted}
    assert all(taken for _, _, taken in world.server.seen)
    assert f"GET /orgs/{ORG}/installation" in [c.split("?")[0] for c in world.github.calls]
    listing = [h for p, h in world.github.received if p.startswith(f"/orgs/{ORG}/repos")]
    assert listing and all(h["Authorization"].startswith("token ghs_") for h in listing)
    assert all(world.github.tokens[t] == BOT_LOGIN for t in world.github.minted)
    assert world.leaks(result) == []
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_a_given_installation_id_skips_the_lookup(world: AppWorld) -> None:
    world.add("app")
    result = world.run(env=world.env(GITHUB_APP_INSTALLATION_ID=str(INSTALLATION)))
    assert result.returncode == 0, result.stderr
    paths = [c.split("?")[0] for c in world.github.calls]
    assert f"GET /orgs/{ORG}/installation" not in paths
    assert f"POST /app/installations/{INSTALLATION}/access_tokens" in paths


@pytest.mark.integration
def test_a_run_that_outlives_its_first_token_renews_it_for_git(world: AppWorld) -> None:
    """A 22 s token (PyGithub renews it 20 s before it ends) and a run of about 28 s, one
    repository at a time, each git request slowed by 1 s: several tokens are minted, git's
    requests after the first token's end carry a later one, and every request is taken. A
    run that kept its first token would see the git server refuse it from 22 s on."""
    world.github.token_life_s = 22
    world.server.delay_s = 1.0
    names = [f"repo{i:02}" for i in range(10)]
    world.add(*names)

    started = time.monotonic()
    result = world.run("--concurrency", "1")
    took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    summary = world.report()["summary"]
    assert summary["repositories_copied"] == len(names), summary
    assert summary["repositories_failed"] == 0
    assert len(world.github.minted) > 1, world.github.minted
    first = world.github.minted[0]
    first_ends = world.github.token_expiry[first]
    late = [(when, header) for when, header, _ in world.server.seen if when >= first_ends]
    assert late, f"the run ({took:.0f} s) ended before the first token did"
    assert all(first not in base64.b64decode(h.split(" ", 1)[1]).decode() for _, h in late)
    assert all(taken for _, _, taken in world.server.seen)
    assert world.leaks(result) == []


@pytest.mark.integration
def test_a_wrong_key_is_a_clear_error_without_traceback_or_key(
    world: AppWorld, other_keys: tuple[bytes, bytes]
) -> None:
    world.add("app")
    world.key_file.write_bytes(other_keys[0])
    world.key_pem = other_keys[0]

    result = world.run()

    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "GITHUB_APP_PRIVATE_KEY_FILE is not one of this App's keys" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert world.github.minted == []
    assert world.leaks(result) == []
    assert not (world.dest / ORG / "app.git").exists()


# deploy/: the App variant of the repos job, beside the images job's token


SPLIT = ROOT / "deploy" / "kubernetes" / "split"
APP_COMPONENT = ROOT / "deploy" / "kubernetes" / "repos" / "app"
APP_WORKFLOW = ROOT / "deploy" / "github-actions" / "repos-backup-app.yml"


def _tool(name: str) -> str:
    """A linter of the deploy extra (pip install -e '.[deploy]'): these tests need it."""
    path = shutil.which(name)
    assert path, f"{name} is missing: pip install -e '.[deploy]'"
    return path


def _cronjobs(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "CronJob"}


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


@pytest.mark.integration  # runs kubectl and kubernetes-validate
def test_the_split_deployment_runs_repos_as_the_app_and_registry_with_the_token(
    tmp_path: Path,
) -> None:
    """kubectl kustomize of split/: both jobs, the repos job with the App's key and ID and no
    token, the images job with the token Secret; hardened, valid against the schemas, and
    each job's environment one the CLI accepts (a token and an App never together)."""
    _tool("kubectl")  # kustomize() would skip without it
    documents = kustomize(SPLIT)
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert names == CREATES["."] | {("Secret", "github-org-backup-app")}
    assert documents[0]["kind"] == "Namespace"
    jobs = _cronjobs(documents)
    for cronjob in jobs.values():
        assert security_problems(cronjob) == [], cronjob["metadata"]["name"]
    repos = _pod(jobs["github-org-backup-repos"])
    (container,) = repos["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "repos" and args.github_token_file is None
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GITHUB_APP_ID"].isdigit()
    volumes = {v["name"]: v for v in repos["volumes"]}
    assert "github-token" not in volumes
    assert volumes["github-app"]["secret"]["secretName"] == "github-org-backup-app"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    key_path = Path(env["GITHUB_APP_PRIVATE_KEY_FILE"])
    assert mounts[str(key_path.parent)] == "github-app"
    (secret,) = [d for d in documents if d["metadata"]["name"] == "github-org-backup-app"]
    assert key_path.name in secret["stringData"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/backup"}
    images = _pod(jobs["github-org-backup"])
    (backup,) = images["containers"]
    assert any(a.startswith("--github-token-file=") for a in backup["args"])
    assert not [e for e in backup.get("env", []) if e["name"].startswith("GITHUB_APP_")]
    configmap = next(d for d in documents if d["kind"] == "ConfigMap")
    assert not [k for k in configmap["data"] if k.startswith("GITHUB_APP_") or k == "GITHUB_TOKEN"]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_app_component_is_a_component_whose_files_exist() -> None:
    (component,) = [
        d for d in yaml.safe_load_all((APP_COMPONENT / "kustomization.yaml").read_text()) if d
    ]
    assert component["kind"] == "Component"
    for entry in component["resources"] + [p["path"] for p in component["patches"]]:
        assert (APP_COMPONENT / entry).is_file(), entry
    (split,) = load(SPLIT / "kustomization.yaml")
    assert split["components"] == ["../images/job", "../repos/job", "../repos/app"]


@pytest.mark.integration  # runs actionlint and zizmor
def test_the_app_workflow_lints_clean_and_keeps_the_key_in_a_private_file() -> None:
    """The App workflow lints clean, asks for no token permissions, sets no GITHUB_TOKEN, its
    commands parse, and the key goes to a file made under umask 077 and removed always."""
    for linter in ("actionlint", "zizmor"):  # zizmor_and_actionlint() would skip without them
        _tool(linter)
    zizmor_and_actionlint(APP_WORKFLOW)
    workflow = yaml.safe_load(APP_WORKFLOW.read_text())
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    steps = workflow["jobs"]["backup"]["steps"]
    assert "GITHUB_TOKEN" not in APP_WORKFLOW.read_text()
    lines = run_lines(APP_WORKFLOW, "repos") + run_lines(APP_WORKFLOW, "verify")
    assert len(lines) == 2
    for line in lines:
        parse_line(line)
    (write,) = [s for s in steps if "APP_KEY" in s.get("env", {})]
    assert write["env"]["APP_KEY"] == "${{ secrets.REPOS_BACKUP_APP_KEY }}"
    assert write["run"].lstrip().startswith("umask 077")
    (backup,) = [s for s in steps if "github-org-backup repos" in s.get("run", "")]
    assert backup["env"]["GITHUB_APP_ID"] == "${{ vars.REPOS_BACKUP_APP_ID }}"
    assert "GITHUB_APP_PRIVATE_KEY_FILE=" in backup["run"]
    (remove,) = [s for s in steps if s.get("run", "").startswith("rm ")]
    assert remove["if"] == "${{ always() }}"
    assert steps.index(write) < steps.index(backup) < steps.index(remove)
    for step in steps:
        assert "${{" not in step.get("run", ""), step


@pytest.mark.integration
def test_metadata_with_only_an_app_backs_up_and_shows_no_secret(world: AppWorld) -> None:
    """repos --metadata as the App: issues, releases with their assets and the org's teams
    are read with installation tokens; the storage host gets none; no secret is anywhere."""
    world.add("app")
    world.github.populate(f"{ORG}/app", issues=5, pulls=1, releases=1)
    world.github.team(ORG, "ops", members=("alice",), repos={f"{ORG}/app": "maintain"})

    result = world.run("--metadata", "--log-level", "debug")

    assert result.returncode == 0, result.stderr[-3000:]
    store = world.dest / ORG / "metadata"
    assert len(list((store / "repos" / "app" / "issues").glob("*.json"))) == 6
    assert list((world.dest / ORG / "assets" / "sha256").iterdir())
    assert list((store / "org" / "teams").glob("*.json"))
    metadata = [h for p, h in world.github.received if p.startswith(f"/repos/{ORG}/app/")]
    assert metadata and all(h["Authorization"].startswith("token ghs_") for h in metadata)
    assert world.github.storage_received
    assert all("Authorization" not in h for _, h in world.github.storage_received)
    assert world.leaks(result) == []


@pytest.mark.integration
def test_a_metadata_run_that_outlives_its_first_token_renews_it_for_the_api(
    world: AppWorld,
) -> None:
    """A 22 s token and a --metadata run of about 30 s, each API answer slowed: the API's
    requests after the first token's end carry a later one, and none is refused."""
    world.github.token_life_s = 22
    world.github.delay_s = 0.15
    names = [f"repo{i}" for i in range(8)]
    world.add(*names)
    for name in names:
        world.github.populate(f"{ORG}/{name}", issues=3, pulls=12, reviews_per_pull=1)

    result = world.run("--metadata=issues,pulls")

    assert result.returncode == 0, result.stderr[-3000:]
    assert len(world.github.minted) > 1, world.github.minted
    first = world.github.minted[0]
    used = [h.get("Authorization", "") for p, h in world.github.received if "/pulls" in p]
    late = used[used.index(next(u for u in used if first not in u)) :]
    assert late and all(first not in u for u in late)
    statuses = [status for path, status in world.github.answered if path.startswith("/repos/")]
    assert 401 not in statuses
    for name in names:
        pulls = list((world.dest / ORG / "metadata" / "repos" / name / "pulls").glob("*.json"))
        assert len(pulls) == 12
    assert world.leaks(result) == []


@pytest.mark.integration
def test_no_command_line_holds_an_app_secret_while_metadata_and_git_run(
    world: AppWorld,
) -> None:
    """While repos --metadata runs as the App (git fetching, the API read, tokens renewed),
    no process's command line holds a minted token, a JWT or a line of the key."""
    world.github.token_life_s = 21  # renewed about every second
    world.github.delay_s = 0.03
    world.server.delay_s = 0.2
    world.add("app", "lib", "web")
    for name in ("app", "lib", "web"):
        world.github.populate(f"{ORG}/{name}", issues=20, pulls=4)
    args = ["repos", "--org", ORG, "--dest", str(world.dest), "--metadata"]
    process = subprocess.Popen(
        [*COMMAND, *args],
        env=cli_env(world.tmp, world.env()),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen_git = 0
    while process.poll() is None:
        secrets = [s.encode() for s in world.secrets()]
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path("/proc", pid, "cmdline").read_bytes()
            except OSError:
                continue
            assert not any(secret in argv for secret in secrets), argv[:200]
            seen_git += b"git" in argv.split(b"\0")[0] and b"fetch" in argv
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert seen_git > 0, "the scan never saw a git fetch running"
    assert len(world.github.minted) > 1
    assert not any(secret.encode() in out + err for secret in world.secrets())
