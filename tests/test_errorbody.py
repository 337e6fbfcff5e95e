"""Error bodies read as the registry or proxy wrote them: every entry, or an HTML page's title."""

from __future__ import annotations

import json

import pytest

from github_org_backup.stores.registry.errorbody import parse_error_body

CASES = [
    (
        json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}),
        "application/json",
        "NAME_UNKNOWN: repository name not known",
        True,
    ),
    (
        json.dumps(
            {
                "errors": [
                    {"code": "UNKNOWN", "message": "unknown error", "detail": {}},
                    {"code": "DIGEST_INVALID", "message": "bad", "detail": {"a": 1}},
                    {"code": "UNKNOWN", "message": "x", "detail": "y" * 500},
                ]
            }
        ),
        "application/json",
        'UNKNOWN: unknown error; DIGEST_INVALID: bad ({"a":1}); UNKNOWN: x',
        True,
    ),
    (
        json.dumps({"errors": [{"code": "UNKNOWN", "message": "unknown error"}]}),
        None,
        "UNKNOWN: unknown error",
        False,
    ),
    (
        "<html><head><title>413 Request Entity Too Large</title></head><body>"
        "<center><h1>413 Request Entity Too Large</h1></center></body></html>",
        "text/html",
        "413 Request Entity Too Large",
        False,
    ),
    (
        "<!DOCTYPE html><html><title>Error</title><h1>Bad &amp; <b>broken</b></h1></html>",
        "application/octet-stream",
        "Error: Bad & broken",
        False,
    ),
    ("upstream connect error", "text/plain", "upstream connect error", False),
    ("\x00\x01binary", "application/octet-stream", "", False),
    ("", None, "", False),
    (json.dumps({"errors": "nope"}), "application/json", "", False),
    (
        json.dumps({"errors": [{"code": "DENIED", "message": "see https://x.example/a?sig=S"}]}),
        "application/json",
        "DENIED: see https://x.example/a?<redacted>",
        True,
    ),
]


@pytest.mark.parametrize(("body", "content_type", "summary", "client_error"), CASES)
def test_error_body_summary(
    body: str, content_type: str | None, summary: str, client_error: bool
) -> None:
    """Each entry once with its count, short details only, HTML by title, queries redacted."""
    said = parse_error_body(body.encode(), content_type)
    assert said.summary() == summary
    assert said.client_error is client_error
