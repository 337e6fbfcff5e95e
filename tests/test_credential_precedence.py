"""Where registry credentials come from, in docker's order, and what a refusal names.

The order: the environment's explicit credentials (DEST_USERNAME/DEST_PASSWORD, for the
registries a command writes to), then docker config.json, where ``credHelpers[host]`` beats
``credsStore`` and either beats ``auths`` (docker's cli/config/configfile). In an ``auths``
entry a ``registrytoken`` goes first, then an ``identitytoken``, then ``auth`` (which overrides
``username``/``password``). The helper cases run real ``docker-credential-NAME`` scripts.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from github_org_backup.errors import AuthError, UsageError
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry.auth import Authenticator
from github_org_backup.stores.registry.credentials import (
    ENVIRONMENT,
    Credentials,
    CredentialStore,
    nothing_found,
)
from tests.conftest import LiveRegistry
from tests.harness.clirun import run_in_process
from tests.harness.images import Corpus, generate_corpus
from tests.harness.tokens import TokenService

integration = pytest.mark.integration
HOST = "registry.example.com"
REALM = "https://auth.example.com/token"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def helper(directory: Path, name: str, known: dict[str, tuple[str, str]]) -> Path:
    """A ``docker-credential-NAME`` on PATH that knows ``known`` (host: (user, secret)) and
    answers anything else as docker's helpers do; every host asked is logged."""
    directory.mkdir(exist_ok=True)
    log = directory / f"{name}.log"
    table = json.dumps({h: {"Username": u, "Secret": s} for h, (u, s) in known.items()})
    (directory / f"{name}.json").write_text(table)
    script = directory / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        "read -r host\n"
        f'echo "$host" >> "{log}"\n'
        f'exec python3 -c \'import json,sys; t=json.load(open("{directory / name}.json")); '
        "h=sys.argv[1]; print(json.dumps(t[h])) if h in t else "
        '(print("credentials not found in native keychain"), sys.exit(1))\' "$host"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alpha and beta know HOST under different users; gamma knows nothing."""
    directory = tmp_path / "bin"
    helper(directory, "alpha", {HOST: ("alpha-user", "alpha-secret")})
    helper(directory, "beta", {HOST: ("beta-user", "beta-secret")})
    helper(directory, "gamma", {})
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


ENV = Credentials("env-user", "env-secret", source=ENVIRONMENT)
AUTHS = {HOST: {"auth": b64("auths-user:auths-secret")}}

# (what the config holds, explicit credentials given, the user found, its source's start)
PRECEDENCE = [
    pytest.param(
        {"credHelpers": {HOST: "alpha"}, "credsStore": "beta", "auths": AUTHS},
        True,
        "env-user",
        ENVIRONMENT,
        id="environment-beats-everything",
    ),
    pytest.param(
        {"credHelpers": {HOST: "alpha"}, "credsStore": "beta", "auths": AUTHS},
        False,
        "alpha-user",
        "credential helper docker-credential-alpha (credHelpers[registry.example.com]",
        id="credHelpers-beats-credsStore-and-auths",
    ),
    pytest.param(
        {"credsStore": "beta", "auths": AUTHS},
        False,
        "beta-user",
        "credential helper docker-credential-beta (credsStore",
        id="credsStore-beats-auths",
    ),
    pytest.param(
        {"credHelpers": {"other.example.com": "alpha"}, "auths": AUTHS},
        False,
        "auths-user",
        "docker config ",
        id="another-hosts-helper-leaves-auths",
    ),
    pytest.param(
        {"credHelpers": {HOST: "gamma"}, "credsStore": "beta", "auths": AUTHS},
        False,
        "",
        f"{ENVIRONMENT}: not given",
        id="helper-not-found-is-anonymous-as-in-docker",
    ),
]


@integration
@pytest.mark.parametrize(("config", "with_env", "user", "source"), PRECEDENCE)
async def test_precedence(
    tmp_path: Path,
    helpers: Path,
    config: dict[str, Any],
    with_env: bool,
    user: str,
    source: str,
) -> None:
    """Explicit, then credHelpers[host], then credsStore, then auths; a helper that holds
    nothing for the host means no credentials, without falling back to auths (docker's
    native store overwrites the auths entry's user and password with its empty answer)."""
    explicit = {HOST: ENV} if with_env else {}
    store = CredentialStore.from_docker_config(_write(tmp_path, config), explicit)
    found = await store.lookup(HOST)
    assert (found.username, found.source.startswith(source)) == (user, True), found.source
    assert "-secret" not in found.source + repr(found)


