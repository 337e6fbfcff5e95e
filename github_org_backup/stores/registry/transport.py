"""Send one request to one registry: the layers between the protocol client and aiohttp.

Outermost first, as go-containerregistry stacks its transport wrappers:

- **retry** (``base.retry.retrying``): connection faults, 408, 429 and 5xx are sent again
  while the body can be replayed, within the policy's attempts and time budget, each send
  waiting its turn in the host's ``HostBudget``;
- **auth** (``auth.Authenticator``): the first request probes for the scheme, a 401
  challenge is answered once per request with a fresh token or Basic credentials;
- **redirects**: GET and HEAD follow at most five, never from https to http, and never carry
  the registry's credentials to another origin (a CDN's signed URL);
- **errors**: aiohttp's exceptions end here, as ``TransientError`` once retries are spent, or
  ``RegistryError`` (a TLS failure; ``http://`` to a TLS port), each in words from ``wire``
  that name the host and what to do about it.

The caller gets the response and releases it; ``answers`` maps its status to an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import structlog
import yarl

from github_org_backup.base.redact import redact_text, redact_url
from github_org_backup.base.retry import (
    RETRYABLE_EXCEPTIONS,
    HostBudget,
    RetryPolicy,
    parse_retry_after,
    retryable_status,
    retrying,
)
from github_org_backup.errors import (
    RegistryError,
    RetryLater,
    TLSFailed,
    TransientError,
    Unreachable,
    UnsafeRedirect,
)
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry.answers import error_body, retry_after_hint
from github_org_backup.stores.registry.auth import Authenticator
from github_org_backup.stores.registry.credentials import CredentialSource
from github_org_backup.stores.registry.origins import Trust, check_redirect
from github_org_backup.stores.registry.streambody import OneShotBody
from github_org_backup.stores.registry.wire import (
    plain_http_to_tls,
    tls_failure,
    unreachable,
)

log = structlog.get_logger("github_org_backup.stores.registry")

Body = bytes | OneShotBody | None

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


class _RetryStatus(RetryLater):
    """A retryable answer, released: send the request again."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}", retry_after)
        self.status = status


@dataclass
class _Exchange:
    """One request as the caller asked for it, across its attempts."""

    method: str
    url: yarl.URL
    operation: str  # what the caller asks, as errors name it: "HEAD manifest", "PUT blob"
    scopes: tuple[str, ...]
    headers: dict[str, str]
    data: Body
    deadline: float
    reauthenticated: bool = False
    idempotent: bool = True
    current: yarl.URL | None = None  # where the last send went (after redirects)

    @property
    def replayable(self) -> bool:
        return self.data is None or isinstance(self.data, bytes)


