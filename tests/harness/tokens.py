"""A GHCR-like token service: Basic user:token at the realm, ES256 JWTs with an x5c header."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.harness.servers import ThreadedHTTPServer

ISSUER = "test-token-issuer"

# Grants for a user: given repository name and requested actions, the actions allowed.
Grant = Callable[[str, set[str]], set[str]]


def read_only(_: str, wanted: set[str]) -> set[str]:
    return wanted & {"pull"}


def read_write(_: str, wanted: set[str]) -> set[str]:
    return wanted & {"pull", "push", "delete"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService(ThreadedHTTPServer):
    """Signs registry tokens. Start it, point a registry's token auth at ``realm``."""

    service: str
    directory: Path
    users: dict[str, tuple[str, Grant]] = field(default_factory=dict)
    # Like GHCR: a personal access token works as the password with any username.
    tokens: dict[str, Grant] = field(default_factory=dict)
    lifetime_s: int = 300
    requests: int = 0

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = self.directory / "token-cert.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def add_user(self, username: str, grant: Grant, password: str | None = None) -> str:
        password = password or secrets.token_urlsafe(24)
        self.users[username] = (password, grant)
        return password

    def issue(self, subject: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime_s,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def admin_token(self, repositories: list[str]) -> str:
        return self.issue(
            "admin",
            [{"type": "repository", "name": r, "actions": ["pull", "push"]} for r in repositories],
        )

    def _grant(
        self, authorization: str | None, scopes: list[str]
    ) -> tuple[str, list[dict[str, object]]] | None:
        subject, grant = "anonymous", None
        if authorization:
            if not authorization.startswith("Basic "):
                return None
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                return None
            known = self.users.get(user)
            if known is not None and secrets.compare_digest(known[0], password):
                subject, grant = user, known[1]
            elif password in self.tokens and user:
                subject, grant = user, self.tokens[password]
            else:
                return None
        access: list[dict[str, object]] = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            allowed = grant(name, set(actions.split(","))) if grant else set()
            if allowed:
                access.append({"type": "repository", "name": name, "actions": sorted(allowed)})
        return subject, access

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.requests += 1
                url = urlsplit(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                granted = service._grant(self.headers.get("Authorization"), query.get("scope", []))
                if granted is None:
                    self._json(
                        401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
                    )
                    return
                token = service.issue(*granted)
                self._json(
                    200, {"token": token, "access_token": token, "expires_in": service.lifetime_s}
                )

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