@integration
async def test_a_helper_that_holds_nothing_says_so_in_order(tmp_path: Path, helpers: Path) -> None:
    """Nothing found: the answer lists every place looked in, in docker's order, and says
    that auths was not read because a helper serves the host."""
    path = _write(tmp_path, {"credHelpers": {HOST: "gamma"}, "auths": AUTHS})
    found = await CredentialStore.from_docker_config(path).lookup(HOST)
    assert not found.present
    places = found.source.split("; ")
    assert places[0] == f"{ENVIRONMENT}: not given for {HOST}"
    assert places[1] == (
        f"credential helper docker-credential-gamma (credHelpers[{HOST}] in docker config "
        f"{path}): credentials not found in native keychain"
    )
    assert places[2].startswith(f"docker config {path} auths[{HOST}]: not read")
    assert (helpers / "gamma.log").read_text() == f"{HOST}\n"


@integration
async def test_a_failing_helper_is_an_error_that_never_quotes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that fails otherwise than docker's not-found stops the run (as docker does),
    and its output, which might hold a secret, is not quoted."""
    leak = secrets.token_hex(8)
    script = tmp_path / "docker-credential-broken"
    script.write_text(f'#!/bin/sh\necho \'{{"Secret": "{leak}"}}\'\nexit 3\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    store = CredentialStore.from_docker_config(_write(tmp_path, {"credsStore": "broken"}))
    with pytest.raises(UsageError, match="exit status 3") as caught:
        await store.lookup(HOST)
    assert leak not in str(caught.value)


@integration
async def test_a_registrytoken_in_auths_goes_first_even_beside_a_helper(
    tmp_path: Path, helpers: Path
) -> None:
    """docker's native store replaces only the user, password and identity token of the
    auths entry, and a registry token is sent before anything else."""
    config = {"credHelpers": {HOST: "alpha"}, "auths": {HOST: {"registrytoken": "rt"}}}
    found = await CredentialStore.from_docker_config(_write(tmp_path, config)).lookup(HOST)
    assert (found.registry_token, found.username) == ("rt", "")
    assert found.source.endswith(f"auths[{HOST}] registrytoken")


AUTH_ENTRIES = [
    pytest.param(
        {"auth": b64("a:pw"), "username": "ignored", "password": "ignored"},
        Credentials("a", "pw"),
        id="auth-overrides-username-password",
    ),
    pytest.param({"username": "u", "password": "pw"}, Credentials("u", "pw"), id="username"),
    pytest.param(
        {"auth": b64("u:"), "identitytoken": "refresh"},
        Credentials("u", identity_token="refresh"),
        id="identitytoken-beats-password",
    ),
    pytest.param(
        {"auth": b64("u:pw"), "identitytoken": "refresh", "registrytoken": "bearer"},
        Credentials("u", registry_token="bearer"),
        id="registrytoken-beats-all",
    ),
    pytest.param({"email": "a@example.com"}, nothing_found(), id="email-only-is-nothing"),
]


@pytest.mark.parametrize(("entry", "expected"), AUTH_ENTRIES)
async def test_auths_entry_shapes(
    tmp_path: Path, entry: dict[str, str], expected: Credentials
) -> None:
    """docker's auths shapes, keyed by host or by URL; the source names the file and key."""
    path = _write(tmp_path, {"auths": {f"https://{HOST}/v1/": entry}})
    found = await CredentialStore.from_docker_config(path).lookup(HOST)
    assert found == expected
    if expected.present:
        assert found.source.startswith(f"docker config {path} auths[https://{HOST}/v1/]")


