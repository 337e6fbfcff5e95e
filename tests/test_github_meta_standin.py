"""The GitHub metadata stand-in answers as GitHub does: pages, ETags, since, 410, assets, Apps."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.harness.github_meta import BOT_LOGIN, MASK, GitHubOrgStandIn, app_key_pair, stamp
from tests.harness.gitserver import GitServer

TOKEN = "test-token-meta"
AUTH = {"Authorization": f"token {TOKEN}", "Accept": "application/vnd.github+json"}
ETAG = re.compile(r'^W/"[0-9a-f]{64}"$')


class Clock:
    """A wall clock a test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def github(clock: Clock) -> Iterator[GitHubOrgStandIn]:
    with GitHubOrgStandIn("http://127.0.0.1:9", tokens={TOKEN: "backup-bot"}, clock=clock) as gh:
        yield gh


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return app_key_pair()


def get(github: GitHubOrgStandIn, path: str, **headers: str) -> requests.Response:
    return requests.get(github.url + path, headers=AUTH | headers, timeout=10)


def links(response: requests.Response) -> dict[str, str]:
    return {rel: link["url"] for rel, link in response.links.items()}


def all_pages(github: GitHubOrgStandIn, path: str) -> list[Any]:
    items: list[Any] = []
    url: str | None = github.url + path
    while url:
        answer = requests.get(url, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        items += answer.json()
        url = links(answer).get("next")
    return items


def test_issue_list_pages_past_100_with_next_and_last_links(github: GitHubOrgStandIn) -> None:
    github.populate("acme/big", issues=230, pulls=20)
    first = get(github, "/repos/acme/big/issues?state=all&per_page=100")
    assert first.status_code == 200
    assert len(first.json()) == 100
    assert set(links(first)) == {"next", "last"}
    assert parse_qs(urlsplit(links(first)["last"]).query)["page"] == ["3"]
    assert links(first)["next"].startswith(github.named_url + "/repos/acme/big/issues?")
    middle = requests.get(links(first)["next"], headers=AUTH, timeout=10)
    assert set(links(middle)) == {"prev", "next", "last", "first"}
    numbers = [
        x["number"] for x in all_pages(github, "/repos/acme/big/issues?state=all&per_page=100")
    ]
    assert sorted(numbers) == list(range(1, 251))
    assert numbers == sorted(numbers, reverse=True)  # created, newest first
    pulls = [x for x in first.json() if "pull_request" in x]
    assert pulls and all(p["pull_request"]["url"].endswith(f"/pulls/{p['number']}") for p in pulls)
    # per_page is capped at 100 and defaults to 30; state defaults to open
    assert len(get(github, "/repos/acme/big/issues?state=all&per_page=500").json()) == 100
    opened = all_pages(github, "/repos/acme/big/issues")
    assert len(get(github, "/repos/acme/big/issues").json()) == 30
    assert opened and all(x["state"] == "open" for x in opened)
    assert len(opened) < 250


def test_weak_etag_304_is_not_counted_and_moves_with_a_change(github: GitHubOrgStandIn) -> None:
    github.populate("acme/app", issues=3, comments_per_issue=1)
    first = get(github, "/repos/acme/app/issues?state=all")
    etag = first.headers["ETag"]
    assert ETAG.match(etag)
    assert etag == f'W/"{hashlib.sha256(first.content).hexdigest()}"'
    assert github.counted == 1
    again = get(github, "/repos/acme/app/issues?state=all", **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert github.counted == 1
    assert again.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]
    assert [status for _, status in github.answered] == [200, 304]
    github.comment("acme/app", 2, "A new word.")
    changed = get(github, "/repos/acme/app/issues?state=all", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert github.counted == 2
    assert int(changed.headers["X-RateLimit-Remaining"]) == 4998
    # an unknown token is refused and not counted
    refused = requests.get(
        github.url + "/repos/acme/app/issues", headers={"Authorization": "token nope"}, timeout=10
    )
    assert refused.status_code == 401
    assert refused.json()["message"] == "Bad credentials"
    assert github.counted == 2
    github.reset_counts()
    assert (github.counted, github.requests, github.answered) == (0, [], [])


def test_since_follows_the_logical_clock_and_parent_bumps(github: GitHubOrgStandIn) -> None:
    github.add_repo_metadata("acme/app")
    one = github.issue("acme/app", "One", labels=["bug"])
    two = github.issue("acme/app", "Two")
    first = github.comment("acme/app", one.number, "First")
    assert first.updated == one.updated
    assert stamp(first.updated) == github.now == "2026-01-01T00:00:03Z"  # #1, #2, the comment
    inclusive = get(github, f"/repos/acme/app/issues?state=all&since={github.now}").json()
    assert [x["number"] for x in inclusive] == [one.number]
    github.tick()
    mark = github.now
    later = github.comment("acme/app", two.number, "Later")
    since = get(github, f"/repos/acme/app/issues?state=all&since={mark}").json()
    assert [x["number"] for x in since] == [two.number]
    assert since[0]["updated_at"] == since[0]["updated_at"] > mark
    comments = get(github, f"/repos/acme/app/issues/comments?since={mark}").json()
    assert [c["id"] for c in comments] == [later.id]
    assert comments[0]["issue_url"] == f"{github.named_url}/repos/acme/app/issues/{two.number}"
    everything = get(github, "/repos/acme/app/issues/comments").json()
    assert [c["id"] for c in everything] == [first.id, later.id]
    per_issue = get(github, f"/repos/acme/app/issues/{one.number}/comments?since={mark}").json()
    assert per_issue == []
    # an edit moves the issue; a label rename shows the new name but moves nothing
    github.tick()
    mark = github.now
    github.rename_label("acme/app", "bug", "defect")
    assert get(github, f"/repos/acme/app/issues?state=all&since={mark}").json() == []
    github.edit_issue("acme/app", one.number, body="Edited")
    edited = get(github, f"/repos/acme/app/issues?state=all&since={mark}").json()
    assert [(x["number"], x["body"]) for x in edited] == [(one.number, "Edited")]
    assert [label["name"] for label in edited[0]["labels"]] == ["defect"]
    # a review comment and a review move their pull
    pull = github.pull("acme/app", "Change")
    github.tick()
    mark = github.now
    github.review_comment("acme/app", pull.number, "Why?")
    moved = get(github, "/repos/acme/app/pulls?state=all&sort=updated&direction=desc").json()
    assert moved[0]["number"] == pull.number and moved[0]["updated_at"] > mark
    assert get(github, f"/repos/acme/app/pulls/comments?since={mark}").json()[0]["body"] == "Why?"
    assert get(github, f"/repos/acme/app/pulls/{pull.number}/reviews").json() == []
    github.review("acme/app", pull.number, state="CHANGES_REQUESTED")
    assert get(github, f"/repos/acme/app/pulls/{pull.number}/reviews").json()[0]["state"] == (
        "CHANGES_REQUESTED"
    )
    assert get(github, "/repos/acme/app/issues?since=yesterday").status_code == 422


def test_issues_disabled_answers_410_but_pulls_answer(github: GitHubOrgStandIn) -> None:
    """Issues disabled: the issue lists answer 410, but a pull request's conversation, which
    GitHub keeps as issue comments, still answers."""
    issue = github.issue("acme/quiet", "before issues were disabled")
    github.comment("acme/quiet", issue.number, "on the issue")
    pull = github.pull("acme/quiet", "a change")
    github.comment("acme/quiet", pull.number, "on the pull")
    github.add_repo_metadata("acme/quiet", issues_enabled=False)
    for path in ("/repos/acme/quiet/issues", f"/repos/acme/quiet/issues/{issue.number}/comments"):
        answer = get(github, path)
        assert answer.status_code == 410
        assert answer.json()["message"] == "Issues are disabled for this repo"
        assert "documentation_url" in answer.json()
    for path in (
        "/repos/acme/quiet/issues/comments",
        f"/repos/acme/quiet/issues/{pull.number}/comments",
    ):
        assert [c["body"] for c in get(github, path).json()] == ["on the pull"]
    assert [p["number"] for p in get(github, "/repos/acme/quiet/pulls?state=all").json()] == [
        pull.number
    ]
    assert get(github, "/repos/acme/quiet").json()["has_issues"] is False
    assert get(github, "/repos/acme/nowhere/issues").status_code == 404


def test_asset_redirects_to_a_storage_host_that_refuses_authorization(
    github: GitHubOrgStandIn, clock: Clock
) -> None:
    data = b"release bytes " * 100
    release = github.add_release("acme/app", "v1.0.0", assets={"tool.tar.gz": data})
    github.add_release("acme/app", "v1.1.0-rc", draft=True)
    listed = get(github, "/repos/acme/app/releases").json()
    assert [r["tag_name"] for r in listed] == ["v1.1.0-rc", "v1.0.0"]
    assert listed[0]["draft"] is True and listed[0]["published_at"] is None
    asset = listed[1]["assets"][0]
    assert asset["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert asset["size"] == len(data)
    assert asset["state"] == "uploaded"
    assert get(github, f"/repos/acme/app/releases/{release.id}").json()["assets"] == [asset]
    assert get(github, urlsplit(asset["url"]).path).json() == asset  # JSON without the Accept

    moved = requests.get(
        asset["url"],
        headers=AUTH | {"Accept": "application/octet-stream"},
        allow_redirects=False,
        timeout=10,
    )
    assert moved.status_code == 302
    location = urlsplit(moved.headers["Location"])
    assert location.hostname == "localhost" != urlsplit(github.url).hostname
    signed = parse_qs(location.query)
    assert signed["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert signed["X-Amz-Expires"] == ["300"]
    assert re.fullmatch(r"[0-9a-f]{64}", signed["X-Amz-Signature"][0])

    fetched = requests.get(moved.headers["Location"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == data
    assert github.storage_received[-1][1].get("Authorization") is None

    with_token = requests.get(moved.headers["Location"], headers=AUTH, timeout=10)
    assert with_token.status_code == 400
    assert "<Code>InvalidArgument</Code>" in with_token.text
    assert with_token.headers["Content-Type"] == "application/xml"
    assert github.storage_received[-1][1]["Authorization"] == AUTH["Authorization"]

    bad = moved.headers["Location"].replace(signed["X-Amz-Signature"][0], "0" * 64)
    refused = requests.get(bad, timeout=10)
    assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text

    clock.now += 301
    expired = requests.get(moved.headers["Location"], timeout=10)
    assert expired.status_code == 403 and "Request has expired" in expired.text
    fresh = github.sign_storage_url(asset["id"])
    assert requests.get(fresh, timeout=10).content == data


def test_tampered_asset_serves_bytes_its_digest_does_not_name(github: GitHubOrgStandIn) -> None:
    release = github.add_release("acme/app", "v2", assets={"a.bin": b"honest bytes"})
    asset = release.assets[0]
    github.tamper_asset(asset.id)
    served = requests.get(github.sign_storage_url(asset.id), timeout=10).content
    assert len(served) == len(b"honest bytes") and served != b"honest bytes"
    assert "sha256:" + hashlib.sha256(served).hexdigest() != asset.digest


def test_secondary_limit_answers_once_then_the_retry_succeeds(github: GitHubOrgStandIn) -> None:
    github.add_repo_metadata("acme/app")
    github.secondary_after = 2
    assert get(github, "/repos/acme/app/labels").status_code == 200
    limited = get(github, "/repos/acme/app/labels")
    assert limited.status_code == 403
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert get(github, "/repos/acme/app/labels").status_code == 200
    assert get(github, "/repos/acme/app/labels").status_code == 200


def app_jwt(key: bytes, iss: int | str, life: int = 540, age: int = 60) -> str:
    """An App's JWT; ``iss`` may be an int, as some clients send it (PyJWT only signs str)."""
    now = int(time.time())
    claims = {"iat": now - age, "exp": now - age + life, "iss": iss}
    if isinstance(iss, str):
        return jwt.encode(claims, key, "RS256")
    private = serialization.load_pem_private_key(key, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)

    def part(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing = part({"alg": "RS256", "typ": "JWT"}) + "." + part(claims)
    signature = private.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def test_app_jwt_is_checked_and_minted_tokens_expire(
    github: GitHubOrgStandIn, keys: tuple[bytes, bytes], clock: Clock, tmp_path: Path
) -> None:
    private, public = keys
    github.app_id = 77
    github.app_public_key_pem = public
    github.token_life_s = 3600
    github.org("acme")
    github.add_repo_metadata("acme/app")
    git = GitServer(tmp_path / "git", tokens={"other"})  # not started: only its token check
    github.accept_on(git)
    mint = f"{github.url}/app/installations/{github.installation_id}/access_tokens"

    def post(token: str) -> requests.Response:
        return requests.post(mint, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    other_key, _ = app_key_pair()
    for refused in (
        app_jwt(other_key, "77"),  # signed by another key
        app_jwt(private, "78"),  # another App
        app_jwt(private, "77", life=900),  # longer than ten minutes
        app_jwt(private, "77", life=120, age=300),  # expired
        TOKEN,  # not a JWT
    ):
        answer = post(refused)
        assert answer.status_code == 401, refused
        assert "message" in answer.json()
    assert post(app_jwt(other_key, 77)).json()["message"] == "A JSON web token could not be decoded"
    assert github.minted == []

    installation = requests.get(
        f"{github.url}/orgs/acme/installation",
        headers={"Authorization": f"Bearer {app_jwt(private, 77)}"},
        timeout=10,
    )
    assert installation.status_code == 200
    assert installation.json()["id"] == github.installation_id

    answer = post(app_jwt(private, "77"))
    assert answer.status_code == 201
    body = answer.json()
    assert re.fullmatch(r"ghs_[A-Za-z0-9]{36}", body["token"])
    assert body["repository_selection"] == "all" and body["permissions"]["issues"] == "read"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    assert github.minted == [body["token"]] and github.tokens[body["token"]] == BOT_LOGIN
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert requests.get(github.url + "/repos/acme/app/labels", headers=bearer, timeout=10).ok
    basic = "Basic " + base64.b64encode(f"x-access-token:{body['token']}".encode()).decode()
    assert git._authorized(basic)

    clock.now += 3601
    expired = requests.get(github.url + "/repos/acme/app/labels", headers=bearer, timeout=10)
    assert expired.status_code == 401
    assert not git._authorized(basic)
    assert git._authorized("Basic " + base64.b64encode(b"x-access-token:other").decode())

    minted: list[tuple[str, float]] = []
    github.on_mint = lambda token, ends: minted.append((token, ends))
    second = post(app_jwt(private, 77)).json()["token"]
    assert minted and minted[0][0] == second
    github.expire_token(second)
    assert not git._authorized("Basic " + base64.b64encode(f"u:{second}".encode()).decode())


def test_release_and_asset_upload_then_issue_and_comment(github: GitHubOrgStandIn) -> None:
    github.add_repo_metadata("acme/restored")
    made = requests.post(
        github.url + "/repos/acme/restored/releases",
        json={"tag_name": "v3", "name": "Three", "body": "Notes", "draft": True},
        headers=AUTH,
        timeout=10,
    )
    assert made.status_code == 201
    release = made.json()
    assert release["upload_url"] == (
        f"{github.url}/repos/acme/restored/releases/{release['id']}/assets{{?name,label}}"
    )
    upload = release["upload_url"].split("{")[0] + "?name=tool.zip&label=Tool"
    uploaded = requests.post(
        upload,
        data=b"zip bytes",
        headers=AUTH | {"Content-Type": "application/zip"},
        timeout=10,
    )
    assert uploaded.status_code == 201
    asset = uploaded.json()
    assert asset["digest"] == "sha256:" + hashlib.sha256(b"zip bytes").hexdigest()
    assert asset["content_type"] == "application/zip" and asset["label"] == "Tool"
    again = requests.post(upload, data=b"x", headers=AUTH, timeout=10)
    assert again.status_code == 422
    listed = get(github, "/repos/acme/restored/releases").json()
    assert listed[0]["assets"][0]["name"] == "tool.zip"
    assert requests.get(github.sign_storage_url(asset["id"]), timeout=10).content == b"zip bytes"
    duplicate = requests.post(
        github.url + "/repos/acme/restored/releases",
        json={"tag_name": "v3"},
        headers=AUTH,
        timeout=10,
    )
    assert duplicate.status_code == 422

    issue = requests.post(
        github.url + "/repos/acme/restored/issues",
        json={"title": "Restored", "body": "From a backup", "labels": ["bug"]},
        headers=AUTH,
        timeout=10,
    )
    assert issue.status_code == 201 and issue.json()["user"]["login"] == "backup-bot"
    number = issue.json()["number"]
    comment = requests.post(
        f"{github.url}/repos/acme/restored/issues/{number}/comments",
        json={"body": "Restored comment"},
        headers=AUTH,
        timeout=10,
    )
    assert comment.status_code == 201
    assert get(github, f"/repos/acme/restored/issues/{number}").json()["comments"] == 1
    anonymous = requests.post(
        github.url + "/repos/acme/restored/issues", json={"title": "x"}, timeout=10
    )
    assert anonymous.status_code == 401


def test_org_config_in_github_shapes(github: GitHubOrgStandIn) -> None:
    github.org("acme", description="Widgets", two_factor_requirement_enabled=True)
    github.add_members("acme", "alice", "bob")
    github.add_repo_metadata("acme/app")
    github.team("acme", "core", members=["alice", "bob"], repos={"acme/app": "maintain"})
    github.hook("acme", "https://hooks.example.invalid/in", secret="s3cr3t", events=["push"])
    for i in range(35):
        github.variable("acme", f"VAR_{i:02d}", f"value {i}")
    github.secret("acme", "DEPLOY_KEY", visibility="selected")
    ruleset = github.ruleset("acme", "protect main")

    org = get(github, "/orgs/acme").json()
    assert org["description"] == "Widgets" and org["two_factor_requirement_enabled"] is True
    assert [m["login"] for m in get(github, "/orgs/acme/members").json()] == ["alice", "bob"]
    assert get(github, "/orgs/acme/teams").json()[0]["slug"] == "core"
    repos = get(github, "/orgs/acme/teams/core/repos").json()
    assert repos[0]["full_name"] == "acme/app" and repos[0]["role_name"] == "maintain"
    assert repos[0]["permissions"] == {
        "admin": False,
        "maintain": True,
        "push": True,
        "triage": True,
        "pull": True,
    }
    github.remove_team_member("core", "bob")
    assert [m["login"] for m in get(github, "/orgs/acme/teams/core/members").json()] == ["alice"]
    hook = get(github, "/orgs/acme/hooks").json()[0]
    assert hook["config"]["secret"] == MASK and "s3cr3t" not in get(github, "/orgs/acme/hooks").text

    first = get(github, "/orgs/acme/actions/variables")
    assert first.json()["total_count"] == 35 and len(first.json()["variables"]) == 30
    rest = requests.get(links(first)["next"], headers=AUTH, timeout=10).json()
    assert [v["name"] for v in rest["variables"]] == [f"VAR_{i}" for i in range(30, 35)]
    secrets_answer = get(github, "/orgs/acme/actions/secrets").json()
    assert secrets_answer["total_count"] == 1
    assert set(secrets_answer["secrets"][0]) >= {"name", "created_at", "updated_at", "visibility"}
    assert "value" not in secrets_answer["secrets"][0]

    summary = get(github, "/orgs/acme/rulesets").json()[0]
    assert summary["id"] == ruleset.id and "rules" not in summary
    full = get(github, f"/orgs/acme/rulesets/{ruleset.id}").json()
    assert full["rules"] == [{"type": "deletion"}] and "conditions" in full
    assert get(github, "/orgs/acme/repos").json()[0]["full_name"] == "acme/app"


def test_populate_builds_fifty_repositories_quickly(github: GitHubOrgStandIn) -> None:
    started = time.perf_counter()
    for i in range(50):
        github.populate(f"acme/r{i}", issues=200, comments_per_issue=2, pulls=10, releases=2)
    assert time.perf_counter() - started < 3
    assert len(github.repo_meta["acme/r7"].issues) == 210
    assert len(get(github, "/orgs/acme/repos?per_page=100").json()) == 50


def test_pygithub_reads_it_as_an_app_installation(
    github: GitHubOrgStandIn, keys: tuple[bytes, bytes]
) -> None:
    from github import Auth, Github, GithubIntegration

    private, public = keys
    github.app_id = 77
    github.app_public_key_pem = public
    github.org("acme")
    github.populate("acme/app", issues=120, comments_per_issue=1, pulls=3, releases=1)
    auth = Auth.AppAuth(77, private.decode())
    installation = GithubIntegration(auth=auth, base_url=github.url).get_org_installation("acme")
    assert installation.id == github.installation_id
    client = Github(auth=auth.get_installation_auth(installation.id), base_url=github.url)
    repo = client.get_repo("acme/app")
    issues = list(repo.get_issues(state="all"))
    # Only fields of the list: .pull_request or .raw_data of a plain issue makes PyGithub GET
    # that issue again, one request each.
    assert sorted(i.number for i in issues) == list(range(1, 124))
    assert len(github.calls) == 3 + 5  # installation, token, repo; five pages of 30
    assert [p.number for p in repo.get_pulls(state="all")] == [123, 122, 121]
    asset = repo.get_releases()[0].assets[0]
    assert asset.size == 64 and str(asset.digest).startswith("sha256:")
    assert github.minted and github.received[-1][1]["Authorization"].startswith("token ghs_")
