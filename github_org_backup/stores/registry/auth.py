"""Registry authentication, the token protocol: challenges, Bearer tokens per scope, Basic.

Knows nothing about copying, nor where credentials come from (``credentials.py``). The
registry transport asks an Authenticator for the header to send with a set of scopes, and
hands it any 401 challenge it gets back.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from github_org_backup.base import jsonio
from github_org_backup.base.limits import MAX_TOKEN_BODY, Limits, paced
from github_org_backup.errors import AuthError, TooSlow, UsageError
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry.answers import error_body
from github_org_backup.stores.registry.credentials import (
    Credentials,
    CredentialSource,
    nothing_found,
)
from github_org_backup.stores.registry.origins import internal_refusal, realm_refusal
from github_org_backup.stores.registry.wire import tls_failure, unreachable

_CHALLENGE_TOKEN = re.compile(
    r'[\s,]*([A-Za-z][A-Za-z0-9_.-]*)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?'
)
_TOKEN_SAFETY_MARGIN_S = 10.0
_DEFAULT_TOKEN_LIFETIME_S = 60.0


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header into its challenges (quoted values may hold commas)."""
    found: list[tuple[str, dict[str, str]]] = []
    position = 0
    while (match := _CHALLENGE_TOKEN.match(header, position)) and match.end() > position:
        position = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:  # a bare token starts the next challenge
            found.append((name.lower(), {}))
        elif found:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found[-1][1][name.lower()] = value
    return [Challenge(scheme, params) for scheme, params in found]


