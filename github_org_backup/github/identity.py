"""Who the tool is to GitHub: a token as given, or a GitHub App's installation.

    TokenIdentity   GITHUB_TOKEN or --github-token-file: one token, for the API and for git
    AppIdentity     GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY_FILE (+ GITHUB_APP_INSTALLATION_ID):
                    installation tokens, each bought with a JWT signed by the App's key

An installation token lasts an hour and a run can last longer. One PyGithub
``AppInstallationAuth`` holds the current token and buys the next 20 s before ``expires_at``;
the API client (``auth()``) and every git run (``git_token()``) read it through one lock, so both
always send the current token and two threads never buy one each. Without
GITHUB_APP_INSTALLATION_ID the installation is found with the App's JWT, at the first use:
``GET /orgs/{org}/installation`` (``/users/{user}/installation`` for --user).

Every token and JWT issued is kept, with the key, for redaction (``secrets()``); PyGithub's
debug log of an access-token answer (which holds the token) is scrubbed before it is written.

PyGithub loads only when a token is first wanted: this module is safe on the start-up path.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from github_org_backup.errors import (
    ApiHostMismatch,
    BackupError,
    GitHubAccessError,
    GitHubUnavailable,
)
from github_org_backup.model.packages import Owner

if TYPE_CHECKING:
    from github import Auth

# git's username for an installation token (the token is the password).
APP_GIT_USERNAME = "x-access-token"
_TOKEN_IN_JSON = re.compile(r"""(["']token["']\s*:\s*["'])[^"']*(["'])""")
_LIBRARY_LOGGER = "github.Requester"  # PyGithub's requests, answers included, at debug level
_RETRIES = 3
_TIMEOUT_S = 30


class Identity(Protocol):
    """What the API client and git need of a credential. ``kind`` is "token" or "app"."""

    @property
    def kind(self) -> Literal["token", "app"]: ...

    def auth(self) -> Auth.Auth:
        """For ``Github(auth=...)``: every request sends the current token."""
        ...

    def git_token(self) -> str:
        """The current token, renewed when near expiry; thread-safe."""
        ...

    def git_username(self, configured: str) -> str:
        """git's username: ``x-access-token`` for an App, else ``configured`` (GITHUB_USERNAME)."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Every token and JWT issued so far, and the key: what must never be shown."""
        ...

    def close(self) -> None:
        """Release what the identity holds open: once the run is over."""
        ...


@dataclass(frozen=True)
class TokenIdentity:
    """A personal access token (classic or fine-grained), as given."""

    token: str = field(repr=False)

    @property
    def kind(self) -> Literal["token", "app"]:
        return "token"

    def auth(self) -> Auth.Auth:
        from github import Auth

        return Auth.Token(self.token)

    def git_token(self) -> str:
        return self.token

    def git_username(self, configured: str) -> str:
        return configured

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)

    def close(self) -> None:
        pass


