"""JSON from the outside world, read with bounds.

Parsed, a JSON value costs Python about 100 bytes beyond its text, so a body within its byte
cap can still become hundreds of MiB: ``max_values`` refuses it before parsing, counting the
commas and the openings of containers (every value but the first of each container follows a
comma, so that is an upper bound, cheaply). And Python's decoder raises RecursionError on a
document nested some thousand levels deep (100,000 ``[`` fit in a 4 MiB manifest).
"""

from __future__ import annotations

import json
from typing import Any

from github_org_backup.errors import JSONTooLarge

Text = str | bytes | bytearray


def value_bound(data: Text) -> int:
    """At least as many as the JSON values ``data`` holds."""
    if isinstance(data, str):
        return data.count(",") + data.count("[") + data.count("{")
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def loads(data: Text, max_values: int | None = None) -> Any:
    """``json.loads``; JSONTooLarge (a ValueError) past ``max_values`` or too deep to parse."""
    if max_values is not None and (values := value_bound(data)) > max_values:
        raise JSONTooLarge(f"it holds up to {values} JSON values", values)
    try:
        return json.loads(data)
    except RecursionError:
        raise JSONTooLarge("the JSON is nested too deeply to read") from None
