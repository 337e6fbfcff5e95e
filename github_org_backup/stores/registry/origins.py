"""Where a registry's answers may send us: the one place that decides it.

The source registry may be compromised, so the hosts it names (a Bearer realm, a redirect's
``Location``) are attacker input. Two rules:

- **Credentials** go to a token realm only on the registry's own host (any port: GHCR's realm
  is ``ghcr.io/token``, and a registry and its token service often differ only in port), on
  a host of the registry's registrable domain over https (``auth.docker.io`` for
  ``registry-1.docker.io``, ``gitlab.com`` for ``registry.gitlab.com``), or on a host the
  operator allowed (``--allow-token-realm``). Never over http unless the registry itself is.
- **Redirects** never lead into internal address space the registry is not in itself: a
  registry on the internet may not send us to loopback, link-local (cloud metadata at
  169.254.169.254), private or other reserved addresses. Hosts are judged by the address
  written in the URL; a hostname that resolves to an internal address is not caught here
  (an egress network policy is the place for that).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yarl

from github_org_backup.base.redact import redact_url
from github_org_backup.errors import UnsafeRedirect

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Trust:
    """What the operator allows beyond the rules: token realms on other hosts
    (``--allow-token-realm``), redirects into internal address space
    (``--allow-internal-redirects``), and the CA bundle trusted beside the system's
    (``--ca-file``, named by a TLS error; the session's SSL context loads it)."""

    token_realms: frozenset[str] = frozenset()
    internal_redirects: bool = False
    ca_file: Path | None = None


_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+", re.ASCII)


def _address(host: str) -> IPAddress | None:
    """The address a host names literally, in every spelling the resolver accepts: also
    ``127.1``, ``0x7f.0.0.1``, ``2130706433`` and IPv4-mapped IPv6."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not (_NUMERIC_HOST.fullmatch(host) and any(c.isdigit() for c in host)):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.cache
def _registrable_domain(host: str) -> str | None:
    """``gitlab.com`` for ``registry.gitlab.com``; None for an IP, a public suffix or a bare
    name (by the Public Suffix List, which ships with the package)."""
    if _address(host) is not None or "." not in host:
        return None
    domain = _public_suffix_list().privatesuffix(host.lower().rstrip("."))
    return domain if isinstance(domain, str) else None


@functools.cache
def _public_suffix_list() -> Any:
    """Loaded once, and only when a realm is on another host: its list takes ~40 ms."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def realm_refusal(
    registry_url: yarl.URL, realm: yarl.URL, allowed: Collection[str] = ()
) -> str | None:
    """Why credentials for ``registry_url`` must not go to the token ``realm``; None if they may.

    ``allowed`` holds hosts (``host`` or ``host:port``) the operator trusts as realms.
    """
    host = (realm.host or "").lower()
    port_host = f"{host}:{realm.port}" if realm.explicit_port else host
    if realm.scheme not in ("http", "https"):
        return f"its token realm {redact_url(realm)} is not an http(s) URL"
    if realm.scheme == "http" and registry_url.scheme != "http":
        return f"its token realm {redact_url(realm)} is plain http while the registry is https"
    if host in allowed or port_host in allowed:
        return None
    own = (registry_url.host or "").lower()
    if host == own:
        return None
    domain = _registrable_domain(own)
    if realm.scheme == "https" and domain is not None and _registrable_domain(host) == domain:
        return None
    return (
        f"its token realm is on another host, {port_host}, which shares neither the host nor "
        f"the registrable domain of {own}; if that token service is really the registry's, "
        f"allow it with --allow-token-realm {port_host}"
    )


def _internal(address: IPAddress) -> bool:
    return not address.is_global or address.is_multicast


def check_redirect(
    source: yarl.URL, target: yarl.URL, registry_url: yarl.URL, *, internal_ok: bool = False
) -> None:
    """Refuse a redirect to a non-http URL, from https down to http, or into internal address
    space that the registry (``registry_url``) is not in itself, unless ``internal_ok``
    (``--allow-internal-redirects``); link-local (cloud metadata) stays refused even then."""
    if target.scheme not in ("http", "https"):
        raise UnsafeRedirect(f"refusing redirect to a non-http URL from {redact_url(source)}")
    if source.scheme == "https" and target.scheme != "https":
        raise UnsafeRedirect(
            f"refusing https-to-http redirect from {redact_url(source)} to {redact_url(target)}"
        )
    refusal = _internal_refusal(target, registry_url, internal_ok)
    if refusal:
        raise UnsafeRedirect(f"refusing redirect from {redact_url(source)}: {refusal}")


def internal_refusal(target: yarl.URL, registry_url: yarl.URL) -> str | None:
    """Why a registry must not send the client to ``target`` (a token realm, even one that
    gets no credentials); None if it may."""
    return _internal_refusal(target, registry_url, internal_ok=False)


def _internal_refusal(target: yarl.URL, registry_url: yarl.URL, internal_ok: bool) -> str | None:
    host = (target.host or "").lower()
    own = (registry_url.host or "").lower()
    if host == own:
        return None
    address = _address(host)
    named_local = host == "localhost" or host.endswith(".localhost")
    if address is None and not named_local:
        return None
    own_address = _address(own)
    registry_internal = (
        own in ("localhost",)
        or own.endswith(".localhost")
        or (own_address is not None and _internal(own_address))
    )
    if named_local or (address is not None and _internal(address)):
        if (
            address is not None
            and address.is_link_local
            and not (own_address is not None and own_address.is_link_local)
        ):
            return f"{host} is a link-local address (where cloud metadata services answer)"
        if not registry_internal and not internal_ok:
            return (
                f"{host} is an internal address and the registry {own} is not on one: "
                "a registry on a public address has no reason to send us there (if its "
                "storage really is on a private network, pass --allow-internal-redirects)"
            )
    return None
