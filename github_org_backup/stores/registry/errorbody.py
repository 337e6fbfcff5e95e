"""What a registry said in an error answer: distribution error entries, or an HTML page's title.

Pure code: the client hands in the body's first bytes and gets back a one-line summary for the
error message, the entries a RegistryError keeps, whether the body names a client error that
no retry can fix, and whether it is a TLS port's refusal of a plain-HTTP request.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from github_org_backup.base import jsonio
from github_org_backup.base.redact import redact_text
from github_org_backup.errors import RegistryDiagnostic
from github_org_backup.stores.registry.wire import says_tls_port

MAX_ERROR_BODY = 64 * 1024
_MAX_ENTRIES = 5
_MAX_MESSAGE = 200
_MAX_DETAIL = 160
_MAX_TEXT = 160

# Distribution error codes that describe the request, not the registry's health. Some
# registries send them with a 500 (distribution 2.8 answers a manifest with a refused foreign
# URL with 500 UNKNOWN followed by MANIFEST_BLOB_UNKNOWN): the same request fails the same way.
CLIENT_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DENIED",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "MANIFEST_UNVERIFIED",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "PAGINATION_NUMBER_INVALID",
        "RANGE_INVALID",
        "SIZE_INVALID",
        "TAG_INVALID",
        "UNAUTHORIZED",
        "UNSUPPORTED",
    }
)
# Refusals that distribution reports as UNKNOWN, recognisable only by their text.
_CLIENT_ERROR_TEXTS = ("invalid url on layer", "missing url on layer")

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ErrorEntry:
    code: str
    message: str
    detail: str  # compact JSON or text; empty when absent or too long to show


@dataclass(frozen=True)
class ErrorBody:
    entries: tuple[ErrorEntry, ...] = ()
    text: str = ""  # an HTML page's title/h1, or a short plain-text body
    # The refusal of a TLS port to a plain-HTTP request (Go's comes without a Content-Type).
    tls_port: bool = False

    @property
    def client_error(self) -> bool:
        """True if the registry names a fault in the request itself (never worth a retry)."""
        for entry in self.entries:
            if entry.code.upper() in CLIENT_ERROR_CODES:
                return True
            said = f"{entry.message} {entry.detail}".lower()
            if any(text in said for text in _CLIENT_ERROR_TEXTS):
                return True
        return False

    def diagnostics(self) -> tuple[RegistryDiagnostic, ...]:
        """Each entry's code and message, redacted, as a RegistryError keeps them."""
        return tuple(RegistryDiagnostic(e.code, redact_text(e.message)) for e in self.entries)

    def summary(self) -> str:
        """One line: every code with its message (and a short detail), or the page's title."""
        if self.entries:
            counts = Counter(_entry_text(e) for e in self.entries)  # keeps first-seen order
            shown = [f"{t} (×{n})" if n > 1 else t for t, n in counts.items()]
            if len(shown) > _MAX_ENTRIES:
                shown[_MAX_ENTRIES:] = [f"and {len(shown) - _MAX_ENTRIES} more"]
            return redact_text("; ".join(shown))
        return redact_text(self.text)


def parse_error_body(raw: bytes, content_type: str | None = None) -> ErrorBody:
    """Read a registry's error body: ``{"errors": [...]}``, an HTML page, or short text."""
    text = raw[:MAX_ERROR_BODY].decode("utf-8", errors="replace").strip()
    if not text:
        return ErrorBody()
    entries = _json_entries(text)
    if entries:
        return ErrorBody(entries=entries)
    if says_tls_port(text[:1024]):
        return ErrorBody(
            text=_html_summary(text) if "<" in text else _clip(text, _MAX_TEXT), tls_port=True
        )
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "text/html" or text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return ErrorBody(text=_html_summary(text))
    if kind.startswith("text/") and "\n" not in text[:_MAX_TEXT]:
        return ErrorBody(text=_clip(text, _MAX_TEXT))
    return ErrorBody()


def _json_entries(text: str) -> tuple[ErrorEntry, ...]:
    try:
        document: Any = jsonio.loads(text)
    except ValueError:
        return ()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ()
    found = []
    for item in errors:
        if not isinstance(item, dict):
            continue
        found.append(
            ErrorEntry(
                code=_clip(str(item.get("code") or "UNKNOWN"), 64),
                message=_clip(str(item.get("message") or ""), _MAX_MESSAGE),
                detail=_detail_text(item.get("detail")),
            )
        )
    return tuple(found)


def _detail_text(detail: Any) -> str:
    if detail in (None, "", {}, []):
        return ""
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return text if len(text) <= _MAX_DETAIL else ""


def _entry_text(entry: ErrorEntry) -> str:
    text = f"{entry.code}: {entry.message}" if entry.message else entry.code
    return f"{text} ({entry.detail})" if entry.detail else text


def _html_summary(text: str) -> str:
    parts: list[str] = []
    for pattern in (_TITLE, _H1):
        if match := pattern.search(text):
            plain = _clip(_SPACE.sub(" ", html.unescape(_TAG.sub("", match.group(1)))), _MAX_TEXT)
            if plain and plain not in parts:
                parts.append(plain)
    return ": ".join(parts) or "an HTML error page"


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