async def test_docker_hub_credentials_under_their_index_key(tmp_path: Path) -> None:
    """`docker login` keeps Docker Hub's under https://index.docker.io/v1/."""
    path = _write(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": b64("h:pw")}}})
    store = CredentialStore.from_docker_config(path)
    assert await store.lookup("registry-1.docker.io") == Credentials("h", "pw")


async def test_a_malformed_auth_names_its_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, {"auths": {HOST: {"auth": b64("no-colon")}}})
    with pytest.raises(UsageError, match=rf"auths\[{HOST}\]: 'auth' is not base64"):
        await CredentialStore.from_docker_config(path).lookup(HOST)


async def test_nothing_found_lists_every_place_in_order(tmp_path: Path) -> None:
    """With no file, and with a file without the host, the answer says where it looked;
    explicit credentials for other hosts are named as such."""
    missing = tmp_path / "none" / "config.json"
    found = await CredentialStore.from_docker_config(missing).lookup(HOST)
    assert (
        found.source
        == f"{ENVIRONMENT}: not given for {HOST}; docker config {missing}: no such file"
    )
    path = _write(tmp_path, {"auths": {"other.example.com": {"auth": b64("u:p")}}})
    store = CredentialStore.from_docker_config(path, {"backup.example.com": ENV})
    found = await store.lookup(HOST)
    assert found.source == (
        f"{ENVIRONMENT}: given for backup.example.com only, not for {HOST}; docker config "
        f"{path}: no credHelpers[{HOST}], no credsStore, no auths[{HOST}] entry"
    )


# The token protocol: a registry token is sent as it is; refusals name the source.

BEARER = f'Bearer realm="{REALM}",service="r"'
TOKEN_URL = f"{REALM}?scope=repository%3Aa%3Apull&service=r"


async def test_a_registry_token_is_sent_as_bearer_without_asking_the_realm() -> None:
    registry_token = secrets.token_hex(12)
    creds = Credentials(registry_token=registry_token, source="docker config X auths[h]")
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry(HOST), creds, session)
        with aioresponses() as mocked:  # any request would fail: none is mocked
            await auth.challenge(BEARER, ["repository:a:pull"], None)
            assert await auth.header(["repository:a:pull"]) == f"Bearer {registry_token}"
            assert not mocked.requests
        assert auth.token_fetches == 0
        # Refused once: the transport sends it once more, and a second 401 is refusal()'s.
        await auth.challenge(BEARER, ["repository:a:pull"], f"Bearer {registry_token}")
        assert await auth.header(["repository:a:pull"]) == f"Bearer {registry_token}"
        with pytest.raises(AuthError, match="holds only a registry token") as caught:
            await Authenticator(Registry(HOST), creds, session).challenge(
                'Basic realm="r"', [], None
            )
    assert registry_token not in str(caught.value)


async def test_basic_without_credentials_lists_where_it_looked(tmp_path: Path) -> None:
    """The message says none was found, where the lookup looked, and what to do."""
    store = CredentialStore.from_docker_config(tmp_path / "config.json")
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry(HOST), lambda: store.lookup(HOST), session)
        with pytest.raises(AuthError) as caught:
            await auth.challenge('Basic realm="r"', [], None)
    message = str(caught.value)
    assert f"{ENVIRONMENT}: not given for {HOST}; docker config " in message
    assert f"docker login {HOST}" in message and "DEST_USERNAME and DEST_PASSWORD" in message


async def test_refusals_name_the_source_tried_never_the_secret() -> None:
    """A Basic header refused, a token service refusing, and a registry's last 401 all name
    where the credentials came from."""
    password = secrets.token_hex(12)
    creds = Credentials("u", password, source=ENVIRONMENT)
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry(HOST), creds, session)
        await auth.challenge('Basic realm="r"', [], None)
        # A refused Basic header is sent once more (a proxy may have dropped it), then the
        # registry's last 401 is refusal()'s, below.
        await auth.challenge('Basic realm="r"', [], creds.basic_header())
        auth = Authenticator(Registry(HOST), creds, session)
        with aioresponses() as mocked:
            mocked.get(TOKEN_URL, status=401)
            with pytest.raises(AuthError, match=f"refused the credentials from {ENVIRONMENT}"):
                await auth.challenge(BEARER, ["repository:a:pull"], None)
            url = f"https://{HOST}/v2/a/tags/list"
            mocked.get(url, status=403, payload={"errors": [{"code": "DENIED", "message": "no"}]})
            async with session.get(url) as response:
                refusal = await auth.refusal(response, "GET tags", "Bearer x")
    assert f"the credentials from {ENVIRONMENT} were refused" in str(refusal)
    assert "HTTP 403: DENIED" in str(refusal) and refusal.status == 403
    for text in (str(refusal), repr(creds)):
        assert password not in text


