"""Keep secrets out of logs, errors and reports."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import yarl

_SECRET_KEYS = re.compile(r"(?i)(authorization|password|passwd|secret|token|credential|cookie)")
_SECRET_VALUES = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+")
_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"'#]*")


def redact_url(url: str | yarl.URL) -> str:
    """The URL without userinfo or query string: signed CDN URLs carry credentials there."""
    parsed = url if isinstance(url, yarl.URL) else yarl.URL(str(url), encoded=True)
    if not parsed.is_absolute():
        return parsed.path
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.raw_path}"


def redact_text(text: str) -> str:
    """Blank Authorization values and URL query strings inside free text."""
    text = _SECRET_VALUES.sub(lambda m: f"{m.group(1)} <redacted>", text)
    return _QUERY.sub(lambda m: f"{m.group(1)}?<redacted>", text)


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-named keys, scrub every string value."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = "<redacted>"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event