class AppIdentity:
    """A GitHub App's installation on ``owner``: tokens bought with the App's key, renewed."""

    def __init__(
        self,
        app_id: int,
        private_key: str,
        installation_id: int | None,
        api_url: str,
        owner: Owner,
        *,
        retries: int = _RETRIES,
        timeout_s: int = _TIMEOUT_S,
    ) -> None:
        self.app_id = app_id
        self._private_key = private_key
        self._installation_id = installation_id
        self._installation_id_given = installation_id is not None
        self.api_url = api_url.rstrip("/")
        self.owner = owner
        self._retries = retries
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._issued: list[str] = []
        self._app_auth: Any = None  # github.Auth.AppAuth, recording the JWTs it signs
        self._integration: Any = None  # github.GithubIntegration, authenticated by the JWT
        self._installation: Any = None  # github.Auth.AppInstallationAuth
        self._shared: Auth.Auth | None = None
        self._scrub: _ScrubSecrets | None = None

    def __repr__(self) -> str:
        return (
            f"AppIdentity(app_id={self.app_id}, installation_id={self._installation_id}, "
            f"owner={self.owner})"
        )

    @property
    def kind(self) -> Literal["token", "app"]:
        return "app"

    @property
    def installation_id(self) -> int:
        """GITHUB_APP_INSTALLATION_ID, or the owner's installation of the App (asked once)."""
        with self._lock:
            if self._installation_id is None:
                self._installation_id = self._find_installation()
            return self._installation_id

    def auth(self) -> Auth.Auth:
        with self._lock:
            if self._shared is None:
                self._shared = _shared_auth(self.git_token)
            return self._shared

    def git_token(self) -> str:
        with self._lock:
            installation = self._installation_auth()
            try:
                token: str = installation.token  # buys a token when none is current
            except BackupError:
                raise
            except Exception as exc:
                raise self._failure(exc, "buy an installation token") from None
            if token not in self._issued:
                self._issued.append(token)
            return token

    def git_username(self, configured: str) -> str:
        return APP_GIT_USERNAME

    def secrets(self) -> tuple[str, ...]:
        # No lock: a copy of the list is atomic, and the log filter asks from any thread.
        key_lines = [
            line.strip()
            for line in self._private_key.splitlines()
            if len(line.strip()) >= 16 and not line.startswith("-----")
        ]
        return (*list(self._issued), self._private_key, *key_lines)

    def close(self) -> None:
        """Close the lookup's connection and take the log filter away: once the run is over."""
        with self._lock:
            if self._integration is not None:
                self._integration.close()
            if self._scrub is not None:
                logging.getLogger(_LIBRARY_LOGGER).removeFilter(self._scrub)
                self._scrub = None

    # PyGithub, built at the first use

    def _signer(self) -> Any:
        if self._app_auth is None:
            self._app_auth = _recording_app_auth(self.app_id, self._private_key, self._record)
            self._scrub = _ScrubSecrets(self.secrets)
            logging.getLogger(_LIBRARY_LOGGER).addFilter(self._scrub)
        return self._app_auth

    def _record(self, jwt: str) -> None:
        with self._lock:
            self._issued.append(jwt)

    def _client(self) -> Any:
        if self._integration is None:
            from github import GithubIntegration, GithubRetry

            from github_org_backup.github.http import API_VERSION
            from github_org_backup.github.retry import RETRY_STATUSES

            self._integration = GithubIntegration(
                auth=self._signer(),
                base_url=self.api_url,
                timeout=self._timeout_s,
                retry=GithubRetry(
                    total=self._retries,
                    backoff_factor=1.0,
                    status_forcelist=list(RETRY_STATUSES),
                    max_rate_limit_wait=900,
                ),
                api_version=API_VERSION,
            )
        return self._integration

    def _installation_auth(self) -> Any:
        if self._installation is None:
            installation_id = self.installation_id
            self._installation = self._signer().get_installation_auth(
                installation_id, requester=self._client().requester
            )
        return self._installation

    def _find_installation(self) -> int:
        client = self._client()
        try:
            if self.owner.kind == "orgs":
                found = client.get_org_installation(self.owner.name)
            else:
                found = client.get_user_installation(self.owner.name)
            installation_id = found.id
        except BackupError:
            raise
        except Exception as exc:
            raise self._failure(exc, f"find its installation on {self._owner_words}") from None
        if not isinstance(installation_id, int) or isinstance(installation_id, bool):
            raise GitHubAccessError(
                f"the GitHub API at {self.api_url} named no installation id for GitHub App "
                f"{self.app_id} on {self._owner_words}: set GITHUB_APP_INSTALLATION_ID"
            )
        return installation_id

    @property
    def _owner_words(self) -> str:
        what = "organisation" if self.owner.kind == "orgs" else "user"
        return f"the {what} {self.owner.name!r}"

    def _failure(self, exc: Exception, doing: str) -> BackupError:
        """PyGithub's or requests' exception as the tool's, saying what to do."""
        import requests
        import urllib3
        from github import GithubException

        if isinstance(exc, GithubException):
            return self._refusal(exc.status, _their_words(exc.data), doing)
        if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError)):
            return GitHubUnavailable(
                f"GitHub App {self.app_id}: cannot reach the GitHub API at {self.api_url} to "
                f"{doing}: {type(exc).__name__}"
            )
        if isinstance(exc, RuntimeError):  # PyGithub refusing a redirect to another host
            return ApiHostMismatch(
                f"the GitHub API at {self.api_url} answered with a redirect PyGithub refuses "
                "when the App tried to "
                f"{doing}; set --github-api-url / GITHUB_API_URL to the URL it names"
            )
        return GitHubUnavailable(
            f"GitHub App {self.app_id}: could not {doing}: {type(exc).__name__}"
        )

    def _refusal(self, status: int, said: str, doing: str) -> BackupError:
        app = f"GitHub App {self.app_id}"
        shown = f" (GitHub: {said})" if said else ""
        lowered = said.lower()
        if status == 401 and "could not be decoded" in lowered:
            return GitHubAccessError(
                f"{app}: GitHub could not verify the App's JWT (HTTP 401){shown}: the key in "
                "GITHUB_APP_PRIVATE_KEY_FILE is not one of this App's keys, or GITHUB_APP_ID "
                "names another App. Check GITHUB_APP_ID (the App ID on the App's settings page, "
                "not its client ID) and generate a private key there if need be"
            )
        if status == 401 and "claim" in lowered:
            return GitHubAccessError(
                f"{app}: GitHub refused the JWT's times (HTTP 401){shown}: check this "
                "machine's clock (NTP)"
            )
        if status == 401 or (status == 404 and "integration" in lowered):
            return GitHubAccessError(
                f"{app}: GitHub refused the App's JWT (HTTP {status}){shown}: check that "
                "GITHUB_APP_ID is the App ID on the App's settings page and that the key in "
                "GITHUB_APP_PRIVATE_KEY_FILE is one of its private keys"
            )
        if status == 404 and doing.startswith("find"):
            return GitHubAccessError(
                f"{app} is not installed on {self._owner_words} (HTTP 404){shown}: install it "
                "there (Settings, GitHub Apps; or the App's public page, Install), or set "
                "GITHUB_APP_INSTALLATION_ID to the installation's id"
            )
        if status == 404:
            source = "GITHUB_APP_INSTALLATION_ID" if self._installation_id_given else "the lookup"
            return GitHubAccessError(
                f"{app}: installation {self._installation_id} not found (HTTP 404){shown}: "
                f"check {source} (unset it to find the installation on {self._owner_words})"
            )
        if status == 403:
            return GitHubAccessError(
                f"{app}: GitHub refused to {doing} (HTTP 403){shown}: the installation may be "
                f"suspended, or {self._owner_words} may restrict GitHub Apps"
            )
        return GitHubUnavailable(f"{app}: GitHub API answered HTTP {status} to {doing}{shown}")