def _write(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


# End to end: the real registries, the CLI in this process.


@pytest.fixture
def image(source: LiveRegistry, namespace: str) -> Corpus:
    corpus = generate_corpus(repositories=1, tags=1, prefix=namespace, artifacts=False)
    source.pusher().push(corpus)
    return corpus


def _docker_dir(tmp_path: Path, config: dict[str, Any]) -> str:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    _write(directory, config)
    return str(directory)


def _auth(registry: LiveRegistry, password: str | None = None) -> dict[str, str]:
    return {"auth": b64(f"{registry.username}:{password or registry.password}")}


@integration
def test_copy_uses_dest_credentials_for_dst_and_verify_names_them_when_refused(
    tmp_path: Path, image: Corpus, source: LiveRegistry, destination: LiveRegistry, namespace: str
) -> None:
    """copy writes with DEST_USERNAME/DEST_PASSWORD, the source read with config.json's
    auths; a wrong DEST_PASSWORD makes verify's error name the environment, not config.json."""
    shot = image.images[0]
    docker = _docker_dir(tmp_path, {"auths": {source.host: _auth(source)}})
    env = {
        "DOCKER_CONFIG": docker,
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": destination.password,
    }
    dst = f"http://{destination.host}/{namespace}/{shot.repository}:{shot.tag}"
    src = f"http://{source.host}/{shot.repository}:{shot.tag}"
    copied = run_in_process(["copy", src, dst], env)
    assert copied.returncode == 0, copied.stderr
    walked = destination.walker().walk(f"{namespace}/{shot.repository}", shot.tag)
    assert (walked.digest, walked.problems) == (shot.manifest.digest, [])

    wrong = env | {"DEST_PASSWORD": secrets.token_hex(8)}
    checked = run_in_process(["verify", "--dest", f"http://{destination.host}/{namespace}"], wrong)
    assert checked.returncode not in (0, 3), checked.stderr
    said = checked.stderr + checked.stdout
    assert f"refused the credentials from {ENVIRONMENT}" in said or (
        f"the credentials from {ENVIRONMENT} were refused" in said
    ), said
    assert "config.json" not in said
    assert wrong["DEST_PASSWORD"] not in said and destination.password not in said


@integration
def test_dest_credentials_never_go_to_a_source(
    tmp_path: Path, image: Corpus, source: LiveRegistry, destination: LiveRegistry, namespace: str
) -> None:
    """Reading from the backup registry into a layout, DEST_USERNAME/DEST_PASSWORD are not
    sent: the image fails with a message saying where the lookup looked."""
    shot = image.images[0]
    env = {
        "DOCKER_CONFIG": _docker_dir(tmp_path, {"auths": {source.host: _auth(source)}}),
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": destination.password,
    }
    seeded = run_in_process(
        [
            "copy",
            f"http://{source.host}/{shot.repository}:{shot.tag}",
            f"http://{destination.host}/{namespace}/seed:{shot.tag}",
        ],
        env,
    )
    assert seeded.returncode == 0, seeded.stderr
    report = tmp_path / "report.json"
    result = run_in_process(
        [
            "copy",
            "--report",
            str(report),
            f"http://{destination.host}/{namespace}/seed:{shot.tag}",
            f"oci:{tmp_path / 'layout'}:seed:{shot.tag}",
        ],
        env,
    )
    assert result.returncode == 2, result.stderr  # its one image failed for want of access
    (failed,) = json.loads(report.read_text())["images"]
    assert f"{ENVIRONMENT}: not given for {destination.host}" in failed["error"], failed
    assert f"docker login {destination.host}" in failed["error"]


@integration
def test_a_helper_beats_auths_and_a_registrytoken_skips_the_realm(
    tmp_path: Path,
    image: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    token_service: TokenService,
    namespace: str,
) -> None:
    """Against the real registries: credHelpers[host] wins over a wrong auths entry, and a
    registrytoken reaches the token-auth registry with no token request."""
    shot = image.images[0]
    bin_dir = tmp_path / "bin"
    log = helper(
        bin_dir, "backup", {destination.host: (destination.username, destination.password)}
    )
    token = token_service.admin_token([shot.repository])
    config = {
        "credHelpers": {destination.host: "backup"},
        "auths": {
            destination.host: _auth(destination, secrets.token_hex(8)),
            source.host: {"registrytoken": token},
        },
    }
    env = {
        "DOCKER_CONFIG": _docker_dir(tmp_path, config),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    before = token_service.requests
    result = run_in_process(
        [
            "copy",
            f"http://{source.host}/{shot.repository}:{shot.tag}",
            f"http://{destination.host}/{namespace}/helped:{shot.tag}",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert token_service.requests == before
    assert log.read_text() == f"{destination.host}\n"
    walked = destination.walker().walk(f"{namespace}/helped", shot.tag)
    assert walked.digest == shot.manifest.digest


@integration
def test_a_refused_dest_password_is_named_in_a_copys_image_error(
    tmp_path: Path, image: Corpus, source: LiveRegistry, destination: LiveRegistry, namespace: str
) -> None:
    """The first request to the backup registry with a wrong DEST_PASSWORD fails its image
    with an error naming DEST_USERNAME/DEST_PASSWORD, not config.json."""
    shot = image.images[0]
    env = {
        "DOCKER_CONFIG": _docker_dir(tmp_path, {"auths": {source.host: _auth(source)}}),
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": secrets.token_hex(8),
    }
    report = tmp_path / "report.json"
    result = run_in_process(
        [
            "copy",
            "--report",
            str(report),
            f"http://{source.host}/{shot.repository}:{shot.tag}",
            f"http://{destination.host}/{namespace}/refused:{shot.tag}",
        ],
        env,
    )
    assert result.returncode == 2, result.stderr  # its one image failed for want of access
    (failed,) = json.loads(report.read_text())["images"]
    assert ENVIRONMENT in failed["error"] and "config.json" not in failed["error"], failed["error"]
    assert env["DEST_PASSWORD"] not in result.stderr + report.read_text()


@integration
def test_a_failing_helper_runs_once_and_ends_the_run_with_2(
    tmp_path: Path, image: Corpus, source: LiveRegistry, destination: LiveRegistry, namespace: str
) -> None:
    """A credential helper that fails is not run again for every image: the first failure is
    every image's, and the run, which could not go on, ends with 2."""
    calls = tmp_path / "calls"
    script = tmp_path / "bin" / "docker-credential-broken"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho called >> {calls}\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    config = {"auths": {source.host: _auth(source)}, "credHelpers": {destination.host: "broken"}}
    env = {
        "DOCKER_CONFIG": _docker_dir(tmp_path, config),
        "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}",
    }
    specs = [
        {
            "src": f"http://{source.host}/{shot.repository}:{shot.tag}",
            "dst": f"http://{destination.host}/{namespace}/helped{n}:{shot.tag}",
        }
        for n, shot in enumerate(image.images[:3])
    ]
    (tmp_path / "specs.json").write_text(json.dumps(specs))
    result = run_in_process(["copy", "--specs", str(tmp_path / "specs.json")], env)
    assert result.returncode == 2, result.stderr
    assert calls.read_text().count("called") == 1
    assert result.stderr.count('"image_failed"') == len(specs)


@integration
async def test_a_helper_is_asked_for_docker_hub_under_its_index_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker stores (and asks a helper for) Docker Hub's credentials under
    https://index.docker.io/v1/; a helper keyed that way must answer for every Hub name."""
    log = helper(tmp_path / "bin", "hub", {"https://index.docker.io/v1/": ("hub-user", "pw")})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    store = CredentialStore.from_docker_config(_write(tmp_path, {"credsStore": "hub"}))
    for name in ("registry-1.docker.io", "docker.io"):
        found = await store.lookup(name)
        assert found is not None and found.username == "hub-user", name
    assert set(log.read_text().split()) == {"https://index.docker.io/v1/"}
