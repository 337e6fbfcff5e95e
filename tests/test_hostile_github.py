"""A hostile or out-of-spec GitHub API against `registry --dry-run`: what it can and cannot do.

Each end-to-end test runs the CLI in a sandbox against the GitHub stand-in or a recording
endpoint serving hostile JSON, and asserts what the endpoint received (the pinned API version,
the Accept type, the token only where the user pointed), that nothing was written outside the
destination, and the child's peak RSS and wall time. Unit tests pin the defaults.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from github_org_backup.errors import GitHubAccessError, GitHubAnswerInvalid, UsageError
from github_org_backup.github.cache import listed_entry
from github_org_backup.github.http import (
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_MAX_PAGES,
    PAGE_SIZE,
    ApiLimits,
    GitHubSettings,
    parse_page,
)
from github_org_backup.github.packages import _REQUEST_INTERVAL_S, LIST_CAP, GitHubPackages
from github_org_backup.github.refusals import their_message, token_kind
from github_org_backup.model.packages import (
    NAMED,
    FailedPackage,
    Owner,
    Package,
    TagCollector,
    tagged_versions,
)
from github_org_backup.settings.options import github_settings
from tests.harness.background import BackgroundLoop
from tests.harness.github_api import Fault, GitHubStandIn, StandInPackage
from tests.harness.hostile import Measured, MiB, Recorder, Sandbox, run_measured

pytestmark = pytest.mark.integration

TOKEN = "ghp_" + secrets.token_hex(18)  # made at run time, like every secret in the tests
ACTIONS_TOKEN = "ghs_" + secrets.token_hex(18)
D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")
RSS_LIMIT_MIB = 200


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.stop()


def dry_run(
    sandbox: Sandbox, api_url: str, *, env: dict[str, str] | None = None, timeout: float = 60
) -> Measured:
    dest = sandbox.root / "dest"
    extra = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": api_url, "GITHUB_API_RETRIES": "0"}
    result = run_measured(
        ["registry", "--org", "acme", "--dest", f"oci:{dest}", "--dry-run"],
        sandbox,
        env=extra | (env or {}),
        timeout=timeout,
    )
    assert not result.timed_out, result
    print(
        f"measured: exit {result.returncode}, {result.wall_s:.1f} s, {result.peak_rss_mib:.0f} MiB"
    )
    assert sandbox.files_outside(dest) == [], result
    assert result.peak_rss_mib <= RSS_LIMIT_MIB, result
    assert TOKEN not in result.stdout + result.stderr, "the token was printed"
    return result


def events(result: Measured, name: str) -> list[dict[str, Any]]:
    lines = (line for line in result.stderr.splitlines() if line.startswith("{"))
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def assert_api_headers(headers: dict[str, str]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered.get("accept") == "application/vnd.github+json", headers
    assert lowered.get("x-github-api-version") == "2022-11-28", headers
    assert lowered.get("authorization") == f"token {TOKEN}", headers


@pytest.fixture
def stand_in() -> Iterator[GitHubStandIn]:
    api = GitHubStandIn(owners={"acme": []}, tokens={TOKEN: {"read:packages"}}).start()
    yield api
    api.stop()


# Items 10 and 13: the pinned API version, and a tag listed on two versions


def test_every_request_pins_the_api_version_and_a_tag_listed_twice_keeps_the_first(
    tmp_path: Path, stand_in: GitHubStandIn
) -> None:
    """Every request (list, both version pages) sends Accept and X-GitHub-Api-Version; a tag
    on two versions plans the first listed (newest) and warns with both digests."""
    # A second page of versions
    many: list[tuple[str, list[str]]] = [(f"sha256:{n:064x}", []) for n in range(150)]
    stand_in.owners["acme"] = [
        StandInPackage("app", [(D1, ["latest"]), (D2, ["latest", "1.0"]), *many]),
    ]
    result = dry_run(Sandbox.make(tmp_path), stand_in.url)
    assert result.returncode == 0, result
    assert len(stand_in.request_headers) == 3
    for headers in stand_in.request_headers:
        assert_api_headers(headers)
    assert f"latest                   {D1}" in result.stdout, result
    assert f"1.0                      {D2}" in result.stdout, result
    [twice] = events(result, "tag_listed_twice")
    assert (twice["tag"], twice["digest"], twice["ignored_digest"]) == ("latest", D1, D2)
    assert result.wall_s < 20


# Item 9: GitHub's own message with every 403 on the package list


@pytest.mark.parametrize(
    ("fault", "token", "hint"),
    [
        ("ip-allow-list", TOKEN, False),
        ("classic-forbidden", TOKEN, False),
        ("fine-grained", TOKEN, True),
        ("integration", ACTIONS_TOKEN, True),
    ],
    ids=["ip-allow-list", "classic-forbidden", "fine-grained", "integration"],  # not the tokens
)
def test_a_refused_package_list_shows_githubs_message(
    tmp_path: Path, stand_in: GitHubStandIn, fault: str, token: str, hint: bool
) -> None:
    """An IP allow list or an organisation's token policy is reported in GitHub's words and
    not blamed on the token type; a fine-grained or App token gets the classic-PAT hint too."""
    stand_in.tokens[token] = {"read:packages"}
    stand_in.faults = {"": Fault(fault)}  # type: ignore[arg-type]
    result = dry_run(Sandbox.make(tmp_path), stand_in.url, env={"GITHUB_TOKEN": token})
    assert result.returncode == 2, result
    said = Fault(fault).answer("acme", set())[1]  # type: ignore[arg-type]
    assert isinstance(said, dict)
    error = result.stderr.strip().splitlines()[-1]
    assert f'GitHub said: "{said["message"]}"' in error, error
    assert ("needs a classic personal access token" in error) is hint, error
    assert "organisation 'acme'" in error and "HTTP 403" in error
    assert token not in result.stderr
    assert_api_headers(stand_in.request_headers[0] | {"Authorization": f"token {TOKEN}"})


# A hostile API, served by a recording endpoint

Answer = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


def _list_item(name: Any, versions: int = 1, ident: int = 1) -> dict[str, Any]:
    return {"id": ident, "name": name, "package_type": "container", "version_count": versions}


def _version(ident: int, digest: Any, tags: Any) -> dict[str, Any]:
    return {"id": ident, "name": digest, "metadata": {"container": {"tags": tags}}}


def hostile_api(loop: BackgroundLoop, listing: Answer, versions: dict[str, Answer]) -> Recorder:
    """A GitHub API whose package list and per-package versions answer as given."""

    async def handle(request: web.Request) -> web.StreamResponse:
        page = int(request.query.get("page", "1"))
        parts = request.path.strip("/").split("/")
        if parts == ["orgs", "acme", "packages"]:
            return await listing(request, page)
        if len(parts) == 6 and parts[5] == "versions" and parts[4] in versions:
            return await versions[parts[4]](request, page)
        return web.json_response({"message": "Not Found"}, status=404)

    return Recorder(loop, handle).start()


def pages(*bodies: Any) -> Answer:
    async def answer(request: web.Request, page: int) -> web.StreamResponse:
        return web.json_response(bodies[page - 1] if page <= len(bodies) else [])

    return answer


def assert_only_api_requests(recorder: Recorder) -> None:
    assert recorder.received
    for request in recorder.received:
        assert request.method == "GET" and request.body == b""
        assert_api_headers(request.headers)


# Item 14: out-of-shape entries and versions


def test_out_of_shape_entries_and_versions_are_skipped_and_named(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """Each malformed package entry and version is skipped and named; the rest is planned."""
    listing = pages(
        [
            _list_item("good", 9),
            _list_item(None),  # name: null would have become a package called None
            "not-an-object",
            _list_item(5),
            _list_item("not-a-list"),
            _list_item("html"),
        ]
    )
    good = pages(
        [
            _version(1, D1, ["1.0"]),
            {"id": 2, "name": D2, "metadata": ["container"]},  # was a crash, exit 70
            _version(3, D2, "latest"),  # was the tags l, a, t, e, s, t
            _version(4, None, ["2.0"]),
            _version(5, "sha256:nothex", ["3.0"]),
            _version(6, D3, [7, "4.0", "bad tag"]),
            42,
            {"id": 8, "name": D2},  # metadata is optional: an untagged version
        ]
    )
    not_a_list = pages({"message": "not a list"})

    async def html(request: web.Request, page: int) -> web.StreamResponse:
        return web.Response(text="<html>Unicorn!</html>", content_type="text/html")

    answers = {"good": good, "not-a-list": not_a_list, "html": html}
    api = hostile_api(loop, listing, answers)
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 1, result  # the malformed entries failed, alone
    assert "good: keep 2, drop 0" in result.stdout, result
    assert f"1.0                      {D1}" in result.stdout
    assert f"4.0                      {D3}" in result.stdout
    for gone in ("None", "latest", " l ", "2.0", "3.0"):
        assert gone not in result.stdout, result
    failed = [line for line in result.stdout.splitlines() if ": failed" in line]
    assert len(failed) == 5, result.stdout
    assert any("entry 2 on page 1" in line and "name is null" in line for line in failed)
    assert any("entry 3 on page 1" in line for line in failed)
    assert any("entry 4 on page 1" in line and "of type int" in line for line in failed)
    assert any(line.startswith("not-a-list: failed") and "JSON object" in line for line in failed)
    assert any(line.startswith("html: failed") and "with no JSON" in line for line in failed)
    skipped = {e["version"]: e["error"] for e in events(result, "version_skipped")}
    assert set(skipped) == {"version 2 (id 2)", "version 3 (id 3)", "version 4 (id 4)"} | {
        "version 5 (id 5)",
        "version 7",
    }
    assert len(events(result, "tag_skipped")) == 2
    assert_only_api_requests(api)
    assert result.wall_s < 20


# Bounds: bytes and JSON values per page


async def _stream(request: web.Request, chunks: Iterator[bytes], **headers: Any) -> web.Response:
    """Write ``chunks`` until they end or the client hangs up."""
    length = headers.pop("content_length", None)
    response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    try:
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        pass
    return response  # type: ignore[return-value]


def _filler(total: int, unit: bytes, head: bytes = b"[", tail: bytes = b"{}]") -> Iterator[bytes]:
    yield head
    block = unit * (MiB // len(unit))
    for _ in range(total // len(block)):
        yield block
    yield tail


def _gzip_bomb(total: int) -> bytes:
    """``total`` bytes of JSON (a list of spaces) in a gzip body of a few hundred kilobytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(b"[")]
    block = b" " * MiB
    out += [packer.compress(block) for _ in range(total // MiB)]
    return b"".join([*out, packer.compress(b"]"), packer.flush()])


def test_a_200_mib_page_is_refused_within_the_page_bounds(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A 200 MiB versions page (declared, chunked or gzip'd) and a 9 MiB page of empty objects
    each fail their own package, read at most 10 MiB; the healthy package is planned."""
    names = ["declared", "chunked", "bomb", "objects", "ok"]
    listing = pages([_list_item(n, 1, i) for i, n in enumerate(names)])
    bomb = _gzip_bomb(200 * MiB)

    async def declared(request: web.Request, page: int) -> web.StreamResponse:
        return await _stream(request, _filler(200 * MiB, b" "), content_length=200 * MiB + 4)

    async def chunked(request: web.Request, page: int) -> web.StreamResponse:
        return await _stream(request, _filler(200 * MiB, b'{"name":"x"},'))

    async def gzipped(request: web.Request, page: int) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    async def objects(request: web.Request, page: int) -> web.StreamResponse:
        return await _stream(request, _filler(9 * MiB, b"{},"))

    answers = {"declared": declared, "chunked": chunked, "bomb": gzipped, "objects": objects}
    api = hostile_api(loop, listing, answers | {"ok": pages([_version(1, D1, ["1.0"])])})
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 1, result
    assert "ok: keep 1" in result.stdout, result
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if ": failed" in line}
    assert set(lines) == {"declared", "chunked", "bomb", "objects"}, result.stdout
    assert "declares 209715204 bytes" in lines["declared"]
    assert "larger than the 10485760 bytes" in lines["chunked"]
    assert "larger than the 10485760 bytes" in lines["bomb"]
    assert "more than the 100000 a page" in lines["objects"]
    assert_only_api_requests(api)
    assert result.wall_s < 30, result


def test_a_200_mib_package_list_is_a_discovery_error(tmp_path: Path, loop: BackgroundLoop) -> None:
    """A package list page past 10 MiB ends discovery with a clear error (exit 2)."""

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        return await _stream(request, _filler(200 * MiB, b'{"name":"x"},'))

    api = hostile_api(loop, listing, {})
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 2, result
    assert "larger than the 10485760 bytes a page may have" in result.stderr, result
    assert len(api.received) == 1
    assert_only_api_requests(api)
    assert result.wall_s < 30, result


# Bounds: pages per listing


def _endless(item: Callable[[int], Any]) -> Answer:
    async def answer(request: web.Request, page: int) -> web.StreamResponse:
        link = f"<{request.url.with_query(dict(request.query) | {'page': str(page + 1)})}>"
        return web.json_response([item(page)], headers={"Link": f'{link}; rel="next"'})

    return answer


def test_endless_version_pages_fail_that_package(tmp_path: Path, loop: BackgroundLoop) -> None:
    """Endless `Link: rel="next"` on a package's versions fails that package after the pages
    its listed version_count fills; a list that lies about the count meets GITHUB_API_MAX_PAGES."""
    listing = pages([_list_item("endless", 5, 1), _list_item("liar", 10**9, 2), _list_item("ok")])
    endless = _endless(lambda page: _version(page, f"sha256:{page:064x}", []))
    answers = {"endless": endless, "liar": endless, "ok": pages([_version(1, D1, ["1.0"])])}
    api = hostile_api(loop, listing, answers)
    result = dry_run(Sandbox.make(tmp_path), api.url, env={"GITHUB_API_MAX_PAGES": "20"})
    assert result.returncode == 1, result
    assert "ok: keep 1" in result.stdout, result
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if ": failed" in line}
    assert "after 3 pages (3 versions read, and the list says 5)" in lines["endless"], result
    assert "after 20 pages" in lines["liar"], result
    paths = [r.path_qs.partition("?")[0] for r in api.received]
    assert paths.count("/orgs/acme/packages/container/endless/versions") == 3
    assert paths.count("/orgs/acme/packages/container/liar/versions") == 20
    assert_only_api_requests(api)
    assert result.wall_s < 20, result


def test_an_endless_package_list_is_a_discovery_error(tmp_path: Path, loop: BackgroundLoop) -> None:
    """Endless pages of the package list end, with the defaults, after the 101 pages GitHub's
    10,000-package cap allows, as a discovery error (exit 2) naming the owner."""
    api = hostile_api(loop, _endless(lambda page: _list_item(f"p{page}", 1, page)), {})
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 2, result
    assert "kept linking a next page of the package list of organisation 'acme'" in result.stderr
    assert "after 101 pages (101 packages)" in result.stderr, result
    assert len(api.received) == 101
    assert_only_api_requests(api)
    assert result.wall_s < 30, result


# Redirects: the token goes only to the API the user named


def test_a_redirect_to_another_origin_is_refused(tmp_path: Path, loop: BackgroundLoop) -> None:
    """A 301 from the API to another origin is not followed: that origin receives nothing."""
    attacker = Recorder(loop).start()

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        target = f"{attacker.url}/orgs/acme/packages?page={page}"
        return web.Response(status=301, headers={"Location": target})

    api = hostile_api(loop, listing, {})
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 2, result
    assert "to another origin (http://127.0.0.1): refused" in result.stderr, result
    assert attacker.received == [] and attacker.saw_secret(TOKEN) == []
    assert_only_api_requests(api)
    assert result.wall_s < 20, result


def test_a_redirect_to_no_valid_url_is_a_discovery_error(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A Location that is not a URL (an unclosed IPv6 bracket) is GitHub's failure to answer,
    exit 2 with a reason, not a crash."""

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "https://[x/orgs/acme/packages"})

    api = hostile_api(loop, listing, {})
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 2, result
    assert "with a redirect that is not a valid URL" in result.stderr, result
    assert "Traceback" not in result.stderr


async def test_a_trickled_page_fails_by_its_deadline(loop: BackgroundLoop) -> None:
    """A page trickled a byte at a time fails its package when the read deadline passes."""

    async def trickle(request: web.Request, page: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for _ in range(200):
                await response.write(b" ")
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        return response

    api = hostile_api(loop, pages([_list_item("slow")]), {"slow": trickle})
    limits = ApiLimits(read_deadline_s=1.0)
    github = GitHubPackages(Owner("orgs", "acme"), TOKEN, api.url, retries=0, limits=limits)
    try:
        found = [p async for p in github.packages(lambda name: True)]
    finally:
        github.close()
    assert len(found) == 1 and isinstance(found[0], FailedPackage), found
    assert "took longer than 1 s to arrive" in found[0].error


async def _discover(url: str, token: str = TOKEN) -> list[Package | FailedPackage]:
    github = GitHubPackages(Owner("orgs", "acme"), token, url, retries=0)
    try:
        return [p async for p in github.packages(lambda name: True)]
    finally:
        github.close()


async def test_githubs_message_is_one_line_without_the_token(loop: BackgroundLoop) -> None:
    """A refusal whose message echoes the token and carries Markdown lines is shown as one
    line, the token replaced."""

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        message = f"token {TOKEN} is not allowed\n# Heading\n[link](http://evil)"
        return web.json_response({"message": message}, status=403)

    api = hostile_api(loop, listing, {})
    with pytest.raises(GitHubAccessError) as caught:
        await _discover(api.url)
    error = str(caught.value)
    assert TOKEN not in error and "\n" not in error, error
    assert 'GitHub said: "token *** is not allowed # Heading [link](http://evil)"' in error


async def test_a_same_origin_redirect_loop_ends(loop: BackgroundLoop) -> None:
    """301s from the API to itself are followed at most four times in a row."""

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        hop = int(request.query.get("hop", "0")) + 1
        return web.Response(status=301, headers={"Location": f"{request.path}?hop={hop}"})

    api = hostile_api(loop, listing, {})
    with pytest.raises(GitHubAnswerInvalid, match="more than 4 redirects"):
        await _discover(api.url)
    assert len(api.received) == 5


async def test_a_same_origin_redirect_is_followed_with_its_query(loop: BackgroundLoop) -> None:
    """A 301 to the API's own origin (a renamed owner) is followed, its query kept."""

    async def listing(request: web.Request, page: int) -> web.StreamResponse:
        if "moved" not in request.query:
            return web.Response(status=301, headers={"Location": f"{request.path_qs}&moved=1"})
        return web.json_response([_list_item("app")] if page == 1 else [])

    api = hostile_api(loop, listing, {"app": pages([_version(1, D1, ["1.0"])])})
    [found] = await _discover(api.url)
    assert found == Package("app", {"1.0": D1}, 0)
    first, second = (r.path_qs for r in api.received[:2])
    assert "moved" not in first and second == f"{first}&moved=1"
    assert_only_api_requests(api)


async def test_a_404_with_a_fine_grained_token_gets_the_classic_hint() -> None:
    """GitHub answers a fine-grained token's package list with 404: the hint names the kind."""
    api = GitHubStandIn(owners={"acme": []}, tokens={"github_pat_x": {"read:packages"}}).start()
    api.faults = {"": Fault("not-found")}
    try:
        with pytest.raises(GitHubAccessError) as caught:
            await _discover(api.url, "github_pat_x")
    finally:
        api.stop()
    assert "not found, or not visible" in str(caught.value)
    assert "a fine-grained personal access token" in str(caught.value)
    assert "needs a classic personal access token" in str(caught.value)


# PyGithub's own log lines


def test_pygithubs_log_lines_in_a_repos_listing_are_json(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """A 403 with Retry-After makes PyGithub's retry log at INFO ("Request GET ... failed
    with 403") while `repos` lists an organisation: it comes out as one JSON line on stderr,
    as the tool's own events do, never as PyGithub's plain text."""
    answered: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path != "/orgs/acme/repos":
            return web.json_response({"message": "Not Found"}, status=404)
        answered.append(request.path_qs)
        if len(answered) == 1:
            headers = {"Retry-After": "0"}
            return web.json_response({"message": "slow down"}, status=403, headers=headers)
        return web.json_response([])

    api = Recorder(loop, handle).start()
    sandbox = Sandbox.make(tmp_path)
    dest = sandbox.root / "mirrors"
    result = run_measured(
        ["repos", "--org", "acme", "--dest", str(dest), "--allow-empty"],  # lists none
        sandbox,
        env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": api.url},
        timeout=60,
    )
    assert result.returncode == 0, result
    assert len(answered) == 2, answered  # the 403, then the listing
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    plain = [line for line in lines if not line.startswith("{")]
    assert plain == [], result
    logged = [json.loads(line) for line in lines]
    theirs = [e for e in logged if str(e.get("logger", "")).startswith("github.")]
    assert any("failed with 403" in e["event"] for e in theirs), result
    assert all(e["level"] == "info" for e in theirs), theirs
    assert TOKEN not in result.stderr


# The defaults, cheaply


def test_the_defaults_bound_a_page_and_a_listing() -> None:
    """10 MiB and 100,000 values per page; the package list ends within 30 s at the pacing;
    a package's versions stop after the pages its count fills, never past 1,000."""
    api = github_settings("registry", {})
    limits = api.limits
    assert api == GitHubSettings() and limits == ApiLimits() and api.retries == 6
    assert (limits.max_page_bytes, limits.max_pages) == (DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_PAGES)
    assert (limits.max_page_bytes // MiB, limits.max_pages) == (10, 1000)
    assert limits.read_deadline_s < 30  # a trickled page fails its package within 30 s
    list_pages = min(limits.max_pages, LIST_CAP // PAGE_SIZE + 1)
    assert list_pages * _REQUEST_INTERVAL_S < 30
    assert limits.version_pages(5, PAGE_SIZE) == 3
    assert limits.version_pages(25_000, PAGE_SIZE) == 275 + 2
    assert limits.version_pages(10**9, PAGE_SIZE) == limits.version_pages(None, PAGE_SIZE) == 1000


def test_the_github_api_variables_are_read_by_settings_with_their_bounds() -> None:
    """GITHUB_API_MAX_PAGES, GITHUB_API_MAX_PAGE_BYTES and (registry only) GITHUB_API_RETRIES
    become the command's GitHubSettings; a value out of range is a usage error naming it."""
    env = {"GITHUB_API_MAX_PAGES": "20", "GITHUB_API_MAX_PAGE_BYTES": " 2048 "}
    env |= {"GITHUB_API_RETRIES": "0"}
    limits = ApiLimits(max_page_bytes=2048, max_pages=20)
    assert github_settings("registry", env) == GitHubSettings(limits, retries=0)
    assert github_settings("repos", env) == GitHubSettings(limits, retries=6)
    edges = {"GITHUB_API_MAX_PAGES": "1000000", "GITHUB_API_MAX_PAGE_BYTES": "1024"}
    assert github_settings("registry", edges).limits == ApiLimits(1024, max_pages=1_000_000)
    assert github_settings("registry", {"GITHUB_API_RETRIES": "20"}).retries == 20
    bad = [
        ("GITHUB_API_MAX_PAGES", "0", "from 1 to 1000000"),
        ("GITHUB_API_MAX_PAGES", "1000001", "from 1 to 1000000"),
        ("GITHUB_API_MAX_PAGE_BYTES", "10MiB", "from 1024 to 1073741824"),
        ("GITHUB_API_MAX_PAGE_BYTES", "1023", "from 1024 to 1073741824"),
        ("GITHUB_API_RETRIES", "21", "from 0 to 20"),
        ("GITHUB_API_RETRIES", "-1", "from 0 to 20"),
        ("GITHUB_API_RETRIES", "\u00b2", "from 0 to 20"),  # a digit int() does not take
    ]
    for name, value, bounds in bad:
        with pytest.raises(UsageError) as caught:
            github_settings("registry", {name: value})
        assert str(caught.value) == f"{name}={value!r}: expected a whole number {bounds}"
    assert github_settings("repos", {"GITHUB_API_RETRIES": "21"}).retries == 6  # not repos'


def test_a_page_of_too_many_values_is_refused_unparsed() -> None:
    """The values bound counts before json.loads builds anything; a real page is far below."""
    limits = ApiLimits()
    real = json.dumps([_version(i, D1, ["1.0", "latest"]) for i in range(100)])
    assert len(parse_page(real, limits, "u")) == 100
    with pytest.raises(GitHubAnswerInvalid, match="100001 JSON values"):
        parse_page("[" + "0," * 100_000 + "0]", limits, "u")
    with pytest.raises(GitHubAnswerInvalid, match="nested too deeply"):
        parse_page("[" * 50_000 + "]" * 50_000, limits, "u")


@pytest.mark.parametrize(
    ("versions", "tags", "untagged", "skipped"),
    [
        ([_version(1, D1, ["a"]), _version(2, D2, ["a", "b"])], {"a": D1, "b": D2}, 0, 0),
        ([{"id": 1, "name": D1, "metadata": []}], {}, 0, 1),
        ([{"id": 1, "name": D1, "metadata": {"container": "x"}}], {}, 0, 1),
        ([_version(1, D1, "latest")], {}, 0, 1),
        ([_version(1, D1, None), {"name": D2, "metadata": None}], {}, 2, 0),
        ([_version(1, D1, [None, "ok"])], {"ok": D1}, 0, 1),
        ([_version(1, D1.upper(), ["x"]), "v", None], {}, 0, 3),
    ],
)
def test_tagged_versions(
    versions: list[Any], tags: dict[str, str], untagged: int, skipped: int
) -> None:
    """Out-of-shape versions and tags are skipped one by one; the first listing of a tag wins."""
    package = tagged_versions("app", versions)
    assert (package.tags, package.untagged, len(package.skipped)) == (tags, untagged, skipped)
    assert isinstance(package, Package)


def test_a_package_is_collected_page_by_page_and_names_at_most_twenty() -> None:
    """Tags are collected across pages (the first listing still wins); a flood of malformed
    versions names twenty and counts the rest."""
    collector = TagCollector("app")
    collector.add([_version(1, D1, ["a"])])
    collector.add([_version(2, D2, ["a", "b"]), *([42] * 30)])
    package = collector.package()
    assert package.tags == {"a": D1, "b": D2}
    assert len(package.skipped) == NAMED + 1 == 21
    assert package.skipped[0] == "version 3: a version of type int, not an object"
    assert package.skipped[-1] == "and 10 more versions or tags out of shape"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"name": None}, "name is null"),
        ({"name": ""}, "name is empty"),
        ({"name": ["a"]}, "name is of type list"),
        ({"name": "a\nb"}, "control characters"),
        ({"name": "x" * 256}, "too long"),
        ([], "of type list, not an object"),
    ],
)
def test_listed_entry_refuses_out_of_shape_entries(item: Any, reason: str) -> None:
    entry = listed_entry(item)
    assert isinstance(entry, str) and reason in entry


def test_source_text_is_one_bounded_line_and_token_kinds() -> None:
    """GitHub's message is shown as one line of at most 300 characters; tokens by prefix."""
    text = their_message({"message": "a\nb\x1b[31m" + "c" * 1000})
    assert "\n" not in text and "\x1b" not in text and len(text) == 300
    assert their_message({"message": ["x"]}) == "['x']"
    assert [token_kind(t) for t in ("ghp_1", "github_pat_1", "ghs_1", "other")] == [
        "classic",
        "fine-grained",
        "app",
        "unknown",
    ]


def test_a_package_with_an_out_of_shape_version_fails_and_keeps_its_good_tags(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """One malformed version is named in the report and fails its package (exit 1, so prune
    leaves the package alone), while its well-formed versions are still planned."""
    listing = pages([_list_item("good", 2)])
    versions = pages([_version(1, D1, ["1.0"]), {"id": 2, "name": D2, "metadata": ["container"]}])
    api = hostile_api(loop, listing, {"good": versions})
    result = dry_run(Sandbox.make(tmp_path), api.url)

    assert result.returncode == 1, result
    assert f"1.0                      {D1}" in result.stdout, result
    out_of_shape = events(result, "package_out_of_shape")
    assert [e["package"] for e in out_of_shape] == ["good"], result
    assert "version 2 (id 2)" in out_of_shape[0]["skipped"][0]
    assert_only_api_requests(api)


def test_a_package_listing_more_than_100000_tags_fails_alone() -> None:
    """Pages within their bounds can still list 90,000 tags a version: past 100,000 tags the
    package fails (1.95 GB in 37 s before)."""
    from github_org_backup.errors import OverLimit
    from github_org_backup.model.packages import MAX_TAGS, TagCollector

    assert MAX_TAGS == 100_000
    tags = [[f"t{i}-{j}" for j in range(1000)] for i in range(101)]
    versions = [
        {"id": i, "name": f"sha256:{i:064x}", "metadata": {"container": {"tags": tags[i]}}}
        for i in range(101)
    ]
    collector = TagCollector("app")
    with pytest.raises(OverLimit, match="more than 100000 tags"):
        collector.add(versions)
    assert len(collector.tags) == 100_000


def test_packages_whose_names_differ_only_in_case_never_share_a_repository(
    tmp_path: Path, loop: BackgroundLoop
) -> None:
    """`app` and `APP` would both write acme/app: the second one discovery reaches fails,
    named, instead of silently replacing the first one's tag (which then lost its history)."""
    listing = pages([_list_item("app", 1), _list_item("APP", 1)])
    answers = {
        "app": pages([_version(1, D1, ["1.0.0"])]),
        "APP": pages([_version(2, D2, ["1.0.0"])]),
    }
    api = hostile_api(loop, listing, answers)
    result = dry_run(Sandbox.make(tmp_path), api.url)
    assert result.returncode == 1, result
    assert (D1 in result.stdout) != (D2 in result.stdout), result  # one of them, not both
    failed = [line for line in result.stdout.splitlines() if ": failed" in line]
    assert len(failed) == 1 and "differ only in case" in failed[0], result.stdout


async def test_response_headers_sent_a_byte_at_a_time_fail_at_the_deadline() -> None:
    """The socket timeout trips only on silence: headers trickled a byte every 50 ms are cut
    off at the read deadline (1 s here, 25 s by default) instead of holding discovery for ever."""
    from github_org_backup.errors import BackupError

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 10_000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url, limits = f"http://127.0.0.1:{port}", ApiLimits(read_deadline_s=1.0)
    github = GitHubPackages(Owner("orgs", "acme"), TOKEN, url, retries=0, limits=limits)
    started = time.monotonic()
    try:
        with pytest.raises(BackupError):
            _ = [p async for p in github.packages(lambda name: True)]
    finally:
        github.close()
        server.close()
    assert time.monotonic() - started < 10
