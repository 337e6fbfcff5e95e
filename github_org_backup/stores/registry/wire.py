"""What failed on the way to a registry, in one line that names the host and says what to do.

The transport hands in aiohttp's exception (or a plain-HTTP answer from a TLS port) and gets
back the message of the error it raises: connection refused, a failed DNS lookup, a connect
timeout, an untrusted or mismatched certificate, ``http://`` to a TLS port, TLS to a plain-HTTP
port. Nothing here carries credentials or a URL's query: only hosts, ports and OpenSSL's reason.
"""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path

import aiohttp
import yarl

from github_org_backup.base.redact import redact_text

# What distribution (Go's net/http) and nginx answer a plain-HTTP request on their TLS port.
_TLS_PORT_ANSWERS = (
    "client sent an http request to an https server",
    "the plain http request was sent to https port",
)
# OpenSSL's reasons when the server answers the ClientHello in plain HTTP: 1.1 and 3.0 say
# "wrong version number", later versions "record layer failure" or "packet length too long".
_PLAIN_ANSWERS = (
    "wrong_version_number",
    "wrong version number",
    "record layer failure",
    "record_layer_failure",
    "packet length too long",
    "unknown protocol",
)
_EXPIRED = frozenset({9, 10})  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
_NAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, ..._IP_ADDRESS_MISMATCH


def endpoint(host: str | None, port: int | None, scheme: str = "https") -> str:
    """``host[:port]`` as a reference writes it: the port left out when it is the default."""
    name = host or "?"
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 literal
    default = 80 if scheme == "http" else 443
    return name if port in (None, default) else f"{name}:{port}"


def url_endpoint(url: yarl.URL) -> str:
    return endpoint(url.host, url.explicit_port, url.scheme)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def says_tls_port(text: str) -> bool:
    """True if an answer's body is a server's refusal of plain HTTP on its TLS port."""
    said = text.lower()
    return any(answer in said for answer in _TLS_PORT_ANSWERS)


def plain_http_to_tls(host: str) -> str:
    return f"{host} speaks TLS: write the reference without http:// (https is the default)"


def _reason(exc: BaseException) -> str:
    """OpenSSL's or the resolver's own words, without aiohttp's wrapping."""
    inner = getattr(exc, "os_error", None) or exc
    if isinstance(inner, ssl.SSLCertVerificationError) and inner.verify_message:
        text = str(inner.verify_message)
    elif isinstance(inner, OSError) and inner.strerror:
        text = str(inner.strerror)
    else:
        text = str(inner)
    return redact_text(" ".join(text.split()).rstrip("."))[:200]


def tls_failure(exc: aiohttp.ClientSSLError, ca_file: Path | None = None) -> str:
    """What a failed TLS handshake with ``exc``'s host means, and what to do about it."""
    host = endpoint(exc.host, exc.port)
    inner = getattr(exc, "os_error", None) or exc
    raw = str(inner).lower()
    if any(answer in raw for answer in _PLAIN_ANSWERS):
        return (
            f"{host} answered TLS with plain HTTP: prefix the reference with http:// for a "
            f"plain-HTTP registry (http://{host}/...)"
        )
    reason = _reason(exc)
    if not isinstance(inner, ssl.SSLCertVerificationError):
        return (
            f"TLS handshake with {host} failed ({reason}): check that {host} is the "
            "registry's TLS port and that it accepts TLS 1.2 or later"
        )
    code = inner.verify_code
    if code in _NAME_MISMATCH:
        return (
            f"TLS certificate of {host} is not valid for {exc.host} ({reason}): write the "
            "reference with a name the certificate covers, or give the registry a certificate "
            f"for {exc.host}"
        )
    if code in _EXPIRED:
        return (
            f"TLS certificate of {host} is out of its validity period ({reason}): renew the "
            "registry's certificate, or check this machine's clock"
        )
    if ca_file is not None:
        fix = f"the CA bundle --ca-file {ca_file} does not hold the CA that signed it"
    else:
        fix = "give the CA that signed it with --ca-file PEM (trusted beside the system's CAs)"
    return f"TLS certificate of {host} not trusted ({reason}): {fix}"


def unreachable(
    exc: BaseException,
    url: yarl.URL,
    registry: str,
    attempts: int,
    *,
    own: bool = True,
    connect_timeout_s: float | None = None,
) -> str | None:
    """The message for a connection that could not be made to ``url``, a URL of the registry
    ``registry`` (host[:port]) if ``own``, else where it sent the request; None if ``exc`` is
    no failure to connect."""
    where = f"registry {registry}" if own else f"{url_endpoint(url)} (for registry {registry})"
    tried = _attempts(attempts)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        after = f" after {connect_timeout_s:g} s" if connect_timeout_s else ""
        return (
            f"cannot reach {where}: connect timed out{after} ({tried}); check the host and "
            "port, and that no firewall drops the connection (--connect-timeout sets the wait)"
        )
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return None
    inner = exc.os_error
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(inner, socket.gaierror):
        return (
            f"cannot reach {where}: DNS lookup of {exc.host} failed ({_reason(exc)}; {tried}); "
            "check the host name in the reference, and this machine's DNS"
        )
    if inner.errno == errno.ECONNREFUSED or "refused" in str(inner).lower():
        return (
            f"cannot reach {where}: connection refused ({tried}); is the registry running, "
            "and is the port right?"
        )
    if inner.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return (
            f"cannot reach {where}: {_reason(exc).lower()} ({tried}); check the host, and "
            "the network route to it"
        )
    return f"cannot reach {where}: {_reason(exc)} ({tried})"
