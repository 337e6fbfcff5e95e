"""Read a registry's answers: status codes to the project's errors, error bodies, capped and
JSON bodies, ``Link`` and ``Range`` headers.

A body that breaks while it is read (the HTTP client's payload, connection and timeout
errors) becomes ``ConnectionBroken`` here, so nothing above this package sees an aiohttp
exception.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from github_org_backup.base import jsonio
from github_org_backup.base.limits import Limits, Pace, paced
from github_org_backup.base.retry import RETRYABLE_EXCEPTIONS, retry_after_in_body, retryable_status
from github_org_backup.errors import (
    AuthError,
    BackupError,
    BodyTooLarge,
    ConnectionBroken,
    InvalidManifest,
    NotFound,
    OverLimit,
    RegistryError,
    TooSlow,
    TransientError,
)
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry.errorbody import MAX_ERROR_BODY, ErrorBody, parse_error_body


async def expect(
    registry: Registry,
    resp: aiohttp.ClientResponse,
    ok: tuple[int, ...],
    what: str,
    *,
    operation: str,
) -> None:
    """Return if ``resp`` has one of the ``ok`` statuses; else raise the error its status means,
    keeping the status, the ``operation`` ("HEAD manifest") and the error body's entries."""
    if resp.status in ok:
        return
    said = await error_body(resp)
    detail = f": {said.summary()}" if said.summary() else ""
    where = f"{what} on {registry}"

    def error(kind: type[RegistryError], message: str) -> RegistryError:
        return kind(message, status=resp.status, operation=operation, errors=said.diagnostics())

    if resp.status in (401, 403):
        raise error(
            AuthError,
            f"{where}: HTTP {resp.status}{detail}; check the credentials for "
            f"{registry.host} (docker config.json) and that they grant this access",
        )
    if resp.status == 404:
        raise error(NotFound, f"{where}: not found{detail}")
    if resp.status == 413:
        raise error(
            BodyTooLarge,
            f"{where}: HTTP 413{detail}; the registry or a proxy in front of it limits "
            "request bodies: raise that limit (nginx: client_max_body_size)",
        )
    if retryable_status(resp.status) and not said.client_error:
        raise error(TransientError, f"{where}: HTTP {resp.status}{detail}; it persisted")
    raise error(RegistryError, f"{where}: HTTP {resp.status}{detail}")


def broken(exc: BaseException, what: str, operation: str = "") -> ConnectionBroken:
    """The project's error for an HTTP client error met while reading ``what``."""
    return ConnectionBroken(
        f"{what}: the connection broke ({type(exc).__name__})",
        cause=type(exc).__name__,
        operation=operation,
    )


async def chunks(
    resp: aiohttp.ClientResponse, size: int, what: str, limits: Limits, operation: str = ""
) -> AsyncIterator[bytes]:
    """The body as served, ``size`` bytes at a time, no slower than the throughput floor."""
    try:
        async for chunk in paced(limits, what, lambda: resp.content.read(size)):
            yield chunk
    except RETRYABLE_EXCEPTIONS as exc:
        raise broken(exc, what, operation) from None


async def read_capped(
    resp: aiohttp.ClientResponse,
    limit: int,
    what: str,
    limits: Limits,
    too_large: type[BackupError] = InvalidManifest,
    operation: str = "",
) -> bytes:
    """The whole body; ``too_large`` (InvalidManifest) once it passes ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise too_large(f"{what}: the body is {declared} bytes, over the {limit}-byte limit")
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks(resp, 64 * 1024, what, limits, operation):
        total += len(chunk)
        if total > limit:
            raise too_large(f"{what}: the body exceeds the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


async def read_json(
    resp: aiohttp.ClientResponse, what: str, limits: Limits, limit: int, operation: str = ""
) -> dict[str, Any]:
    """The body (at most ``limit`` bytes) as a JSON object, whatever its Content-Type.

    A 200 whose body is not one (an SSO or login proxy's HTML page) is the registry's
    failure to answer, not a bug: RegistryError, not retried.
    """
    raw = await read_capped(resp, limit, what, limits, OverLimit, operation)
    try:
        body = jsonio.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        kind = resp.headers.get("Content-Type", "no Content-Type").split(";")[0]
        raise RegistryError(
            f"{what}: {resp.url.host} answered HTTP {resp.status} with a body that is not a "
            f"JSON object ({kind}, {len(raw)} bytes): is a login page or a proxy in the way?",
            status=resp.status,
            operation=operation,
        )
    return body


def next_link(resp: aiohttp.ClientResponse) -> str | None:
    """The rel="next" target of a Link header, if any."""
    for part in resp.headers.get("Link", "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") and target.strip().startswith("<"):
            return target.strip()[1:-1]
    return None


def resumed_at(resp: aiohttp.ClientResponse, offset: int) -> bool:
    """True if a ranged GET really answered from ``offset`` (206 + matching Content-Range)."""
    if resp.status != 206:
        return False
    content_range = resp.headers.get("Content-Range", "")
    unit, _, rest = content_range.partition(" ")
    start = rest.partition("-")[0]
    return unit == "bytes" and start.isdigit() and int(start) == offset


async def retry_after_hint(resp: aiohttp.ClientResponse) -> float | None:
    """GHCR puts its 429 hint in the error message rather than in a header."""
    if resp.method == "HEAD":
        return None
    try:
        text = (await resp.content.read(64 * 1024)).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError):
        return None
    return retry_after_in_body(text)


# What each error answer said, read once: the retry decision and the message both need it.
_ERROR_BODIES: weakref.WeakKeyDictionary[aiohttp.ClientResponse, ErrorBody] = (
    weakref.WeakKeyDictionary()
)


async def error_body(resp: aiohttp.ClientResponse) -> ErrorBody:
    """The registry's error entries (or an HTML page's title), from the body's first 64 KiB,
    read for at most one throughput window."""
    if resp.method == "HEAD":
        return ErrorBody()
    cached = _ERROR_BODIES.get(resp)
    if cached is None:
        raw = bytearray()
        pace = Pace(Limits(), f"the error body from {resp.url.host}")
        try:
            while len(raw) < MAX_ERROR_BODY and (
                piece := await pace.read(
                    functools.partial(resp.content.read, MAX_ERROR_BODY - len(raw))
                )
            ):
                raw += piece
        except (TimeoutError, aiohttp.ClientError, ValueError, TooSlow):
            pass  # a body cut short says what it managed to
        cached = _ERROR_BODIES[resp] = parse_error_body(
            bytes(raw), resp.headers.get("Content-Type")
        )
    return cached
