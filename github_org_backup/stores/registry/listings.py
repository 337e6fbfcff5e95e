"""The registry's paginated lists: a repository's tags, a manifest's referrers, the catalog.

Each follows ``Link: <...>; rel="next"`` on the registry's own origin only, and stops, as the
registry's failure (``OverLimit``), at a list without end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import yarl

from github_org_backup.base.limits import (
    MAX_INDEX_CHILDREN,
    MAX_LISTING_BYTES,
    MAX_LISTING_ITEMS,
    MAX_LISTING_PAGE_BYTES,
    MAX_LISTING_PAGES,
    Limits,
)
from github_org_backup.errors import OverLimit
from github_org_backup.model.oci import MAX_MANIFEST_BYTES, OCI_INDEX, Descriptor, parse_manifest
from github_org_backup.stores.registry.answers import expect, next_link, read_capped, read_json
from github_org_backup.stores.registry.auth import repository_scope
from github_org_backup.stores.registry.transport import Transport

T = TypeVar("T")


def pull(name: str) -> tuple[str, ...]:
    return (repository_scope(name, "pull"),)


class Listings:
    """The lists of one registry; remembers, for the run, a registry without a referrers API."""

    def __init__(self, transport: Transport, limits: Limits) -> None:
        self._transport = transport
        self._limits = limits
        self._has_referrers_api = True

    async def list_tags(self, name: str) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination on the same origin only."""
        base = self._transport.registry.base_url
        url = yarl.URL(f"{base}/v2/{name}/tags/list?n=1000", encoded=True)
        what = f"list tags of {name}"

        async def tags(resp: aiohttp.ClientResponse) -> list[str]:
            body = await read_json(resp, what, self._limits, MAX_LISTING_PAGE_BYTES, "GET tags")
            tags = body.get("tags") or []
            return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

        pages, _ = await self._pages(
            url,
            pull(name),
            tags,
            what=what,
            operation="GET tags",
            listing=f"tags of {name}",
            absent=(404,),
        )
        return [tag for page in pages for tag in page]

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        """``GET /v2/<name>/referrers/<digest>`` (OCI 1.1); None where the API is missing."""
        if not self._has_referrers_api:
            return None
        what = f"list referrers of {name}@{digest}"
        registry = self._transport.registry
        listed = 0

        async def referrers(resp: aiohttp.ClientResponse) -> list[Descriptor]:
            nonlocal listed
            raw = await read_capped(
                resp, MAX_MANIFEST_BYTES, what, self._limits, operation="GET referrers"
            )
            found = list(parse_manifest(raw, OCI_INDEX).children())
            listed += len(found)
            if listed > MAX_INDEX_CHILDREN:
                raise OverLimit(
                    f"{what} on {registry}: more than {MAX_INDEX_CHILDREN} referrers; "
                    "refusing to read on",
                    operation="GET referrers",
                )
            return found

        pages, missing = await self._pages(
            yarl.URL(f"{registry.base_url}/v2/{name}/referrers/{digest}", encoded=True),
            pull(name),
            referrers,
            what=what,
            operation="GET referrers",
            listing="referrers",
            headers={"Accept": OCI_INDEX},
            absent=(404, 405, 400),  # GHCR and distribution 2.8 have no such API
        )
        if missing:
            self._has_referrers_api = False  # ask once per registry and run, not per image
            return None
        return [found for page in pages for found in page]

    async def list_repositories(self) -> list[str]:
        """Every repository in ``/v2/_catalog`` (paginated, same origin only)."""
        base = self._transport.registry.base_url
        url = yarl.URL(f"{base}/v2/_catalog?n=1000", encoded=True)
        what = "list the catalog"

        async def names(resp: aiohttp.ClientResponse) -> list[str]:
            body = await read_json(resp, what, self._limits, MAX_LISTING_PAGE_BYTES, "GET catalog")
            names = body.get("repositories") or []
            return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

        pages, _ = await self._pages(
            url,
            ("registry:catalog:*",),
            names,
            what=what,
            operation="GET catalog",
            listing="catalog",
        )
        return [found for page in pages for found in page]

    async def _pages(
        self,
        url: yarl.URL,
        scopes: tuple[str, ...],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        *,
        what: str,
        operation: str,
        listing: str,
        headers: dict[str, str] | None = None,
        absent: tuple[int, ...] = (),
    ) -> tuple[list[T], bool]:
        """Every page of a list, following ``Link: <...>; rel="next"`` on the same origin only.

        The pages read, and True if a page answered one of the ``absent`` statuses (the list
        ends there). At most ``MAX_LISTING_PAGES`` pages, ``MAX_LISTING_BYTES`` and
        ``MAX_LISTING_ITEMS`` in all: a list without end is the registry's failure (OverLimit).
        """
        transport = self._transport
        pages: list[T] = []
        following: yarl.URL | None = url
        read_bytes = items = 0
        while following is not None:
            if (
                len(pages) == MAX_LISTING_PAGES
                or read_bytes > MAX_LISTING_BYTES
                or items > MAX_LISTING_ITEMS
            ):
                raise OverLimit(
                    f"{what} on {transport.registry}: the list goes on past {len(pages)} pages, "
                    f"{read_bytes} bytes and {items} entries, more than any real listing; "
                    "refusing to read on",
                    operation=operation,
                )
            async with await transport.request(
                "GET", following, operation=operation, scopes=scopes, headers=headers
            ) as resp:
                if resp.status in absent:
                    return pages, True
                await expect(transport.registry, resp, (200,), what, operation=operation)
                page = await read(resp)
                pages.append(page)
                read_bytes += resp.content_length or resp.content.total_bytes
                items += len(page) if isinstance(page, list) else 0
                link = next_link(resp)
            following = (
                None if link is None else transport.same_origin(following, link, listing, operation)
            )
        return pages, False
