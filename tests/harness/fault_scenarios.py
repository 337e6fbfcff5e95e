"""The fault scenarios tests/test_faults.py runs: each names its faults and what it expects.

docs/reliability.md's table has one row per scenario (RELIABILITY_TABLE=FILE writes it).
"""

from __future__ import annotations

from tests.harness.faultproxy import Rule
from tests.harness.scenarios import Scenario

BLOBS, MANIFESTS, UPLOADS = "/blobs/sha256", "/manifests/", "/blobs/uploads/"
MIXED = (
    Rule("429", probability=0.03),
    Rule("503", probability=0.03),
    Rule("reset", ("GET",), BLOBS, 0.05),
    Rule("truncate", ("GET",), MANIFESTS, 0.03),
    Rule("flip", ("GET",), BLOBS, 0.03),
    Rule("drop", probability=0.02),
)
MIXED_DST = (
    Rule("502", probability=0.03),
    Rule("reset-upload", ("PUT",), UPLOADS, 0.05),
    Rule("429-date", probability=0.02),
)

SCENARIOS = [
    Scenario(
        "429 + Retry-After (seconds) on source manifests",
        source=(Rule("429", ("GET", "HEAD"), MANIFESTS, 0.2),),
    ),
    Scenario(
        "429 + Retry-After (HTTP-date) on destination",
        destination=(Rule("429-date", probability=0.1),),
    ),
    Scenario("500 on source blob GETs", source=(Rule("500", ("GET",), BLOBS, 0.2),)),
    Scenario("502 on destination blob PUTs", destination=(Rule("502", ("PUT",), UPLOADS, 0.2),)),
    Scenario(
        "503 on destination manifest PUTs", destination=(Rule("503", ("PUT",), MANIFESTS, 0.2),)
    ),
    Scenario("504 on destination HEADs", destination=(Rule("504", ("HEAD",), "", 0.2),)),
    Scenario(
        "connection reset mid-body on source blobs", source=(Rule("reset", ("GET",), BLOBS, 0.2),)
    ),
    Scenario(
        "reset mid-body, source ignores Range",
        source=(Rule("reset", ("GET",), BLOBS, 0.2),),
        ignore_range=True,
    ),
    Scenario(
        "connection reset mid-upload (destination PUT)",
        destination=(Rule("reset-upload", ("PUT",), UPLOADS, 0.2),),
    ),
    Scenario("truncated blob bodies", source=(Rule("truncate", ("GET",), BLOBS, 0.2),)),
    Scenario("truncated manifest bodies", source=(Rule("truncate", ("GET",), MANIFESTS, 0.2),)),
    Scenario("flipped bytes in blobs", source=(Rule("flip", ("GET",), BLOBS, 0.2),)),
    Scenario("flipped bytes in manifests", source=(Rule("flip", ("GET",), MANIFESTS, 0.2),)),
    Scenario(
        "stalled source blob reads (> read timeout)",
        source=(Rule("stall", ("GET",), BLOBS, 0.1, limit=3),),
    ),
    Scenario(
        "stalled destination HEADs", destination=(Rule("stall", ("HEAD",), "", 0.1, limit=3),)
    ),
    Scenario(
        "connections dropped before any response",
        source=(Rule("drop", probability=0.1),),
        destination=(Rule("drop", probability=0.1),),
    ),
    Scenario("cross-host blob redirect (CDN)", source=(Rule("redirect", ("GET",), BLOBS),)),
    Scenario("expired signed CDN URL (403)", source=(Rule("redirect-expired", ("GET",), BLOBS),)),
    Scenario(
        "oversized manifest (5 MiB)",
        source=(Rule("oversize", ("GET",), MANIFESTS),),
        expect="clean-failure",
    ),
    Scenario(
        "lying Docker-Content-Digest on every manifest GET",
        source=(Rule("lying-digest", ("GET",), MANIFESTS),),
        expect="clean-failure",
    ),
    Scenario(
        "lying Docker-Content-Digest, intermittent",
        source=(Rule("lying-digest", ("GET",), MANIFESTS, 0.2),),
    ),
    Scenario(
        "lying Docker-Content-Digest on destination HEAD",
        destination=(Rule("lying-digest", ("HEAD",), MANIFESTS),),
    ),
    Scenario(
        "401 mid-run on source (token expiry)", source=(Rule("unauthorized", probability=0.2),)
    ),
    Scenario(
        "401 mid-run on destination (Basic)", destination=(Rule("unauthorized", probability=0.1),)
    ),
    Scenario(
        "chunked upload, PATCH reset",
        args=("--chunk-size", "96KiB"),
        destination=(Rule("reset-upload", ("PATCH",), "", 0.2),),
    ),
    Scenario(
        "chunked upload, PATCH 503",
        args=("--chunk-size", "96KiB"),
        destination=(Rule("503", ("PATCH",), "", 0.2),),
    ),
    Scenario(
        # distribution appends a PATCH body whatever its Content-Range says: sent again
        # blindly, the chunk would be stored twice and the blob fail its digest.
        "chunked upload, PATCH applied but answered after the read timeout",
        args=("--chunk-size", "96KiB"),
        # A session whose PATCH was applied unanswered cannot be resumed on distribution (its
        # Location's state is stale), so the blob starts again in a new one: a few such faults.
        destination=(Rule("applied-then-stall", ("PATCH",), "", 0.2, limit=4),),
    ),
    Scenario(
        "persistent 500 on one repository",
        expect="clean-failure",
        source=(Rule("500", ("GET", "HEAD"), "/app-0/"),),
    ),
    Scenario("mixed faults, seed 1", source=MIXED, destination=MIXED_DST, seed=1),
    Scenario("mixed faults, seed 2", source=MIXED, destination=MIXED_DST, seed=2),
]