class Transport:
    """Sends requests to one registry over the run's shared aiohttp session."""

    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        credentials: CredentialSource,
        policy: RetryPolicy,
        max_request_rate: float | None = None,
        trust: Trust | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.budget = HostBudget(max_request_rate)
        self.origin = yarl.URL(registry.base_url).origin()
        self.requests = 0
        self._session = session
        self._trust = trust or Trust()
        self._auth = Authenticator(registry, credentials, session, self._trust.token_realms)

    async def request(
        self,
        method: str,
        url: yarl.URL,
        *,
        operation: str,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        data: Body = None,
        idempotent: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send with auth, retries and safe redirects. The caller releases the response.

        ``operation`` ("HEAD manifest", "PUT blob") is kept on any RegistryError raised on the
        way that does not name its own (a token request's is "GET token").

        ``idempotent=False`` (an upload's PATCH, which distribution appends whatever its
        Content-Range says) is not sent again after a timeout or a broken connection, which
        may have come after it was applied: only the caller can tell, from the session's
        status, where to go on. An error answer (5xx, 429) still is: nothing was applied.
        """
        exchange = _Exchange(
            method,
            url,
            operation,
            scopes,
            dict(headers or {}),
            data,
            time.monotonic() + self.policy.budget_s,
            idempotent=idempotent,
        )

        def may_retry(attempt: int) -> bool:
            return (
                exchange.replayable
                and attempt < self.policy.attempts
                and time.monotonic() < exchange.deadline
            )

        async def attempt(number: int) -> aiohttp.ClientResponse:
            try:
                resp = await self._authorized(exchange)
            except RETRYABLE_EXCEPTIONS as exc:
                if may_retry(number) and exchange.idempotent:
                    raise
                raise Unreachable(
                    self._failure(exchange, exc, number), operation=operation
                ) from None
            except RegistryError as exc:  # TLS, a redirect refused, a challenge, a token
                exc.operation = exc.operation or operation
                raise
            if resp.status == 400 and resp.url.scheme == "http" and await self._tls_port(resp):
                resp.release()
                raise RegistryError(
                    plain_http_to_tls(self.registry.host), status=400, operation=operation
                )
            if may_retry(number) and retryable_status(resp.status) and await _worth_retrying(resp):
                raise await self._retry_status(resp, method)
            if resp.status != 429:
                self.budget.answered()
            return resp

        def log_retry(number: int, exc: BaseException, delay: float) -> None:
            reason = (
                {"status": exc.status}
                if isinstance(exc, _RetryStatus)
                else {"error": type(exc).__name__}
            )
            log.warning(
                "request_retry",
                method=method,
                url=redact_url(url),
                **reason,
                attempt=number,
                delay_s=round(delay, 2),
            )

        return await retrying(
            self.policy,
            attempt,
            retry_on=(*RETRYABLE_EXCEPTIONS, _RetryStatus),
            on_retry=log_retry,
        )

    def _failure(self, exchange: _Exchange, exc: BaseException, attempts: int) -> str:
        """The message of a request that got no answer: ``wire``'s words for a connection
        that could not be made, else the exception as aiohttp names it."""
        current = exchange.current or exchange.url
        said = unreachable(
            exc,
            current,
            self.registry.host,
            attempts,
            own=current.origin() == self.origin,
            connect_timeout_s=self._session.timeout.sock_connect,
        )
        return said or (
            f"{exchange.method} {redact_url(exchange.url)} failed after {attempts} attempt(s): "
            f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
        )

    async def _tls_port(self, resp: aiohttp.ClientResponse) -> bool:
        """Whether a 400 to a plain-HTTP request came from a TLS port, which answers every
        such request with the same refusal. A HEAD's answer has no body to say so: a GET of
        the API root, without credentials, asks again."""
        if resp.method != "HEAD":
            return (await error_body(resp)).tls_port
        self.requests += 1
        try:
            async with self._session.get(
                resp.url.origin().with_path("/v2/"), allow_redirects=False
            ) as probe:
                return probe.status == 400 and (await error_body(probe)).tls_port
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _retry_status(self, resp: aiohttp.ClientResponse, method: str) -> _RetryStatus:
        """Release a retryable answer, slowing the host down as it asked."""
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if resp.status == 429:
            retry_after = retry_after or await retry_after_hint(resp)
            rate = self.budget.too_many_requests()
            log.warning(
                "request_rate_lowered",
                registry=str(self.registry),
                method=method,
                requests_per_s=round(rate, 2),
                retry_after_s=retry_after,
            )
        if retry_after is not None:
            self.budget.pause(min(retry_after, self.policy.max_retry_after_s))
        resp.release()
        return _RetryStatus(resp.status, retry_after)

    async def _authorized(self, exchange: _Exchange) -> aiohttp.ClientResponse:
        """Send once with the Authorization the scopes need, answering one 401 challenge per
        request (that send again does not count as an attempt)."""
        while True:
            await self.budget.acquire()
            same_origin = exchange.url.origin() == self.origin
            # The first request to a registry learns its auth scheme while the others wait:
            # however it ends (answer, refusal, error, cancellation), the waiters are released.
            probe = same_origin and self._auth.claim_probe()
            try:
                authorization = (
                    await self._auth.header(exchange.scopes) if same_origin and not probe else None
                )
                sent = dict(exchange.headers)
                if authorization:
                    sent["Authorization"] = authorization
                resp = await self._send(exchange, sent)
                if resp.url.origin() != self.origin:
                    return resp
                if resp.status == 403 or (resp.status == 401 and exchange.reauthenticated):
                    # The registry's last word: the error names what was sent, from where.
                    try:
                        raise await self._auth.refusal(resp, exchange.operation, authorization)
                    finally:
                        resp.release()
                if resp.status != 401:
                    return resp
                challenge = resp.headers.get("WWW-Authenticate")
                resp.release()
                log.debug(
                    "auth_challenge", registry=str(self.registry), renewing=bool(authorization)
                )
                await self._auth.challenge(challenge, exchange.scopes, sent=authorization)
                exchange.reauthenticated = True
                if not exchange.replayable:  # the body is spent: the transfer restarts
                    raise TransientError(
                        f"{self.registry} asked to re-authenticate mid-upload", status=401
                    )
            finally:
                if probe:
                    self._auth.settle()

    async def _send(self, exchange: _Exchange, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """One request, following safe redirects; aiohttp's errors other than connection faults
        (which the retry layer sees) become RegistryError here."""
        method, url = exchange.method, exchange.url
        try:
            return await self._follow(exchange, headers)
        except aiohttp.ClientSSLError as exc:  # not transient: retrying will not fix trust
            raise TLSFailed(tls_failure(exc, self._trust.ca_file)) from None
        except RETRYABLE_EXCEPTIONS:
            raise
        except aiohttp.ClientError as exc:
            raise RegistryError(
                f"{method} {redact_url(url)} failed: {type(exc).__name__}: "
                f"{redact_text(str(exc))[:200]}"
            ) from None

    async def _follow(self, exchange: _Exchange, headers: dict[str, str]) -> aiohttp.ClientResponse:
        method, url, data = exchange.method, exchange.url, exchange.data
        for _ in range(_MAX_REDIRECTS + 1):
            self.requests += 1
            exchange.current = url
            resp = await self._session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            )
            if data is not None and not 200 <= resp.status < 300:
                _never_reuse(resp)  # before any await: the pool must not get it back
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return resp
            location = resp.headers.get("Location", "")
            resp.release()
            target = _joined(url, location, "redirect")
            self._check_redirect(url, target)
            if target.origin() != url.origin():
                # Never carry the registry's credentials to another host (CDN, object store).
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise RegistryError(f"too many redirects from {redact_url(url)}")

    def location(self, resp: aiohttp.ClientResponse, operation: str) -> yarl.URL:
        """An upload session's ``Location``, resolved against the request and checked."""
        location = resp.headers.get("Location")
        try:
            if not location:
                raise RegistryError(
                    f"{self.registry} started an upload without a Location header",
                    status=resp.status,
                )
            target = _joined(resp.url, location, "upload Location")
            self._check_redirect(resp.url, target)
        except RegistryError as exc:
            exc.operation = operation
            raise
        return target

    def _check_redirect(self, source: yarl.URL, target: yarl.URL) -> None:
        check_redirect(source, target, self.origin, internal_ok=self._trust.internal_redirects)

    def same_origin(self, current: yarl.URL, link: str, what: str, operation: str) -> yarl.URL:
        """The next page of a paginated list, only on the registry's own origin."""
        try:
            following = _joined(current, link, f"next page of {what}")
        except UnsafeRedirect as exc:
            exc.operation = operation
            raise
        if following.origin() != self.origin:
            raise UnsafeRedirect(
                f"{self.registry} paginated {what} to another origin; refusing",
                operation=operation,
            )
        return following


def _joined(base: yarl.URL, reference: str, what: str) -> yarl.URL:
    """``reference`` resolved against ``base``; UnsafeRedirect if it is no URL at all."""
    try:
        joined = base.join(yarl.URL(reference, encoded=True))
        joined.origin()  # raises for a URL without a host
    except ValueError:
        raise UnsafeRedirect(
            f"refusing a {what} that is not a valid URL: {reference[:100]!r}"
        ) from None
    return joined


async def _worth_retrying(resp: aiohttp.ClientResponse) -> bool:
    """A retryable status, unless a 5xx body names a client error (the same request fails
    the same way: distribution sends some refusals as 500)."""
    if resp.status < 500:
        return True
    return not (await error_body(resp)).client_error


def _never_reuse(resp: aiohttp.ClientResponse) -> None:
    """Close this connection once the answer is read, instead of pooling it.

    An answer other than success to a request with a body may come before the body was all
    sent (a proxy refusing at the headers, a body stream that broke). A reused connection
    then carries the next request into the middle of the old body: the server reads it as
    body bytes, then fails to parse what follows (aiohttp: BadHttpMethod).
    """
    connection = resp.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.force_close()
