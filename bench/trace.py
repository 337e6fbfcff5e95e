"""The round trips of one run over a WAN, from the exchanges its proxies logged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.countingproxy import CountingProxy, Exchange

# A request about a repository, source or destination side (ours copies under gob/, skopeo
# under skopeo/): the repository, what kind of object, and the rest of the path.
REQUEST = re.compile(
    r"^/v2/(?:gob/|skopeo/)?(?P<repository>.+)/(?P<kind>manifests|blobs)/(?P<rest>.+)$"
)


@dataclass
class Trace:
    startup_s: float | None  # from the process start to the first request any proxy received
    active_s: float | None  # from that first request to the last answer any proxy finished
    tag_round_trips: list[int] = field(default_factory=list)  # see `tag_round_trips`


def _auth_repositories(exchange: Exchange) -> set[str] | None:
    """The repositories an auth exchange stands for; None: all of them; empty: no auth."""
    if exchange.path.startswith("/v2/"):
        match = REQUEST.match(exchange.path)
        return {match["repository"]} if match and exchange.status == 401 else set()
    scopes = set(re.findall(r"repository:([^:\s&]+):", exchange.query))
    return scopes or None  # a token request: for its scopes, or for everything


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _without(auth: list[tuple[float, float]], t: float) -> float:
    """``t`` on a clock that stands still while auth is in flight."""
    return t - sum(min(b, t) - a for a, b in auth if a < t)


def _in_series(intervals: list[tuple[float, float]]) -> int:
    """The most of the intervals that lie one after another (none overlapping)."""
    count, free = 0, float("-inf")
    for start, end in sorted(intervals, key=lambda i: i[1]):
        if start >= free:
            count, free = count + 1, end
    return count


def tag_round_trips(proxies: Iterable[CountingProxy], rtt_s: float) -> list[int]:
    """Per tag, how many of its manifest exchanges happened one after another, after auth.

    A tag's exchanges are its manifest requests other than those answered 401; a manifest
    fetched by digest (a multi-arch index's children) counts for the tag last asked for in
    the same repository, which is right for a tool that copies one image after another, as
    skopeo does. Auth is paid once, not per tag, so the exchanges are placed on a clock that
    stands still while an auth exchange for the tag's repository is in flight (an answer 401,
    or a token request for a scope of it); an exchange that on that clock takes less than half
    the RTT was mostly hidden under auth and costs none. Counting exchanges in series rather
    than seconds keeps the registries' and the tool's own CPU time out, but independent
    exchanges can fall one after the other by chance: the median tag is the figure.
    """
    exchanges = sorted((e for p in proxies for e in p.log), key=lambda e: e.received)
    by_tag: dict[tuple[str, str], list[tuple[float, float]]] = {}
    latest: dict[str, tuple[str, str]] = {}
    auth: dict[str | None, list[tuple[float, float]]] = {}
    for exchange in exchanges:
        repositories = _auth_repositories(exchange)
        for repository in repositories if repositories is not None else [None]:
            auth.setdefault(repository, []).append((exchange.received, exchange.answered))
        match = REQUEST.match(exchange.path)
        if match is None or match["kind"] != "manifests" or exchange.status == 401:
            continue
        repository, reference = match["repository"], match["rest"]
        if ":" in reference:  # a digest
            if repository not in latest:
                continue
            key = latest[repository]
        else:
            key = latest[repository] = (repository, reference)
        by_tag.setdefault(key, []).append((exchange.received, exchange.answered))
    counts = []
    for (repository, _tag), intervals in by_tag.items():
        hold = _merged(auth.get(repository, []) + auth.get(None, []))
        shifted = [(_without(hold, a), _without(hold, b)) for a, b in intervals]
        counts.append(_in_series([(a, b) for a, b in shifted if b - a >= rtt_s / 2]))
    return counts


def trace(proxies: list[CountingProxy], started: float, rtt_s: float) -> Trace:
    firsts = [t for t in (p.first_request for p in proxies) if t is not None]
    lasts = [t for t in (p.last_answer for p in proxies) if t is not None]
    if not firsts or not lasts:
        return Trace(None, None)
    first = min(firsts)
    per_tag = tag_round_trips(proxies, rtt_s) if rtt_s else []
    return Trace(first - started, max(lasts) - first, per_tag)
