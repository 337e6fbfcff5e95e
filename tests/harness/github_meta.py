"""A stand-in for GitHub's REST API over an organisation's metadata, in GitHub's own shapes.

``GitHubOrgStandIn`` extends ``GitHubReposStandIn`` (the repository listings keep working, with
its ``git_url``, ``owners`` and ``tokens``) with a mutable in-memory model of what
``repos --metadata`` backs up: per repository its issues (pull requests among them, as GitHub
lists them), issue comments, pulls, reviews, review comments, releases with their assets,
labels and milestones; per organisation the org object, members, teams, hooks, Actions
variables and secret names, and rulesets.

Time is a logical clock: every creation or change advances it one second from
``2026-01-01T00:00:00Z`` and stamps ``updated_at`` with it, never with the wall clock, so
``since`` answers are the same on every run. ``since`` is inclusive: an item updated at the
given second is listed. As on GitHub, a new or edited comment moves its issue's ``updated_at``,
a review or review comment moves its pull's, renaming a label moves nothing, and deleting a
comment moves its issue only when the test asks (``bump_issue``: GitHub does not document it).

Every 200 GET carries a weak ETag, ``W/"<sha256 of the body>"``; an authorized request whose
``If-None-Match`` names it gets a 304 that is not counted (``counted``), as on GitHub.
``secondary_after`` answers the N-th counted request with GitHub's secondary rate limit, once.

Release assets: ``GET .../releases/assets/{id}`` with ``Accept: application/octet-stream``
answers 302 to ``storage``, a second server named ``localhost`` (another host than the API's
``127.0.0.1``) with an S3-style signed query. Like S3 it refuses a request that carries
``Authorization`` (400), or a bad or expired signature (403), with an XML error body;
``tamper_asset`` makes it serve other bytes than the asset's digest. ``browser_download_url``
names the API server but is not served (for a private repository it needs a browser session).

GitHub Apps: ``app_id`` and ``app_public_key_pem`` (see ``app_key_pair``) enable
``GET /orgs/{org}/installation``, ``GET /app`` and ``POST /app/installations/{id}/access_tokens``,
which check the RS256 JWT as GitHub does. A minted token (login ``acme-backup[bot]``) is valid
until its ``expires_at`` on ``clock`` (wall time by default). To let a git server take it as
the Basic password (user ``x-access-token``), ``stand_in.accept_on(git_server)`` replaces the
git server's token set by one that gains every minted token and forgets it once expired;
``expire_token`` ends one at once in both places.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.github_repos import GitHubReposStandIn, StandInRepo
from tests.harness.servers import LOOPBACK, ThreadedHTTPServer

if TYPE_CHECKING:
    from tests.harness.gitserver import GitServer

Json = dict[str, Any]
Answer = tuple[int, object, dict[str, str]]

BASE = datetime(2026, 1, 1, tzinfo=UTC)
BOT_LOGIN = "acme-backup[bot]"
MASK = "********"
_DOCS = "https://docs.github.com/rest"
_REQUEST_ID = "If you reach out to GitHub Support for help, please include the request ID C0DE:1234"
_NOT_JWT = "A JSON web token could not be decoded"
_ROLES = ("pull", "triage", "push", "maintain", "admin")  # weakest first
_ROLE_NAMES = {"read": "pull", "write": "push"}  # role_name -> permissions key


def stamp(seconds: int | None) -> str | None:
    """The ISO 8601 time ``seconds`` after BASE, as GitHub writes it."""
    if seconds is None:
        return None
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def app_key_pair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair for a GitHub App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _node(prefix: str, ident: int) -> str:
    return f"{prefix}_" + base64.b64encode(f"{prefix}{ident:012d}".encode()).decode().rstrip("=")


def _message(status: int, message: str, doc: str = "") -> Json:
    return {"message": message, "documentation_url": f"{_DOCS}{doc}", "status": str(status)}


def _not_found() -> Answer:
    return 404, _message(404, "Not Found"), {}


def _invalid(resource: str, field_name: str, code: str = "invalid") -> Answer:
    body = _message(422, "Validation Failed") | {
        "errors": [{"resource": resource, "code": code, "field": field_name}]
    }
    return 422, body, {}


# The model: plain dataclasses. Times are seconds after BASE on the logical clock.


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Milestone:
    id: int
    number: int
    title: str
    created: int
    updated: int
    state: str = "open"
    description: str | None = None
    due_on: str | None = None
    creator: str = "octocat"
    closed: int | None = None


@dataclass
class PullInfo:
    id: int
    head: str = "feature"
    base: str = "main"
    head_sha: str = "1" * 40
    base_sha: str = "2" * 40
    draft: bool = False
    merged_at: int | None = None


@dataclass
class Issue:
    id: int
    number: int
    title: str
    body: str | None
    user: str
    created: int
    updated: int
    state: str = "open"
    state_reason: str | None = None
    labels: list[int] = field(default_factory=list)  # label ids
    milestone: int | None = None  # milestone number
    assignees: list[str] = field(default_factory=list)
    locked: bool = False
    closed: int | None = None
    pull: PullInfo | None = None  # set: this issue is a pull request


@dataclass
class Comment:
    id: int
    issue: int  # its issue's number
    user: str
    body: str
    created: int
    updated: int


@dataclass
class ReviewComment:
    id: int
    pull: int
    user: str
    body: str
    created: int
    updated: int
    path: str = "README.md"
    line: int = 1
    commit_id: str = "1" * 40
    review_id: int | None = None
    in_reply_to: int | None = None
    diff_hunk: str = "@@ -1 +1 @@\n-old\n+new"


@dataclass
class Review:
    id: int
    pull: int
    user: str
    body: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    submitted: int
    commit_id: str = "1" * 40


@dataclass
class Asset:
    id: int
    name: str
    data: bytes
    content_type: str
    uploader: str
    created: int
    updated: int
    label: str | None = None
    download_count: int = 0

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass
class Release:
    id: int
    tag_name: str
    name: str | None
    body: str | None
    author: str
    created: int
    updated: int
    draft: bool = False
    prerelease: bool = False
    published: int | None = None
    target_commitish: str = "main"
    assets: list[Asset] = field(default_factory=list)


@dataclass
class RepoMeta:
    full_name: str
    id: int
    issues_enabled: bool = True
    issues: dict[int, Issue] = field(default_factory=dict)  # by number
    comments: dict[int, Comment] = field(default_factory=dict)  # by id
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)  # by id
    reviews: dict[int, list[Review]] = field(default_factory=dict)  # pull number -> reviews
    releases: dict[int, Release] = field(default_factory=dict)  # by id
    labels: dict[int, Label] = field(default_factory=dict)  # by id
    milestones: dict[int, Milestone] = field(default_factory=dict)  # by number
    next_number: int = 1  # issues, pulls and milestones share GitHub's numbering per kind

    def label_named(self, name: str) -> Label | None:
        return next((x for x in self.labels.values() if x.name == name), None)


@dataclass
class Team:
    id: int
    slug: str
    name: str
    description: str = ""
    privacy: str = "closed"
    permission: str = "pull"
    members: list[str] = field(default_factory=list)
    repos: dict[str, str] = field(default_factory=dict)  # "owner/name" -> role_name
    parent: str | None = None  # parent team's slug


@dataclass
class Hook:
    id: int
    url: str
    created: int
    updated: int
    events: list[str] = field(default_factory=lambda: ["push"])
    active: bool = True
    content_type: str = "json"
    insecure_ssl: str = "0"
    secret: str | None = None


@dataclass
class Variable:
    name: str
    value: str
    created: int
    updated: int
    visibility: str = "all"


@dataclass
class Secret:
    name: str
    created: int
    updated: int
    visibility: str = "private"


@dataclass
class Ruleset:
    id: int
    name: str
    created: int
    updated: int
    target: str = "branch"
    enforcement: str = "active"
    conditions: Json = field(default_factory=dict)
    rules: list[Json] = field(default_factory=list)
    bypass_actors: list[Json] = field(default_factory=list)


@dataclass
class OrgMeta:
    login: str
    id: int
    created: int
    updated: int
    name: str | None = None
    description: str | None = None
    settings: Json = field(default_factory=dict)  # merged over the org object's fields
    members: list[str] = field(default_factory=list)
    teams: dict[str, Team] = field(default_factory=dict)  # by slug
    hooks: dict[int, Hook] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    rulesets: dict[int, Ruleset] = field(default_factory=dict)


class ExpiringTokens(set[str]):
    """A git server's token set that forgets a token once ``expiry`` says it has ended."""

    def __init__(
        self, tokens: Iterable[str], expiry: dict[str, float], clock: Callable[[], float]
    ) -> None:
        super().__init__(tokens)
        self._expiry = expiry
        self._clock = clock

    def __contains__(self, token: object) -> bool:
        if not super().__contains__(token):
            return False
        ends = self._expiry.get(token) if isinstance(token, str) else None
        if ends is not None and self._clock() >= ends:
            self.discard(token)
            return False
        return True


