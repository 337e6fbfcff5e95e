"""The run's shared HTTP session and its registry clients, one per registry."""

from __future__ import annotations

import dataclasses
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from github_org_backup.base.limits import Limits
from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import UsageError
from github_org_backup.model.reference import Registry
from github_org_backup.stores.layout import LayoutStore
from github_org_backup.stores.protocol import Store
from github_org_backup.stores.registry import RegistryClient
from github_org_backup.stores.registry.credentials import CredentialStore
from github_org_backup.stores.registry.origins import Trust


@dataclass(frozen=True)
class HttpSettings:
    connections_per_host: int = 32
    connect_timeout_s: float = 30.0
    # Per socket read, not per request: a slow multi-GB layer that keeps moving never times out.
    read_timeout_s: float = 300.0
    ca_file: Path | None = None
    chunk_size: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # --max-request-rate: requests per second per registry host (host[:port]); no cap elsewhere.
    max_request_rates: Mapping[str, float] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    trust: Trust = field(default_factory=Trust)


def _ssl_context(ca_pem: str | None) -> ssl.SSLContext:
    """The run's TLS context: the system's CAs (about 20 ms to load), and --ca-file's."""
    context = ssl.create_default_context()
    if ca_pem is not None:
        context.load_verify_locations(cadata=ca_pem)
    return context


def _read_ca_file(ca_file: Path) -> str:
    """--ca-file's certificates, read once and checked on a context without the system's
    CAs: a bad file is refused before any request, and a file replaced during the run (a
    rotated secret) changes nothing."""
    try:
        pem = ca_file.read_text(encoding="ascii")
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
    except (OSError, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise UsageError(f"cannot load --ca-file {ca_file}: {exc}") from None
    return pem


class _Connector(aiohttp.TCPConnector):
    """The run's connection pool, whose TLS context is built at its first https connection,
    once: a run whose registries all speak plain http (or that writes a layout) builds none."""

    def __init__(self, ca_file: Path | None, **kwargs: Any) -> None:
        self._ca_pem = _read_ca_file(ca_file) if ca_file is not None else None
        super().__init__(**kwargs)
        self._tls: ssl.SSLContext | None = None

    # aiohttp's hook for the TLS context of each new connection (tests/test_startup.py and
    # tests/test_tls.py fail if a new aiohttp stops calling it).
    def _get_ssl_context(self, req: aiohttp.ClientRequest) -> ssl.SSLContext | None:
        if not req.is_ssl() or req.ssl is not True:  # plain http, or a request's own choice
            return super()._get_ssl_context(req)
        if self._tls is None:
            self._tls = _ssl_context(self._ca_pem)
        return self._tls


class Clients:
    """Hands out one store per registry or layout; registry clients share one connection pool."""

    def __init__(
        self, session: aiohttp.ClientSession, credentials: CredentialStore, settings: HttpSettings
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._settings = settings
        self._stores: dict[Registry, Store] = {}

    def __call__(self, registry: Registry) -> Store:
        store = self._stores.get(registry)
        if store is None:
            if registry.layout:
                store = LayoutStore(registry)
            else:
                store = RegistryClient(
                    registry,
                    self._session,
                    functools.partial(self._credentials.lookup, registry.host),
                    self._settings.retry,
                    self._settings.chunk_size,
                    self._settings.max_request_rates.get(registry.host),
                    self._settings.limits,
                    dataclasses.replace(self._settings.trust, ca_file=self._settings.ca_file),
                )
            self._stores[registry] = store
        return store

    @property
    def limits(self) -> Limits:
        return self._settings.limits

    @property
    def connections_per_host(self) -> int:
        return self._settings.connections_per_host

    @property
    def requests(self) -> dict[str, int]:
        return {
            str(r): s.requests for r, s in self._stores.items() if isinstance(s, RegistryClient)
        }


@asynccontextmanager
async def open_clients(
    credentials: CredentialStore, settings: HttpSettings
) -> AsyncIterator[Clients]:
    connector = _Connector(settings.ca_file, limit=0, limit_per_host=settings.connections_per_host)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,  # hash blobs exactly as served
        requote_redirect_url=False,  # signed redirect URLs break if re-quoted
        read_bufsize=2**20,
        headers={"User-Agent": "github-org-backup"},
    ) as session:
        yield Clients(session, credentials, settings)