def repository_scope(name: str, actions: str) -> str:
    return f"repository:{name}:{actions}"


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Authorization for one registry: learns its scheme from challenges, caches tokens by scope."""

    def __init__(
        self,
        registry: Registry,
        credentials: CredentialSource,
        session: aiohttp.ClientSession,
        allowed_realms: frozenset[str] = frozenset(),
    ) -> None:
        self._registry = registry
        self._allowed_realms = allowed_realms
        self._lookup = None if isinstance(credentials, Credentials | None) else credentials
        self._credentials = credentials if isinstance(credentials, Credentials) else nothing_found()
        self._lookup_lock = asyncio.Lock()
        self._lookup_failed: UsageError | None = None
        self._session = session
        self._scheme: str | None = None
        self._bearer: Mapping[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._probing = False
        self._settled = asyncio.Event()
        self.token_fetches = 0

    async def credentials(self) -> Credentials:
        """The registry's credentials, looked up once, when first needed (a helper may run);
        when none were found, their ``source`` says where the lookup looked."""
        if self._lookup is not None:
            async with self._lookup_lock:
                if self._lookup_failed is not None:
                    raise self._lookup_failed  # a helper that failed is not run again
                if self._lookup is not None:
                    try:
                        self._credentials = await self._lookup() or nothing_found()
                    except UsageError as exc:
                        self._lookup_failed = exc
                        raise
                    self._lookup = None
        return self._credentials

    @staticmethod
    def _key(scopes: Iterable[str]) -> str:
        return " ".join(sorted(set(scopes)))

    async def header(self, scopes: Iterable[str]) -> str | None:
        """The Authorization value for these scopes, fetching a token if the realm is known.

        Until the registry's scheme is known, one request goes ahead as the probe and the
        others wait for its answer, rather than all collecting the same 401.
        """
        if self.claim_probe():
            return None
        if self._scheme is None and not self._settled.is_set():
            await self._settled.wait()
        if self._scheme == "basic" and (creds := await self.credentials()).password:
            return creds.basic_header()
        if self._scheme != "bearer":
            return None
        if (creds := await self.credentials()).registry_token:
            return f"Bearer {creds.registry_token}"  # sent as it is: no token service asked
        key = self._key(scopes)
        token = self._tokens.get(key)
        if token is None or token.expires_at <= time.monotonic():
            token = await self._fetch_locked(key, stale=token)
        return f"Bearer {token.value}"

    def claim_probe(self) -> bool:
        """True for the one request that goes first, without credentials, to learn the scheme.

        Its sender must call ``settle()`` however the request ends (a ``finally``), or every
        request waiting in ``header()`` waits forever.
        """
        if self._scheme is None and not self._settled.is_set() and not self._probing:
            self._probing = True
            return True
        return False

    def settle(self) -> None:
        """The probe got an answer (or failed): waiting requests go ahead with what is known."""
        self._probing = False
        self._settled.set()

    async def challenge(self, header: str | None, scopes: Iterable[str], sent: str | None) -> None:
        """Handle a 401: adopt the challenge's scheme and get a fresh token unless one arrived."""
        try:
            await self._adopt(header, scopes, sent)
        finally:
            self.settle()

    async def _adopt(self, header: str | None, scopes: Iterable[str], sent: str | None) -> None:
        challenges = parse_challenges(header or "")
        by_scheme = {c.scheme: c for c in challenges}
        creds = await self.credentials()
        if bearer := by_scheme.get("bearer"):
            if "realm" not in bearer.params:
                raise AuthError(f"{self._registry} sent a Bearer challenge without a realm")
            self._scheme, self._bearer = "bearer", bearer.params
            # The realm is known: the requests waiting on the probe fetch their own scopes'
            # tokens now, alongside the probe's, rather than after it.
            self.settle()
            if creds.registry_token:
                return  # sent again once; a second 401 is the registry's refusal
            wanted = set(scopes) | set(bearer.params.get("scope", "").split())
            key = self._key(s for s in wanted if s)
            cached = self._tokens.get(key)
            stale = cached if cached and sent == f"Bearer {cached.value}" else None
            if cached is None or stale is not None:
                await self._fetch_locked(key, stale=stale)
            # Remember the token under the caller's own scope set too, for its retry.
            self._tokens[self._key(scopes)] = self._tokens[key]
            return
        if "basic" in by_scheme:
            if not creds.password:
                if creds.registry_token:
                    lack = f"but {creds.source} holds only a registry token"
                elif creds.username:
                    lack = f"but {creds.source} has no password"
                else:
                    lack = f"and none was found ({creds.source})"
                raise AuthError(
                    f"{self._registry} requires a username and password, {lack}: "
                    f"{self.what_to_do()}",
                    status=401,
                )
            # Sent and still refused: the transport sends once more (a proxy may have dropped
            # the header, a token may have just expired), then reports the refusal.
            self._scheme = "basic"
            return
        raise AuthError(f"{self._registry} answered 401 without a usable challenge", status=401)

    def what_to_do(self) -> str:
        """Where credentials for this registry go, as a sentence's end."""
        host = self._registry.host
        return (
            f"run `docker login {host}` (docker config.json or its credential helper), or, "
            f"if {host} is where the backup goes, set DEST_USERNAME and DEST_PASSWORD"
        )

    async def refusal(
        self, response: aiohttp.ClientResponse, operation: str, sent: str | None
    ) -> AuthError:
        """The AuthError for a 401 or 403 that is the registry's last word on a request: it
        names the credentials sent and where they came from, or where none were found."""
        creds = await self.credentials()
        status = response.status
        said = await error_body(response)
        detail = f": {said.summary()}" if said.summary() else ""
        where = f"{operation} {response.url.path} on {self._registry}: HTTP {status}{detail}"
        if not creds.present:
            advice = f"no credentials for {self._registry.host} were found ({creds.source}); "
            advice += self.what_to_do()
        elif sent is None:
            advice = (
                f"it refused a request sent without credentials and asked for none (no 401 "
                f"challenge), so those from {creds.source} were not sent"
            )
        else:
            advice = (
                f"the credentials from {creds.source} were refused, or do not grant this "
                "access: check them there, and what they may do in this repository"
            )
        return AuthError(
            f"{where}; {advice}", status=status, operation=operation, errors=said.diagnostics()
        )

    async def _fetch_locked(self, key: str, stale: _Token | None) -> _Token:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._tokens.get(key)
            if (
                current is not None
                and current is not stale
                and current.expires_at > time.monotonic()
            ):
                return current
            token = await self._fetch(key.split(" ") if key else [])
            self._tokens[key] = token
            return token

    async def _fetch(self, scopes: list[str]) -> _Token:
        try:
            realm = yarl.URL(self._bearer["realm"])
        except ValueError:
            raise AuthError(f"{self._registry} named a token realm that is not a URL") from None
        creds = await self.credentials()
        operation = "POST token" if creds.identity_token else "GET token"
        registry_url = yarl.URL(self._registry.base_url)
        refusal = realm_refusal(registry_url, realm, self._allowed_realms)
        if refusal is not None and (creds.present or realm.scheme not in ("http", "https")):
            raise AuthError(
                f"not sending the credentials for {self._registry}: {refusal}",
                operation=operation,
            )
        if refusal is not None and (inward := internal_refusal(realm, registry_url)):
            raise AuthError(
                f"not asking {self._registry}'s token realm: {inward}", operation=operation
            )
        params: list[tuple[str, str]] = []
        if service := self._bearer.get("service"):
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        self.token_fetches += 1
        try:
            body = await self._ask(realm, params, scopes, creds, operation)
        except AuthError as exc:
            exc.operation = operation
            raise
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthError(
                f"token service of {self._registry} returned no token", operation=operation
            )
        if not (value.isascii() and value.isprintable()) or " " in value:
            raise AuthError(
                f"token service of {self._registry} returned a token that cannot be sent as "
                "a header (control characters or spaces): refusing it",
                operation=operation,
            )
        try:
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME_S)
        except (TypeError, ValueError):
            lifetime = _DEFAULT_TOKEN_LIFETIME_S  # the token spec's default, not a crash
        lifetime = max(lifetime - _TOKEN_SAFETY_MARGIN_S, 1.0)
        return _Token(value, time.monotonic() + lifetime)

    async def _ask(
        self,
        realm: yarl.URL,
        params: list[tuple[str, str]],
        scopes: list[str],
        creds: Credentials,
        operation: str,
    ) -> Any:
        """The token service's answer as JSON (None if it is not JSON); AuthError, keeping the
        status and the body's error codes, for any answer but a 200."""
        try:
            if creds.identity_token:
                form = dict(params[:1]) | {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "github-org-backup",
                    "scope": " ".join(scopes),
                }
                request = self._session.post(realm, data=form, allow_redirects=False)
            else:
                headers = {"Authorization": creds.basic_header()} if creds.password else {}
                request = self._session.get(
                    realm.update_query(params), headers=headers, allow_redirects=False
                )
            async with request as response:
                if response.status != 200:
                    raise await self._refusal(response, operation, creds)
                return await _token_body(response, str(self._registry))
        except aiohttp.ClientSSLError as exc:
            raise AuthError(f"token service of {self._registry}: {tls_failure(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            said = unreachable(exc, realm, self._registry.host, 1, own=False)
            raise AuthError(
                said or f"cannot reach the token service of {self._registry}: {type(exc).__name__}"
            ) from None

    async def _refusal(
        self, response: aiohttp.ClientResponse, operation: str, creds: Credentials
    ) -> AuthError:
        """The AuthError for a token answer other than 200, with the body's error entries."""
        status = response.status
        if 300 <= status < 400:
            message = (
                f"token service of {self._registry} answered HTTP {status} "
                f"(a redirect to {response.headers.get('Location', 'nowhere')!r:.100}): "
                "a token request never follows a redirect, so as not to carry the "
                "credentials elsewhere; name the final token URL in the registry's "
                "challenge"
            )
        elif status in (401, 403) and creds.present:
            message = (
                f"token service of {self._registry} refused the credentials from "
                f"{creds.source} (HTTP {status}): check the username and token there"
            )
        elif status in (401, 403):
            message = (
                f"token service of {self._registry} refused to serve an anonymous request "
                f"(HTTP {status}), and no credentials for {self._registry.host} were found "
                f"({creds.source}): {self.what_to_do()}"
            )
        else:
            message = f"token service of {self._registry} answered HTTP {status}"
        said = await error_body(response)
        return AuthError(message, status=status, operation=operation, errors=said.diagnostics())


async def _token_body(response: aiohttp.ClientResponse, registry: str) -> Any:
    """The token answer's JSON, read within ``MAX_TOKEN_BODY`` and the throughput floor."""
    what = f"the token answer from {response.url.host}"
    if (response.content_length or 0) > MAX_TOKEN_BODY:
        raise AuthError(f"{what} for {registry} is over {MAX_TOKEN_BODY} bytes: not a token")
    raw = bytearray()
    try:
        async for chunk in paced(Limits(), what, lambda: response.content.read(64 * 1024)):
            raw += chunk
            if len(raw) > MAX_TOKEN_BODY:
                raise AuthError(
                    f"{what} for {registry} is over {MAX_TOKEN_BODY} bytes: not a token"
                )
    except TooSlow as exc:
        raise AuthError(str(exc)) from None
    try:
        return jsonio.loads(raw)
    except ValueError:
        return None  # a login page or a proxy's answer: no token in it