def _their_words(data: object) -> str:
    """GitHub's own message, on one line and short, or nothing."""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str):
        return ""
    return " ".join("".join(c if c.isprintable() else " " for c in message).split())[:300]


# The PyGithub classes, made when PyGithub is first wanted


def _recording_app_auth(app_id: int, private_key: str, record: Callable[[str], None]) -> Any:
    """``Auth.AppAuth(app_id, private_key)`` that hands each JWT it signs to ``record``."""
    from github import Auth

    class RecordingAppAuth(Auth.AppAuth):
        def create_jwt(self, expiration: int | None = None) -> str:
            jwt = super().create_jwt(expiration)
            record(jwt)
            return jwt

    return RecordingAppAuth(app_id, private_key)


def _shared_auth(current: Callable[[], str]) -> Auth.Auth:
    """An ``Auth`` whose token is ``current()`` at each request. Not a ``WithRequester``: the
    Github client it is given to never rebinds it, so the API and git share one token."""
    from github import Auth

    class CurrentInstallationToken(Auth.Auth):
        @property
        def token_type(self) -> str:
            return "token"

        @property
        def token(self) -> str:
            return current()

        @property
        def _masked_token(self) -> str:
            return "token (installation token removed)"

    return CurrentInstallationToken()


class _ScrubSecrets(logging.Filter):
    """PyGithub logs each answer at debug level: an access-token answer holds the token."""

    def __init__(self, secrets: Callable[[], tuple[str, ...]]) -> None:
        super().__init__()
        self._secrets = weakref.WeakMethod(secrets)  # keeps no identity alive

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets()
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to mend
            return True
        scrubbed = _TOKEN_IN_JSON.sub(r"\1<redacted>\2", text)
        for secret in secrets() if secrets is not None else ():
            scrubbed = scrubbed.replace(secret, "<redacted>")
        if scrubbed != text:
            record.msg, record.args = scrubbed, ()
        return True


__all__ = ["APP_GIT_USERNAME", "AppIdentity", "Identity", "TokenIdentity"]