def _serve(server: ThreadedHTTPServer) -> None:
    """Start ``server`` as ThreadedHTTPServer does, polling for shutdown every 50 ms."""
    server._server = ThreadingHTTPServer((LOOPBACK, 0), server._handler())
    server._server.daemon_threads = True
    threading.Thread(
        target=server._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()


@dataclass
class AssetStorage(ThreadedHTTPServer):
    """The storage host release assets redirect to: S3-style signed URLs, no Authorization."""

    github: GitHubOrgStandIn

    def start(self) -> Self:
        _serve(self)
        return self

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        github = self.github

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, data, headers = github._storage_answer(
                    self.path, dict(self.headers.items())
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _s3_error(status: int, code: str, message: str, **extra: str) -> tuple[int, bytes, Json]:
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{fields}"
        "<RequestId>STANDIN0000000000</RequestId><HostId>c3RhbmRpbg==</HostId></Error>"
    ).encode()
    return status, body, {"Content-Type": "application/xml"}


def _is_pull(meta: RepoMeta, number: int) -> bool:
    found = meta.issues.get(number)
    return found is not None and found.pull is not None


def _conversation(meta: RepoMeta, rest: list[str]) -> bool:
    """Whether a path under /issues still answers with issues disabled: GitHub keeps a pull
    request's conversation (``/issues/comments``, ``/issues/N/comments`` of a pull)."""
    if rest == ["comments"]:
        return True
    return (
        len(rest) == 2
        and rest[1] == "comments"
        and rest[0].isdigit()
        and _is_pull(meta, int(rest[0]))
    )


@dataclass
class GitHubOrgStandIn(GitHubReposStandIn):
    repo_meta: dict[str, RepoMeta] = field(default_factory=dict)  # "owner/name" -> model
    orgs: dict[str, OrgMeta] = field(default_factory=dict)
    rate_limit: int = 5000
    counted: int = 0  # authorized answers other than 304: what GitHub's primary limit counts
    not_modified: int = 0
    calls: list[str] = field(default_factory=list)  # "METHOD path?query"
    answered: list[tuple[str, int]] = field(default_factory=list)  # path?query, status
    secondary_after: int | None = None  # the N-th counted request hits the secondary limit
    delay_s: float = 0.0
    count_downloads: bool = False  # storage downloads raise the asset's download_count
    # GitHub App
    app_id: int | None = None
    app_public_key_pem: bytes | None = None
    installation_id: int = 4242
    token_life_s: float = 3600
    app_permissions: dict[str, str] = field(
        default_factory=lambda: {
            "metadata": "read",
            "contents": "read",
            "issues": "read",
            "pull_requests": "read",
            "members": "read",
            "administration": "read",
            "organization_administration": "read",
            "organization_hooks": "read",
            "organization_secrets": "read",
            "organization_actions_variables": "read",
        }
    )
    minted: list[str] = field(default_factory=list)
    token_expiry: dict[str, float] = field(default_factory=dict)  # token -> epoch on clock
    on_mint: Callable[[str, float], None] | None = None
    clock: Callable[[], float] = field(default=time.time)
    # Storage
    storage_received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    storage_url_life_s: int = 300
    tampered: dict[int, bytes] = field(default_factory=dict)  # asset id -> bytes served

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._now = 0
        self._next_id = 1000
        self._user_ids: dict[str, int] = {}
        self._assets: dict[int, tuple[RepoMeta, Release, Asset]] = {}
        self._git_sinks: list[ExpiringTokens] = []
        self._secondary_fired = False
        self._sign_key = secrets.token_bytes(32)
        self.storage = AssetStorage(self)

    # Lifecycle

    def start(self) -> Self:
        self.storage.start()
        _serve(self)
        return self

    def stop(self) -> None:
        super().stop()
        self.storage.stop()

    def reset_counts(self) -> None:
        with self._lock:
            self.counted = 0
            self.not_modified = 0
            self.requests.clear()
            self.received.clear()
            self.calls.clear()
            self.answered.clear()
            self.storage_received.clear()

    # The logical clock and ids

    def tick(self) -> int:
        with self._lock:
            self._now += 1
            return self._now

    @property
    def now(self) -> str:
        """The logical clock's current time, ISO 8601."""
        return stamp(self._now) or ""

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _user(self, login: str) -> Json:
        ident = self._user_ids.setdefault(login, 5000 + len(self._user_ids))
        base = self.named_url
        return {
            "login": login,
            "id": ident,
            "node_id": _node("U", ident),
            "avatar_url": f"{base}/avatars/u/{ident}",
            "url": f"{base}/users/{quote(login)}",
            "html_url": f"{base}/{quote(login)}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    # Repository metadata, for tests

    def add_repo_metadata(
        self, full_name: str, *, issues_enabled: bool = True, listed: bool = True
    ) -> RepoMeta:
        """The repository's model, made if new; ``listed`` adds it to its owner's listing."""
        with self._lock:
            meta = self.repo_meta.get(full_name)
            if meta is None:
                meta = RepoMeta(full_name, self._id(), issues_enabled)
                self.repo_meta[full_name] = meta
            else:
                meta.issues_enabled = issues_enabled
            owner, _, name = full_name.partition("/")
            if listed and all(r.name != name for r in self.owners.get(owner, [])):
                self.owners.setdefault(owner, []).append(StandInRepo(name))
            return meta

    def _meta(self, full_name: str) -> RepoMeta:
        meta = self.repo_meta.get(full_name)
        if meta is None:
            meta = self.add_repo_metadata(full_name, listed=False)
        return meta

    def label(
        self, repo: str, name: str, color: str = "ededed", description: str | None = None
    ) -> Label:
        with self._lock:
            meta = self._meta(repo)
            found = meta.label_named(name)
            if found is None:
                found = Label(self._id(), name, color, description)
                meta.labels[found.id] = found
            return found

    def rename_label(self, repo: str, old: str, new: str) -> Label:
        """Rename a label; the issues that carry it say the new name, their updated_at stays."""
        with self._lock:
            found = self._meta(repo).label_named(old)
            assert found is not None, f"no label {old!r} in {repo}"
            found.name = new
            return found

    def delete_label(self, repo: str, name: str) -> None:
        with self._lock:
            meta = self._meta(repo)
            found = meta.label_named(name)
            assert found is not None, f"no label {name!r} in {repo}"
            del meta.labels[found.id]
            for issue in meta.issues.values():
                if found.id in issue.labels:
                    issue.labels.remove(found.id)

    def milestone(
        self,
        repo: str,
        title: str,
        *,
        state: str = "open",
        description: str | None = None,
        due_on: str | None = None,
    ) -> Milestone:
        with self._lock:
            meta = self._meta(repo)
            now = self.tick()
            number = len(meta.milestones) + 1
            found = Milestone(self._id(), number, title, now, now, state, description, due_on)
            found.closed = now if state == "closed" else None
            meta.milestones[number] = found
            return found

    def issue(
        self,
        repo: str,
        title: str,
        body: str | None = "",
        *,
        user: str = "octocat",
        state: str = "open",
        labels: Iterable[str] = (),
        milestone: int | None = None,
        assignees: Iterable[str] = (),
        pull: bool = False,
        head: str | None = None,
        base: str = "main",
        draft: bool = False,
        merged: bool = False,
    ) -> Issue:
        """A new issue (or pull request, ``pull``) numbered next in the repository."""
        with self._lock:
            meta = self._meta(repo)
            now = self.tick()
            number = meta.next_number
            meta.next_number += 1
            info = None
            if pull:
                info = PullInfo(self._id(), head or f"feature-{number}", base, draft=draft)
                info.head_sha = hashlib.sha1(f"{repo}#{number}".encode()).hexdigest()  # noqa: S324
                if merged:
                    info.merged_at = now
                    state = "closed"
            item = Issue(self._id(), number, title, body, user, now, now, state)
            item.labels = [self.label(repo, name).id for name in labels]
            item.milestone = milestone
            item.assignees = list(assignees)
            item.pull = info
            if state == "closed":
                item.closed = now
                item.state_reason = None if pull else "completed"
            meta.issues[number] = item
            return item

    def pull(self, repo: str, title: str, body: str | None = "", **kwargs: Any) -> Issue:
        """A new pull request: an issue with ``pull`` set."""
        return self.issue(repo, title, body, pull=True, **kwargs)

    def edit_issue(
        self,
        repo: str,
        number: int,
        *,
        body: str | None = None,
        title: str | None = None,
        state: str | None = None,
        labels: Iterable[str] | None = None,
    ) -> Issue:
        with self._lock:
            item = self._meta(repo).issues[number]
            item.updated = self.tick()
            if body is not None:
                item.body = body
            if title is not None:
                item.title = title
            if labels is not None:
                item.labels = [self.label(repo, name).id for name in labels]
            if state is not None and state != item.state:
                item.state = state
                item.closed = item.updated if state == "closed" else None
                if item.pull is None:
                    item.state_reason = "completed" if state == "closed" else "reopened"
            return item

    def delete_issue(self, repo: str, number: int) -> None:
        with self._lock:
            meta = self._meta(repo)
            del meta.issues[number]
            for cid in [c.id for c in meta.comments.values() if c.issue == number]:
                del meta.comments[cid]

    def comment(self, repo: str, number: int, body: str, *, user: str = "octocat") -> Comment:
        """A new comment on issue (or pull) ``number``; its issue's updated_at moves."""
        with self._lock:
            meta = self._meta(repo)
            now = self.tick()
            item = Comment(self._id(), number, user, body, now, now)
            meta.comments[item.id] = item
            meta.issues[number].updated = now
            return item

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        with self._lock:
            meta = self._meta(repo)
            item = meta.comments[comment_id]
            item.body = body
            item.updated = self.tick()
            meta.issues[item.issue].updated = item.updated
            return item

    def delete_comment(self, repo: str, comment_id: int, *, bump_issue: bool = False) -> None:
        with self._lock:
            meta = self._meta(repo)
            item = meta.comments.pop(comment_id)
            if bump_issue:
                meta.issues[item.issue].updated = self.tick()

    def review(
        self,
        repo: str,
        number: int,
        *,
        state: str = "APPROVED",
        body: str = "",
        user: str = "reviewer",
    ) -> Review:
        with self._lock:
            meta = self._meta(repo)
            pull = meta.issues[number]
            assert pull.pull is not None, f"#{number} is not a pull request"
            now = self.tick()
            item = Review(self._id(), number, user, body, state, now, pull.pull.head_sha)
            meta.reviews.setdefault(number, []).append(item)
            pull.updated = now
            return item

    def review_comment(
        self,
        repo: str,
        number: int,
        body: str,
        *,
        user: str = "reviewer",
        path: str = "README.md",
        line: int = 1,
        review_id: int | None = None,
        in_reply_to: int | None = None,
    ) -> ReviewComment:
        with self._lock:
            meta = self._meta(repo)
            pull = meta.issues[number]
            assert pull.pull is not None, f"#{number} is not a pull request"
            now = self.tick()
            item = ReviewComment(self._id(), number, user, body, now, now, path, line)
            item.commit_id = pull.pull.head_sha
            item.review_id = review_id
            item.in_reply_to = in_reply_to
            meta.review_comments[item.id] = item
            pull.updated = now
            return item

    def add_release(
        self,
        repo: str,
        tag: str,
        *,
        assets: dict[str, bytes] | None = None,
        draft: bool = False,
        prerelease: bool = False,
        name: str | None = None,
        body: str | None = "",
        author: str = "octocat",
        content_type: str = "application/octet-stream",
    ) -> Release:
        with self._lock:
            meta = self._meta(repo)
            now = self.tick()
            item = Release(self._id(), tag, tag if name is None else name, body, author, now, now)
            item.draft = draft
            item.prerelease = prerelease
            item.published = None if draft else now
            meta.releases[item.id] = item
            for asset_name, data in (assets or {}).items():
                self.add_asset(repo, item.id, asset_name, data, content_type, uploader=author)
            return item

    def add_asset(
        self,
        repo: str,
        release_id: int,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        label: str | None = None,
        uploader: str = "octocat",
    ) -> Asset:
        with self._lock:
            meta = self._meta(repo)
            release = meta.releases[release_id]
            now = self.tick()
            item = Asset(self._id(), name, data, content_type, uploader, now, now, label)
            release.assets.append(item)
            self._assets[item.id] = (meta, release, item)
            return item

    def delete_release(self, repo: str, release_id: int) -> None:
        with self._lock:
            release = self._meta(repo).releases.pop(release_id)
            for asset in release.assets:
                self._assets.pop(asset.id, None)

    def delete_asset(self, repo: str, asset_id: int) -> None:
        with self._lock:
            _, release, asset = self._assets.pop(asset_id)
            release.assets.remove(asset)

    def tamper_asset(self, asset_id: int, data: bytes | None = None) -> None:
        """Storage serves ``data`` (default: as many bytes, the first one changed) for it."""
        with self._lock:
            real = self._assets[asset_id][2].data
            if data is None:
                data = bytes([real[0] ^ 0xFF]) + real[1:] if real else b"x"
            self.tampered[asset_id] = data

    def populate(
        self,
        repo: str,
        *,
        issues: int = 0,
        comments_per_issue: int = 0,
        pulls: int = 0,
        releases: int = 0,
        reviews_per_pull: int = 1,
        asset_bytes: int = 64,
    ) -> RepoMeta:
        """Bulk content: ``issues`` issues and ``pulls`` pulls, each with its comments, every
        pull with its reviews and one review comment, and ``releases`` releases of one asset."""
        with self._lock:
            meta = self.add_repo_metadata(repo)
            self.label(repo, "bug", "d73a4a", "Something isn't working")
            self.label(repo, "enhancement", "a2eeef", "New feature or request")
            for i in range(1, issues + 1):
                item = self.issue(
                    repo,
                    f"Issue {i} of {repo}",
                    f"What happened in issue {i}.",
                    labels=("bug",) if i % 3 == 0 else (),
                    state="closed" if i % 4 == 0 else "open",
                )
                for k in range(1, comments_per_issue + 1):
                    self.comment(repo, item.number, f"Comment {k} on #{item.number}.")
            for p in range(1, pulls + 1):
                item = self.pull(repo, f"Change {p}", f"What change {p} does.", merged=p % 2 == 0)
                for k in range(1, comments_per_issue + 1):
                    self.comment(repo, item.number, f"Comment {k} on #{item.number}.")
                for _ in range(reviews_per_pull):
                    self.review(repo, item.number, body="Looks good.")
                if reviews_per_pull:
                    self.review_comment(repo, item.number, "Why this line?")
            for r in range(1, releases + 1):
                data = hashlib.sha256(f"{repo} v{r}".encode()).digest() * (asset_bytes // 32 + 1)
                self.add_release(
                    repo, f"v1.{r}.0", assets={f"tool-1.{r}.0.tar.gz": data[:asset_bytes]}
                )
            return meta

    # Organisation metadata, for tests

    def org(
        self,
        login: str,
        *,
        name: str | None = None,
        description: str | None = None,
        **settings: Any,
    ) -> OrgMeta:
        """The organisation's model, made if new (its repository listing too)."""
        with self._lock:
            found = self.orgs.get(login)
            if found is None:
                now = self.tick()
                found = OrgMeta(login, self._id(), now, now, name or login.title(), description)
                self.orgs[login] = found
                self.owners.setdefault(login, [])
            if settings:
                found.settings |= settings
                found.updated = self.tick()
            return found

    def add_members(self, org: str, *logins: str) -> None:
        with self._lock:
            found = self.org(org)
            found.members.extend(x for x in logins if x not in found.members)

    def team(
        self,
        org: str,
        slug: str,
        *,
        name: str | None = None,
        permission: str = "pull",
        members: Iterable[str] = (),
        repos: dict[str, str] | None = None,
        description: str = "",
        privacy: str = "closed",
        parent: str | None = None,
    ) -> Team:
        """A team; ``repos`` maps "owner/name" to a role_name (read, triage, write, ...)."""
        with self._lock:
            found = Team(self._id(), slug, name or slug.replace("-", " ").title(), description)
            found.privacy = privacy
            found.permission = permission
            found.members = list(members)
            found.repos = dict(repos or {})
            found.parent = parent
            self.org(org).teams[slug] = found
            return found

    def remove_team_member(self, slug: str, login: str, org: str | None = None) -> None:
        with self._lock:
            for found in self.orgs.values():
                if (org is None or found.login == org) and slug in found.teams:
                    found.teams[slug].members.remove(login)
                    return
            raise KeyError(slug)

    def hook(
        self,
        org: str,
        url: str,
        *,
        events: Iterable[str] = ("push",),
        secret: str | None = None,
        active: bool = True,
        content_type: str = "json",
    ) -> Hook:
        with self._lock:
            now = self.tick()
            found = Hook(self._id(), url, now, now, list(events), active, content_type)
            found.secret = secret
            self.org(org).hooks[found.id] = found
            return found

    def variable(self, org: str, name: str, value: str, visibility: str = "all") -> Variable:
        with self._lock:
            now = self.tick()
            found = Variable(name, value, now, now, visibility)
            self.org(org).variables[name] = found
            return found

    def secret(self, org: str, name: str, visibility: str = "private") -> Secret:
        with self._lock:
            now = self.tick()
            found = Secret(name, now, now, visibility)
            self.org(org).secrets[name] = found
            return found

    def ruleset(
        self,
        org: str,
        name: str,
        *,
        target: str = "branch",
        enforcement: str = "active",
        conditions: Json | None = None,
        rules: list[Json] | None = None,
        bypass_actors: list[Json] | None = None,
    ) -> Ruleset:
        with self._lock:
            now = self.tick()
            found = Ruleset(self._id(), name, now, now, target, enforcement)
            found.conditions = conditions or {
                "ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []},
                "repository_name": {"include": ["~ALL"], "exclude": [], "protected": False},
            }
            found.rules = rules if rules is not None else [{"type": "deletion"}]
            found.bypass_actors = bypass_actors or []
            self.org(org).rulesets[found.id] = found
            return found

    # GitHub App tokens

    def accept_on(self, git: GitServer) -> ExpiringTokens:
        """Make ``git`` take every token minted from now on until it expires."""
        with self._lock:
            tokens = ExpiringTokens(git.tokens, self.token_expiry, self.clock)
            tokens.update(t for t in self.minted if self._token_valid(t))
            git.tokens = tokens
            self._git_sinks.append(tokens)
            return tokens

    def expire_token(self, token: str) -> None:
        """End a minted token now, here and on every git server wired by ``accept_on``."""
        with self._lock:
            self.token_expiry[token] = self.clock()

    def _token_valid(self, token: str) -> bool:
        if token not in self.tokens:
            return False
        ends = self.token_expiry.get(token)
        return ends is None or self.clock() < ends

    def _check_jwt(self, credential: str) -> str | None:
        """None if ``credential`` is a JWT of this App GitHub would take; else its refusal."""
        if self.app_id is None or self.app_public_key_pem is None:
            return _NOT_JWT
        try:
            claims = jwt.decode(
                credential,
                self.app_public_key_pem,
                algorithms=["RS256"],
                leeway=60,
                options={"require": ["exp", "iat", "iss"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            return (
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires"
            )
        except jwt.InvalidTokenError:
            return _NOT_JWT
        if str(claims["iss"]) != str(self.app_id):
            return _NOT_JWT
        if float(claims["exp"]) - float(claims["iat"]) > 660:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _mint(self) -> Json:
        alphabet = string.ascii_letters + string.digits
        token = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))
        ends = float(math.floor(self.clock() + self.token_life_s))
        self.tokens[token] = BOT_LOGIN
        self.token_expiry[token] = ends
        self.minted.append(token)
        for sink in self._git_sinks:
            sink.add(token)
        if self.on_mint is not None:
            self.on_mint(token, ends)
        return {
            "token": token,
            "expires_at": datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": dict(self.app_permissions),
            "repository_selection": "all",
        }

    # JSON in GitHub's shapes

    def _repo_api(self, meta: RepoMeta) -> str:
        return f"{self.named_url}/repos/{meta.full_name}"

    def _json(self, owner: str, repo: StandInRepo) -> dict[str, object]:
        answer = super()._json(owner, repo)
        meta = self.repo_meta.get(f"{owner}/{repo.name}")
        answer["has_issues"] = meta.issues_enabled if meta else True
        answer["html_url"] = f"{self.named_url}/{owner}/{repo.name}"
        if meta is not None:
            answer["id"] = meta.id
        return answer

    def _repo_json(self, full_name: str) -> dict[str, object]:
        owner, _, name = full_name.partition("/")
        listed = next((r for r in self.owners.get(owner, []) if r.name == name), None)
        return self._json(owner, listed or StandInRepo(name))

    def _label_json(self, meta: RepoMeta, item: Label) -> Json:
        return {
            "id": item.id,
            "node_id": _node("LA", item.id),
            "url": f"{self._repo_api(meta)}/labels/{quote(item.name)}",
            "name": item.name,
            "color": item.color,
            "default": item.default,
            "description": item.description,
        }

    def _milestone_json(self, meta: RepoMeta, item: Milestone) -> Json:
        api = self._repo_api(meta)
        states = Counter(i.state for i in meta.issues.values() if i.milestone == item.number)
        return {
            "url": f"{api}/milestones/{item.number}",
            "html_url": f"{self.named_url}/{meta.full_name}/milestone/{item.number}",
            "labels_url": f"{api}/milestones/{item.number}/labels",
            "id": item.id,
            "node_id": _node("MI", item.id),
            "number": item.number,
            "title": item.title,
            "description": item.description,
            "creator": self._user(item.creator),
            "open_issues": states["open"],
            "closed_issues": states["closed"],
            "state": item.state,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "due_on": item.due_on,
            "closed_at": stamp(item.closed),
        }

    def _issue_json(self, meta: RepoMeta, item: Issue, comments: int) -> Json:
        api = f"{self._repo_api(meta)}/issues/{item.number}"
        web = f"{self.named_url}/{meta.full_name}"
        kind = "pull" if item.pull else "issues"
        milestone = meta.milestones.get(item.milestone) if item.milestone else None
        answer: Json = {
            "url": api,
            "repository_url": self._repo_api(meta),
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{web}/{kind}/{item.number}",
            "id": item.id,
            "node_id": _node("PR" if item.pull else "I", item.id),
            "number": item.number,
            "title": item.title,
            "user": self._user(item.user),
            "labels": [
                self._label_json(meta, meta.labels[i]) for i in item.labels if i in meta.labels
            ],
            "state": item.state,
            "locked": item.locked,
            "assignee": self._user(item.assignees[0]) if item.assignees else None,
            "assignees": [self._user(a) for a in item.assignees],
            "milestone": self._milestone_json(meta, milestone) if milestone else None,
            "comments": comments,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "closed_at": stamp(item.closed),
            "author_association": "MEMBER",
            "active_lock_reason": None,
            "body": item.body,
            "state_reason": item.state_reason,
            "timeline_url": f"{api}/timeline",
            "performed_via_github_app": None,
        }
        if item.pull is not None:
            pulls = f"{self._repo_api(meta)}/pulls/{item.number}"
            answer["draft"] = item.pull.draft
            answer["pull_request"] = {
                "url": pulls,
                "html_url": f"{web}/pull/{item.number}",
                "diff_url": f"{web}/pull/{item.number}.diff",
                "patch_url": f"{web}/pull/{item.number}.patch",
                "merged_at": stamp(item.pull.merged_at),
            }
        return answer

    def _pull_json(self, meta: RepoMeta, item: Issue, detail: bool) -> Json:
        info = item.pull
        assert info is not None
        api = self._repo_api(meta)
        url = f"{api}/pulls/{item.number}"
        web = f"{self.named_url}/{meta.full_name}/pull/{item.number}"
        owner = meta.full_name.partition("/")[0]
        repo = self._repo_json(meta.full_name)
        milestone = meta.milestones.get(item.milestone) if item.milestone else None

        def end(ref: str, sha: str) -> Json:
            return {
                "label": f"{owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._user(owner),
                "repo": repo,
            }

        answer: Json = {
            "url": url,
            "id": info.id,
            "node_id": _node("PR", info.id),
            "html_url": web,
            "diff_url": f"{web}.diff",
            "patch_url": f"{web}.patch",
            "issue_url": f"{api}/issues/{item.number}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{item.number}/comments",
            "statuses_url": f"{api}/statuses/{info.head_sha}",
            "number": item.number,
            "state": item.state,
            "locked": item.locked,
            "title": item.title,
            "user": self._user(item.user),
            "body": item.body,
            "labels": [
                self._label_json(meta, meta.labels[i]) for i in item.labels if i in meta.labels
            ],
            "milestone": self._milestone_json(meta, milestone) if milestone else None,
            "active_lock_reason": None,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "closed_at": stamp(item.closed),
            "merged_at": stamp(info.merged_at),
            "merge_commit_sha": info.head_sha if info.merged_at else None,
            "assignee": self._user(item.assignees[0]) if item.assignees else None,
            "assignees": [self._user(a) for a in item.assignees],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": end(info.head, info.head_sha),
            "base": end(info.base, info.base_sha),
            "_links": {
                "self": {"href": url},
                "html": {"href": web},
                "issue": {"href": f"{api}/issues/{item.number}"},
                "comments": {"href": f"{api}/issues/{item.number}/comments"},
                "review_comments": {"href": f"{url}/comments"},
                "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
                "commits": {"href": f"{url}/commits"},
                "statuses": {"href": f"{api}/statuses/{info.head_sha}"},
            },
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": info.draft,
        }
        if detail:
            answer |= {
                "merged": info.merged_at is not None,
                "mergeable": None if item.state == "closed" else True,
                "rebaseable": None if item.state == "closed" else True,
                "mergeable_state": "unknown" if item.state == "closed" else "clean",
                "merged_by": self._user(item.user) if info.merged_at else None,
                "comments": sum(1 for c in meta.comments.values() if c.issue == item.number),
                "review_comments": sum(
                    1 for c in meta.review_comments.values() if c.pull == item.number
                ),
                "maintainer_can_modify": False,
                "commits": 1,
                "additions": 1,
                "deletions": 1,
                "changed_files": 1,
            }
        return answer

    def _comment_json(self, meta: RepoMeta, item: Comment) -> Json:
        api = self._repo_api(meta)
        kind = (
            "pull"
            if meta.issues.get(item.issue, None) and meta.issues[item.issue].pull
            else "issues"
        )
        return {
            "url": f"{api}/issues/comments/{item.id}",
            "html_url": f"{self.named_url}/{meta.full_name}/{kind}/{item.issue}"
            f"#issuecomment-{item.id}",
            "issue_url": f"{api}/issues/{item.issue}",
            "id": item.id,
            "node_id": _node("IC", item.id),
            "user": self._user(item.user),
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "author_association": "MEMBER",
            "body": item.body,
            "performed_via_github_app": None,
        }

    def _review_comment_json(self, meta: RepoMeta, item: ReviewComment) -> Json:
        api = self._repo_api(meta)
        url = f"{api}/pulls/comments/{item.id}"
        web = f"{self.named_url}/{meta.full_name}/pull/{item.pull}#discussion_r{item.id}"
        answer: Json = {
            "url": url,
            "pull_request_review_id": item.review_id,
            "id": item.id,
            "node_id": _node("PRRC", item.id),
            "diff_hunk": item.diff_hunk,
            "path": item.path,
            "position": item.line,
            "original_position": item.line,
            "commit_id": item.commit_id,
            "original_commit_id": item.commit_id,
            "user": self._user(item.user),
            "body": item.body,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "html_url": web,
            "pull_request_url": f"{api}/pulls/{item.pull}",
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": url},
                "html": {"href": web},
                "pull_request": {"href": f"{api}/pulls/{item.pull}"},
            },
            "start_line": None,
            "original_start_line": None,
            "start_side": None,
            "line": item.line,
            "original_line": item.line,
            "side": "RIGHT",
            "subject_type": "line",
        }
        if item.in_reply_to is not None:
            answer["in_reply_to_id"] = item.in_reply_to
        return answer

    def _review_json(self, meta: RepoMeta, item: Review) -> Json:
        api = self._repo_api(meta)
        web = f"{self.named_url}/{meta.full_name}/pull/{item.pull}#pullrequestreview-{item.id}"
        return {
            "id": item.id,
            "node_id": _node("PRR", item.id),
            "user": self._user(item.user),
            "body": item.body,
            "state": item.state,
            "html_url": web,
            "pull_request_url": f"{api}/pulls/{item.pull}",
            "author_association": "MEMBER",
            "_links": {"html": {"href": web}, "pull_request": {"href": f"{api}/pulls/{item.pull}"}},
            "submitted_at": stamp(item.submitted),
            "commit_id": item.commit_id,
        }

    def _asset_json(self, meta: RepoMeta, release: Release, item: Asset) -> Json:
        web = f"{self.named_url}/{meta.full_name}/releases/download"
        return {
            "url": f"{self._repo_api(meta)}/releases/assets/{item.id}",
            "id": item.id,
            "node_id": _node("RA", item.id),
            "name": item.name,
            "label": item.label,
            "uploader": self._user(item.uploader),
            "content_type": item.content_type,
            "state": "uploaded",
            "size": len(item.data),
            "digest": item.digest,
            "download_count": item.download_count,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "browser_download_url": f"{web}/{quote(release.tag_name)}/{quote(item.name)}",
        }

    def _release_json(self, meta: RepoMeta, item: Release) -> Json:
        api = self._repo_api(meta)
        web = f"{self.named_url}/{meta.full_name}"
        tag = quote(item.tag_name)
        return {
            "url": f"{api}/releases/{item.id}",
            "assets_url": f"{api}/releases/{item.id}/assets",
            "upload_url": f"{api}/releases/{item.id}/assets{{?name,label}}",
            "html_url": f"{web}/releases/tag/{tag}",
            "id": item.id,
            "author": self._user(item.author),
            "node_id": _node("RE", item.id),
            "tag_name": item.tag_name,
            "target_commitish": item.target_commitish,
            "name": item.name,
            "draft": item.draft,
            "immutable": False,
            "prerelease": item.prerelease,
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
            "published_at": stamp(item.published),
            "assets": [self._asset_json(meta, item, a) for a in item.assets],
            "tarball_url": f"{api}/tarball/{tag}",
            "zipball_url": f"{api}/zipball/{tag}",
            "body": item.body,
        }

    def _org_json(self, org: OrgMeta) -> Json:
        base = f"{self.named_url}/orgs/{org.login}"
        repos = self.owners.get(org.login, [])
        private = sum(1 for r in repos if r.visibility != "public")
        return {
            "login": org.login,
            "id": org.id,
            "node_id": _node("O", org.id),
            "url": base,
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events",
            "hooks_url": f"{base}/hooks",
            "issues_url": f"{base}/issues",
            "members_url": f"{base}/members{{/member}}",
            "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"{self.named_url}/avatars/u/{org.id}",
            "description": org.description,
            "name": org.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "twitter_username": None,
            "is_verified": False,
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": len(repos) - private,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "html_url": f"{self.named_url}/{org.login}",
            "created_at": stamp(org.created),
            "updated_at": stamp(org.updated),
            "archived_at": None,
            "type": "Organization",
            "total_private_repos": private,
            "owned_private_repos": private,
            "private_gists": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "billing_email": None,
            "default_repository_permission": "read",
            "members_can_create_repositories": True,
            "two_factor_requirement_enabled": False,
            "members_allowed_repository_creation_type": "all",
            "members_can_create_public_repositories": True,
            "members_can_create_private_repositories": True,
            "members_can_create_internal_repositories": False,
            "members_can_create_pages": True,
            "members_can_fork_private_repositories": False,
            "web_commit_signoff_required": False,
        } | org.settings

    def _team_json(self, org: OrgMeta, item: Team) -> Json:
        url = f"{self.named_url}/organizations/{org.id}/team/{item.id}"
        parent = org.teams.get(item.parent) if item.parent else None
        return {
            "id": item.id,
            "node_id": _node("T", item.id),
            "url": url,
            "html_url": f"{self.named_url}/orgs/{org.login}/teams/{item.slug}",
            "name": item.name,
            "slug": item.slug,
            "description": item.description,
            "privacy": item.privacy,
            "notification_setting": "notifications_enabled",
            "permission": item.permission,
            "members_url": f"{url}/members{{/member}}",
            "repositories_url": f"{url}/repos",
            "parent": self._team_json(org, parent) if parent else None,
        }

    def _team_repo_json(self, full_name: str, role: str) -> Json:
        key = _ROLE_NAMES.get(role, role)
        rank = _ROLES.index(key) if key in _ROLES else 0
        permissions = {r: i <= rank for i, r in enumerate(_ROLES)}
        return dict(self._repo_json(full_name)) | {
            "permissions": {
                k: permissions[k] for k in ("admin", "maintain", "push", "triage", "pull")
            },
            "role_name": role,
        }

    def _hook_json(self, org: OrgMeta, item: Hook) -> Json:
        url = f"{self.named_url}/orgs/{org.login}/hooks/{item.id}"
        config: Json = {
            "url": item.url,
            "content_type": item.content_type,
            "insecure_ssl": item.insecure_ssl,
        }
        if item.secret is not None:
            config["secret"] = MASK
        return {
            "type": "Organization",
            "id": item.id,
            "name": "web",
            "active": item.active,
            "events": list(item.events),
            "config": config,
            "updated_at": stamp(item.updated),
            "created_at": stamp(item.created),
            "url": url,
            "ping_url": f"{url}/pings",
            "deliveries_url": f"{url}/deliveries",
        }

    def _ruleset_json(self, org: OrgMeta, item: Ruleset, full: bool) -> Json:
        url = f"{self.named_url}/orgs/{org.login}/rulesets/{item.id}"
        answer: Json = {
            "id": item.id,
            "name": item.name,
            "target": item.target,
            "source_type": "Organization",
            "source": org.login,
            "enforcement": item.enforcement,
            "node_id": _node("RRS", item.id),
            "_links": {
                "self": {"href": url},
                "html": {
                    "href": f"{self.named_url}/organizations/{org.login}/settings/rules/{item.id}"
                },
            },
            "created_at": stamp(item.created),
            "updated_at": stamp(item.updated),
        }
        if full:
            answer |= {
                "bypass_actors": item.bypass_actors,
                "current_user_can_bypass": "never",
                "conditions": item.conditions,
                "rules": item.rules,
            }
        return answer

    def _installation_json(self, org: OrgMeta | None) -> Json:
        account = (
            {
                "login": org.login,
                "id": org.id,
                "node_id": _node("O", org.id),
                "type": "Organization",
            }
            if org
            else None
        )
        return {
            "id": self.installation_id,
            "account": account,
            "repository_selection": "all",
            "access_tokens_url": f"{self.named_url}/app/installations/{self.installation_id}"
            "/access_tokens",
            "repositories_url": f"{self.named_url}/installation/repositories",
            "html_url": f"{self.named_url}/organizations/{org.login if org else ''}/settings"
            f"/installations/{self.installation_id}",
            "app_id": self.app_id,
            "app_slug": "acme-backup",
            "target_id": org.id if org else None,
            "target_type": "Organization",
            "permissions": dict(self.app_permissions),
            "events": [],
            "created_at": stamp(0),
            "updated_at": stamp(0),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # Lists: filters, order and pages

    def _page(
        self, path: str, query: dict[str, list[str]], items: list[Any]
    ) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` and its Link header, as GitHub builds them."""
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
        except ValueError:
            per_page = 30
        try:
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            page = 1
        pages = max(1, math.ceil(len(items) / per_page))
        params = {k: v[0] for k, v in query.items()} | {"per_page": str(per_page)}

        def link(n: int, rel: str) -> str:
            q = "&".join(f"{k}={quote(v)}" for k, v in (params | {"page": str(n)}).items())
            return f'<{self.named_url}{path}?{q}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(min(page - 1, pages), "prev"))
        if page < pages:
            links += [link(page + 1, "next"), link(pages, "last")]
        if page > 1:
            links.append(link(1, "first"))
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    @staticmethod
    def _since(query: dict[str, list[str]]) -> float | None:
        """``since`` as seconds after BASE; ValueError if it is not ISO 8601."""
        raw = query.get("since", [None])[0]
        if raw is None:
            return None
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - BASE).total_seconds()

    @staticmethod
    def _ordered(
        items: list[Any], query: dict[str, list[str]], default_sort: str | None, default_dir: str
    ) -> list[Any]:
        sort = query.get("sort", [default_sort])[0]
        if sort is None:  # GitHub ignores direction without sort: oldest first
            return sorted(items, key=lambda x: (x.created, x.id))
        direction = query.get("direction", [default_dir])[0]
        key = attrgetter("updated" if sort == "updated" else "created", "id")
        return sorted(items, key=key, reverse=direction != "asc")

    @staticmethod
    def _state(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
        state = query.get("state", ["open"])[0]
        return items if state == "all" else [x for x in items if x.state == state]

    # Routing

    def _meta_route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        login: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Answer | None:
        """The answer to a metadata endpoint, or None where the listings answer."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "repos" and len(parts) >= 3:
            full = f"{parts[1]}/{parts[2]}"
            owner_listed = any(r.name == parts[2] for r in self.owners.get(parts[1], []))
            if full not in self.repo_meta and not owner_listed:
                return _not_found()
            meta = self._meta(full)
            try:
                return self._repo_route(method, meta, parts[3:], path, query, login, headers, body)
            except json.JSONDecodeError:
                return 400, _message(400, "Problems parsing JSON"), {}
            except ValueError:
                return _invalid("Issue", "since")
        if parts[0] == "orgs" and len(parts) >= 2 and parts[1] in self.orgs and method == "GET":
            return self._org_route(self.orgs[parts[1]], parts[2:], path, query)
        return None

    def _repo_route(
        self,
        method: str,
        meta: RepoMeta,
        rest: list[str],
        path: str,
        query: dict[str, list[str]],
        login: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Answer:
        if method == "POST":
            return self._repo_post(meta, rest, query, login, headers, body)
        if method == "PATCH":
            return self._repo_patch(meta, rest, body)
        if not rest:
            return 200, self._repo_json(meta.full_name), {}
        head = rest[0]
        if head == "issues":
            if not meta.issues_enabled and not _conversation(meta, rest[1:]):
                disabled = _message(410, "Issues are disabled for this repo", "/issues/issues")
                return 410, disabled, {}
            return self._issues_route(meta, rest[1:], path, query)
        if head == "pulls":
            return self._pulls_route(meta, rest[1:], path, query)
        if head == "releases":
            return self._releases_route(meta, rest[1:], path, query, headers)
        if rest == ["labels"]:
            labels = sorted(meta.labels.values(), key=lambda x: x.id)
            return self._listed(path, query, [self._label_json(meta, x) for x in labels])
        if rest == ["milestones"]:
            found = self._state(list(meta.milestones.values()), query)
            far = "9999-12-31T00:00:00Z"
            if query.get("sort", ["due_on"])[0] == "due_on":
                found.sort(key=lambda x: (x.due_on or far, x.number))
            else:
                found.sort(key=lambda x: (x.updated, x.number))
            if query.get("direction", ["asc"])[0] == "desc":
                found.reverse()
            return self._listed(path, query, [self._milestone_json(meta, x) for x in found])
        return _not_found()

    def _listed(self, path: str, query: dict[str, list[str]], items: list[Any]) -> Answer:
        page, link = self._page(path, query, items)
        return 200, page, link

    def _issues_route(
        self, meta: RepoMeta, rest: list[str], path: str, query: dict[str, list[str]]
    ) -> Answer:
        since = self._since(query)
        if not rest:
            found = self._state(list(meta.issues.values()), query)
            if since is not None:
                found = [x for x in found if x.updated >= since]
            if "labels" in query:
                wanted = set(query["labels"][0].split(","))
                found = [
                    x
                    for x in found
                    if wanted <= {meta.labels[i].name for i in x.labels if i in meta.labels}
                ]
            found = self._ordered(found, query, "created", "desc")
            page, link = self._page(path, query, found)
            counts = Counter(c.issue for c in meta.comments.values())
            return 200, [self._issue_json(meta, x, counts[x.number]) for x in page], link
        if rest == ["comments"]:
            comments = list(meta.comments.values())
            if not meta.issues_enabled:  # what stays: the pull requests' conversations
                comments = [c for c in comments if _is_pull(meta, c.issue)]
            if since is not None:
                comments = [x for x in comments if x.updated >= since]
            comments = self._ordered(comments, query, None, "desc")
            page, link = self._page(path, query, comments)
            return 200, [self._comment_json(meta, x) for x in page], link
        if len(rest) == 2 and rest[0] == "comments" and rest[1].isdigit():
            comment = meta.comments.get(int(rest[1]))
            return (200, self._comment_json(meta, comment), {}) if comment else _not_found()
        if not rest[0].isdigit() or int(rest[0]) not in meta.issues:
            return _not_found()
        issue = meta.issues[int(rest[0])]
        if len(rest) == 1:
            count = sum(1 for c in meta.comments.values() if c.issue == issue.number)
            return 200, self._issue_json(meta, issue, count), {}
        if rest[1:] == ["comments"]:
            comments = [c for c in meta.comments.values() if c.issue == issue.number]
            if since is not None:
                comments = [x for x in comments if x.updated >= since]
            comments.sort(key=lambda x: x.id)
            page, link = self._page(path, query, comments)
            return 200, [self._comment_json(meta, x) for x in page], link
        return _not_found()

    def _pulls_route(
        self, meta: RepoMeta, rest: list[str], path: str, query: dict[str, list[str]]
    ) -> Answer:
        if not rest:
            pulls = self._state([x for x in meta.issues.values() if x.pull], query)
            pulls = self._ordered(pulls, query, "created", "desc")
            page, link = self._page(path, query, pulls)
            return 200, [self._pull_json(meta, x, detail=False) for x in page], link
        if rest == ["comments"]:
            since = self._since(query)
            comments = list(meta.review_comments.values())
            if since is not None:
                comments = [x for x in comments if x.updated >= since]
            comments = self._ordered(comments, query, None, "desc")
            page, link = self._page(path, query, comments)
            return 200, [self._review_comment_json(meta, x) for x in page], link
        if len(rest) == 2 and rest[0] == "comments" and rest[1].isdigit():
            found = meta.review_comments.get(int(rest[1]))
            return (200, self._review_comment_json(meta, found), {}) if found else _not_found()
        number = int(rest[0]) if rest[0].isdigit() else 0
        pull = meta.issues.get(number)
        if pull is None or pull.pull is None:
            return _not_found()
        if len(rest) == 1:
            return 200, self._pull_json(meta, pull, detail=True), {}
        if rest[1:] == ["reviews"]:
            reviews = sorted(meta.reviews.get(number, []), key=lambda x: x.id)
            return self._listed(path, query, [self._review_json(meta, x) for x in reviews])
        if rest[1:] == ["comments"]:
            comments = sorted(
                (c for c in meta.review_comments.values() if c.pull == number), key=lambda x: x.id
            )
            return self._listed(path, query, [self._review_comment_json(meta, x) for x in comments])
        return _not_found()

    def _releases_route(
        self,
        meta: RepoMeta,
        rest: list[str],
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
    ) -> Answer:
        if not rest:
            releases = sorted(meta.releases.values(), key=lambda x: (x.created, x.id), reverse=True)
            return self._listed(path, query, [self._release_json(meta, x) for x in releases])
        if len(rest) == 2 and rest[0] == "assets" and rest[1].isdigit():
            entry = self._assets.get(int(rest[1]))
            if entry is None or entry[0] is not meta:
                return _not_found()
            _, release, asset = entry
            accept = {x.split(";")[0].strip().lower() for x in headers.get("Accept", "").split(",")}
            if "application/octet-stream" in accept:
                return 302, None, {"Location": self.sign_storage_url(asset.id)}
            return 200, self._asset_json(meta, release, asset), {}
        if rest[0] == "tags" and len(rest) == 2:
            found = next((r for r in meta.releases.values() if r.tag_name == rest[1]), None)
            return (200, self._release_json(meta, found), {}) if found else _not_found()
        if not rest[0].isdigit() or int(rest[0]) not in meta.releases:
            return _not_found()
        release = meta.releases[int(rest[0])]
        if len(rest) == 1:
            return 200, self._release_json(meta, release), {}
        if rest[1:] == ["assets"]:
            items = [self._asset_json(meta, release, a) for a in release.assets]
            return self._listed(path, query, items)
        return _not_found()

    def _org_route(
        self, org: OrgMeta, rest: list[str], path: str, query: dict[str, list[str]]
    ) -> Answer | None:
        if not rest:
            return 200, self._org_json(org), {}
        if rest == ["repos"]:
            return None  # the listing
        if rest == ["members"]:
            return self._listed(path, query, [self._user(x) for x in sorted(org.members)])
        if rest == ["teams"]:
            teams = sorted(org.teams.values(), key=lambda x: x.name.lower())
            return self._listed(path, query, [self._team_json(org, x) for x in teams])
        if len(rest) >= 2 and rest[0] == "teams":
            team = org.teams.get(rest[1])
            if team is None:
                return _not_found()
            if len(rest) == 2:
                detail = self._team_json(org, team) | {
                    "members_count": len(team.members),
                    "repos_count": len(team.repos),
                    "organization": self._org_json(org),
                }
                return 200, detail, {}
            if rest[2:] == ["members"]:
                return self._listed(path, query, [self._user(x) for x in team.members])
            if rest[2:] == ["repos"]:
                items = [self._team_repo_json(r, role) for r, role in sorted(team.repos.items())]
                return self._listed(path, query, items)
            return _not_found()
        if rest == ["hooks"]:
            hooks = sorted(org.hooks.values(), key=lambda x: x.id)
            return self._listed(path, query, [self._hook_json(org, x) for x in hooks])
        if len(rest) == 2 and rest[0] == "hooks" and rest[1].isdigit():
            hook = org.hooks.get(int(rest[1]))
            return (200, self._hook_json(org, hook), {}) if hook else _not_found()
        if rest == ["actions", "variables"]:
            variables = [
                {
                    "name": v.name,
                    "value": v.value,
                    "created_at": stamp(v.created),
                    "updated_at": stamp(v.updated),
                    "visibility": v.visibility,
                }
                | self._selected(org, "variables", v.name, v.visibility)
                for v in sorted(org.variables.values(), key=lambda x: x.name)
            ]
            page, link = self._page(path, query, variables)
            return 200, {"total_count": len(variables), "variables": page}, link
        if rest == ["actions", "secrets"]:
            names = [
                {
                    "name": s.name,
                    "created_at": stamp(s.created),
                    "updated_at": stamp(s.updated),
                    "visibility": s.visibility,
                }
                | self._selected(org, "secrets", s.name, s.visibility)
                for s in sorted(org.secrets.values(), key=lambda x: x.name)
            ]
            page, link = self._page(path, query, names)
            return 200, {"total_count": len(names), "secrets": page}, link
        if rest == ["rulesets"]:
            rulesets = sorted(org.rulesets.values(), key=lambda x: x.id)
            return self._listed(path, query, [self._ruleset_json(org, x, False) for x in rulesets])
        if len(rest) == 2 and rest[0] == "rulesets" and rest[1].isdigit():
            ruleset = org.rulesets.get(int(rest[1]))
            return (200, self._ruleset_json(org, ruleset, True), {}) if ruleset else _not_found()
        return _not_found()

    def _selected(self, org: OrgMeta, kind: str, name: str, visibility: str) -> Json:
        if visibility != "selected":
            return {}
        url = f"{self.named_url}/orgs/{org.login}/actions/{kind}/{name}/repositories"
        return {"selected_repositories_url": url}

    # Writes, for restores

    def _repo_post(
        self,
        meta: RepoMeta,
        rest: list[str],
        query: dict[str, list[str]],
        login: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Answer:
        repo = meta.full_name
        if rest == ["releases"]:
            fields = json.loads(body or b"{}")
            tag = fields.get("tag_name")
            if not tag:
                return _invalid("Release", "tag_name", "missing_field")
            if any(r.tag_name == tag for r in meta.releases.values()):
                return _invalid("Release", "tag_name", "already_exists")
            release = self.add_release(
                repo,
                tag,
                draft=bool(fields.get("draft", False)),
                prerelease=bool(fields.get("prerelease", False)),
                name=fields.get("name"),
                body=fields.get("body"),
                author=login,
            )
            release.target_commitish = fields.get("target_commitish") or "main"
            answer = self._release_json(meta, release)
            return 201, answer, {"Location": answer["url"]}
        if len(rest) == 3 and rest[0] == "releases" and rest[2] == "assets":
            release_id = int(rest[1]) if rest[1].isdigit() else 0
            if release_id not in meta.releases:
                return _not_found()
            name = query.get("name", [""])[0]
            if not name:
                return _invalid("ReleaseAsset", "name", "missing_field")
            release = meta.releases[release_id]
            if any(a.name == name for a in release.assets):
                return _invalid("ReleaseAsset", "name", "already_exists")
            kind = headers.get("Content-Type", "application/octet-stream")
            label = query.get("label", [None])[0]
            asset = self.add_asset(repo, release_id, name, body, kind, label=label, uploader=login)
            return 201, self._asset_json(meta, release, asset), {}
        if rest and rest[0] == "issues" and not meta.issues_enabled:
            return 410, _message(410, "Issues are disabled for this repo", "/issues/issues"), {}
        if rest == ["issues"]:
            fields = json.loads(body or b"{}")
            if not fields.get("title"):
                return _invalid("Issue", "title", "missing_field")
            names = [x if isinstance(x, str) else x["name"] for x in fields.get("labels", [])]
            issue = self.issue(
                repo,
                str(fields["title"]),
                fields.get("body"),
                user=login,
                labels=names,
                milestone=fields.get("milestone"),
                assignees=fields.get("assignees", []),
            )
            answer = self._issue_json(meta, issue, 0)
            return 201, answer, {"Location": answer["url"]}
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            number = int(rest[1]) if rest[1].isdigit() else 0
            if number not in meta.issues:
                return _not_found()
            fields = json.loads(body or b"{}")
            if not fields.get("body"):
                return _invalid("IssueComment", "body", "missing_field")
            comment = self.comment(repo, number, str(fields["body"]), user=login)
            answer = self._comment_json(meta, comment)
            return 201, answer, {"Location": answer["url"]}
        return _not_found()

    def _repo_patch(self, meta: RepoMeta, rest: list[str], body: bytes) -> Answer:
        if len(rest) == 2 and rest[0] == "issues" and rest[1].isdigit():
            if not meta.issues_enabled:
                disabled = _message(410, "Issues are disabled for this repo", "/issues/issues")
                return 410, disabled, {}
            number = int(rest[1])
            if number not in meta.issues:
                return _not_found()
            fields = json.loads(body or b"{}")
            labels = fields.get("labels")
            issue = self.edit_issue(
                meta.full_name,
                number,
                body=fields.get("body"),
                title=fields.get("title"),
                state=fields.get("state"),
                labels=None
                if labels is None
                else [x if isinstance(x, str) else x["name"] for x in labels],
            )
            count = sum(1 for c in meta.comments.values() if c.issue == number)
            return 200, self._issue_json(meta, issue, count), {}
        return _not_found()

    def _app_route(self, method: str, parts: list[str], org_login: str | None) -> Answer:
        """An App endpoint, its JWT already checked."""
        if method == "GET" and org_login is not None:
            org = self.orgs.get(org_login)
            if org is None:
                return _not_found()
            return 200, self._installation_json(org), {}
        if method == "GET" and parts == ["app"]:
            return (
                200,
                {
                    "id": self.app_id,
                    "slug": "acme-backup",
                    "node_id": _node("A", self.app_id or 0),
                    "name": "acme-backup",
                    "owner": self._user("acme"),
                    "permissions": dict(self.app_permissions),
                    "events": [],
                    "created_at": stamp(0),
                    "updated_at": stamp(0),
                },
                {},
            )
        if method == "GET" and parts == ["app", "installations"]:
            org = next(iter(self.orgs.values()), None)
            return 200, [self._installation_json(org)], {}
        if (
            method == "POST"
            and len(parts) == 4
            and parts[:2] == ["app", "installations"]
            and parts[3] == "access_tokens"
        ):
            if parts[2] != str(self.installation_id):
                return _not_found()
            return 201, self._mint(), {}
        return _not_found()

    # Storage

    def _signed_query(self, asset: Asset, issued: datetime) -> dict[str, str]:
        return {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"STANDINKEY/{issued:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": f"{issued:%Y%m%dT%H%M%SZ}",
            "X-Amz-Expires": str(self.storage_url_life_s),
            "X-Amz-SignedHeaders": "host",
            "response-content-disposition": f"attachment; filename={asset.name}",
            "response-content-type": "application/octet-stream",
        }

    def _signature(self, path: str, params: dict[str, str]) -> str:
        canonical = path + "?" + urlencode(sorted(params.items()))
        return hmac.new(self._sign_key, canonical.encode(), hashlib.sha256).hexdigest()

    def sign_storage_url(self, asset_id: int, issued_at: float | None = None) -> str:
        """The storage URL an asset's 302 names, signed at ``issued_at`` (default: now)."""
        with self._lock:
            meta, _, asset = self._assets[asset_id]
            when = self.clock() if issued_at is None else issued_at
            issued = datetime.fromtimestamp(int(when), UTC)
            path = f"/releases/{meta.id}/{asset.id}"
            params = self._signed_query(asset, issued)
            params["X-Amz-Signature"] = self._signature(path, params)
            return f"{self.storage.url}{path}?{urlencode(params)}"

    def _storage_answer(self, raw: str, headers: dict[str, str]) -> tuple[int, bytes, Json]:
        url = urlsplit(raw)
        with self._lock:
            self.storage_received.append((raw, headers))
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            if any(k.lower() == "authorization" for k in headers):
                return _s3_error(
                    400,
                    "InvalidArgument",
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                    "Signature query string parameter or the Authorization header should be "
                    "specified",
                    ArgumentName="Authorization",
                    ArgumentValue=headers.get("Authorization", headers.get("authorization", "")),
                )
            given = params.pop("X-Amz-Signature", "")
            if not hmac.compare_digest(given, self._signature(url.path, params)):
                return _s3_error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                )
            issued = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            ends = issued.timestamp() + int(params["X-Amz-Expires"])
            if self.clock() > ends:
                return _s3_error(
                    403,
                    "AccessDenied",
                    "Request has expired",
                    **{"X-Amz-Expires": params["X-Amz-Expires"]},
                    Expires=datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ServerTime=datetime.fromtimestamp(self.clock(), UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                )
            asset_id = int(url.path.rsplit("/", 1)[-1])
            entry = self._assets.get(asset_id)
            if entry is None:
                return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
            asset = entry[2]
            if self.count_downloads:
                asset.download_count += 1
            data = self.tampered.get(asset_id, asset.data)
            return (
                200,
                data,
                {
                    "Content-Type": params.get("response-content-type", asset.content_type),
                    "Content-Disposition": params.get("response-content-disposition", ""),
                    "ETag": '"' + hashlib.md5(data).hexdigest() + '"',  # noqa: S324
                    "Last-Modified": (BASE + timedelta(seconds=asset.updated)).strftime(
                        "%a, %d %b %Y %H:%M:%S GMT"
                    ),
                    "Accept-Ranges": "bytes",
                },
            )

    # HTTP

    def _answer(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        url = urlsplit(raw)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        with self._lock:
            self.requests.append(raw)
            self.received.append((raw, headers))
            self.calls.append(f"{method} {raw}")
            app_org = (
                parts[1]
                if len(parts) == 3 and parts[0] == "orgs" and parts[2] == "installation"
                else None
            )
            authorized = False
            answer: Answer
            if parts == ["rate_limit"] and self._token_valid(credential):
                answer = 200, self._rate_limit_json(), {}  # not counted, as on GitHub
                return self._finish(method, answer, headers, counts=False)
            if app_org is not None or parts[0] == "app":
                if scheme.lower() != "bearer" or (refusal := self._check_jwt(credential)):
                    message = _NOT_JWT if scheme.lower() != "bearer" else refusal or _NOT_JWT
                    answer = 401, _message(401, message), {}
                else:
                    authorized = True
                    answer = self._app_route(method, parts, app_org)
            elif scheme.lower() not in ("token", "bearer") or not self._token_valid(credential):
                answer = 401, _message(401, "Bad credentials"), {}
            else:
                authorized = True
                login = self.tokens[credential]
                found = self._meta_route(method, url.path, query, login, headers, body)
                if found is not None:
                    answer = found
                elif method == "GET":
                    answer = self._route(url.path, query, login)
                else:
                    answer = _not_found()
            return self._finish(method, answer, headers, counts=authorized)

    def _finish(
        self, method: str, answer: Answer, headers: dict[str, str], counts: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        status, data, out = self._finish_answer(method, answer, headers, counts)
        self.answered.append((self.requests[-1], status))
        return status, data, out

    def _finish_answer(
        self, method: str, answer: Answer, headers: dict[str, str], counts: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        status, body, extra = answer
        data = b"" if body is None else json.dumps(body).encode()
        out = {"Content-Type": "application/json; charset=utf-8"} if body is not None else {}
        if status == 200 and method == "GET":
            etag = f'W/"{hashlib.sha256(data).hexdigest()}"'
            out |= {
                "ETag": etag,
                "Cache-Control": "private, max-age=60, s-maxage=60",
                "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            }
            wanted = {x.strip() for x in headers.get("If-None-Match", "").split(",")}
            if counts and etag in wanted:
                self.not_modified += 1
                status, data, out = 304, b"", {"ETag": etag}
                counts = False
        if counts:
            self.counted += 1
            if (
                self.secondary_after is not None
                and not self._secondary_fired
                and self.counted >= self.secondary_after
            ):
                self._secondary_fired = True
                status, extra = 403, {"Retry-After": "1"}
                data = json.dumps(
                    _message(
                        403,
                        "You have exceeded a secondary rate limit. Please wait a few minutes "
                        f"before you try again. {_REQUEST_ID}.",
                        "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                    )
                ).encode()
                out = {"Content-Type": "application/json; charset=utf-8"}
        out |= {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - self.counted, 0)),
            "X-RateLimit-Used": str(self.counted),
            "X-RateLimit-Resource": "core",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-GitHub-Api-Version-Selected": "2022-11-28",
        }
        return status, data, out | extra

    def _rate_limit_json(self) -> Json:
        core = {
            "limit": self.rate_limit,
            "remaining": max(self.rate_limit - self.counted, 0),
            "reset": int(time.time()) + 3600,
            "used": self.counted,
            "resource": "core",
        }
        return {"resources": {"core": core}, "rate": core}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_PATCH(self) -> None:
                self._serve()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                body = self._body()
                if stand_in.delay_s:
                    time.sleep(stand_in.delay_s)
                status, data, headers = stand_in._answer(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # a client that refused the answer part-way
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


__all__ = [
    "BASE",
    "BOT_LOGIN",
    "LOOPBACK",
    "GitHubOrgStandIn",
    "app_key_pair",
    "stamp",
]
