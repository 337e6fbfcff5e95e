"""The run's shared HTTP session and its registry clients, one per registry."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from backup.auth import CredentialStore
from backup.errors import UsageError
from backup.reference import Registry
from backup.registry import RegistryClient
from backup.retry import RetryPolicy


@dataclass(frozen=True)
class HttpSettings:
    connections_per_host: int = 32
    connect_timeout_s: float = 30.0
    # Per socket read, not per request: a slow multi-GB layer that keeps moving never times out.
    read_timeout_s: float = 300.0
    ca_file: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --ca-file {ca_file}: {exc}") from None
    return context


class Clients:
    """Hands out one RegistryClient per registry, all sharing one connection pool."""

    def __init__(
        self, session: aiohttp.ClientSession, credentials: CredentialStore, settings: HttpSettings
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._settings = settings
        self._clients: dict[Registry, RegistryClient] = {}

    def __call__(self, registry: Registry) -> RegistryClient:
        client = self._clients.get(registry)
        if client is None:
            client = RegistryClient(
                registry,
                self._session,
                self._credentials.lookup(registry.host),
                self._settings.retry,
            )
            self._clients[registry] = client
        return client

    @property
    def requests(self) -> dict[str, int]:
        return {str(r): c.requests for r, c in self._clients.items()}


@asynccontextmanager
async def open_clients(
    credentials: CredentialStore, settings: HttpSettings
) -> AsyncIterator[Clients]:
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=settings.connections_per_host,
        ssl=_ssl_context(settings.ca_file),
    )
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
