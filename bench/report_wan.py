"""The report's sections of what users feel: start-up, the WAN rounds and their round trips,
and the bandwidth-limited link; each with its rows of the Goals table."""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from typing import TYPE_CHECKING

from bench.figures import goal, med
from bench.rig import CURRENT, Measure
from bench.startup import BARE, COMMANDS
from bench.trace import Trace
from bench.wan import SKOPEO

if TYPE_CHECKING:
    from bench.report import Results

PHASES = ("cold", "warm")


def _trace(m: Measure) -> Trace:
    assert m.trace is not None and m.trace.active_s is not None, "a WAN run logs its exchanges"
    return m.trace


def _active(m: Measure) -> float:
    return _trace(m).active_s or 0.0


def _series(m: Measure, rtt_s: float) -> float:
    return _active(m) / rtt_s


def _tag_round_trips(m: Measure, pick: str) -> float:
    counts = _trace(m).tag_round_trips
    if not counts:
        return float("nan")
    return statistics.median(counts) if pick == "median" else max(counts)


def _against(figures: dict[str, str]) -> str:
    """The current build's figure, then the other tools' in brackets."""
    others = [f"{name}: {f}" for name, f in figures.items() if name != CURRENT.name]
    return figures[CURRENT.name] + (f" ({'; '.join(others)})" if others else "")


def startup_lines(args: argparse.Namespace, res: Results) -> tuple[list[str], list[str]]:
    st = res.startup
    assert st is not None
    bare = st.median("", BARE) * 1000
    header = "| command | " + " | ".join(f"{b} ms | over bare python" for b in res.builds) + " |"
    lines = [
        "## Start-up",
        "",
        f"Median of {st.runs} runs of each command, in turn (after one unmeasured round that "
        "compiles the bytecode), with the interpreter that runs the bench (`sys.executable`), "
        "PYTHONPATH and the working directory at the build's checkout. Bare `python -c pass`: "
        f"**{bare:.0f} ms**.",
        "",
        header,
        "| --- |" + " --- | --- |" * len(res.builds),
    ]
    for label in COMMANDS:
        cells = " | ".join(
            f"{st.median(b, label) * 1000:.0f} | {st.excess(b, label) * 1000:+.0f}"
            for b in res.builds
        )
        lines.append(f"| `python -m github_org_backup {label}` | {cells} |")
    lines.append("")
    goals = []
    for label, limit in (("--version", 150), ("copy --help", 200)):
        excess = {b: st.excess(b, label) * 1000 for b in res.builds}
        goals.append(
            goal(
                f"Start-up: `{label}` ≤ {limit} ms over bare python",
                excess[CURRENT.name] <= limit,
                _against({b: f"{e:.0f} ms" for b, e in excess.items()}),
            )
        )
    return lines, goals


def wan_lines(args: argparse.Namespace, res: Results) -> tuple[list[str], list[str]]:
    assert res.wan_corpus is not None
    images = len(res.wan_corpus.images)
    tools = [*res.builds, SKOPEO]
    lines = [
        f"## WAN: {images} multi-arch images over a link with a round-trip time",
        "",
        f"{args.wan_repos} repositories × {args.wan_tags} tags × {args.platforms} platforms, "
        "copied cold then rerun warm, each tool into a fresh registry, the tools in turn (the "
        "order turning by one each run). A "
        "proxy in front of the source registry, one in front of its token service and one in "
        "front of each destination delay every request by half the round-trip time each way; "
        "the link's bandwidth is not limited here (that is the link section). The same proxies "
        "count the requests. Connection set-up is not delayed (every tool keeps connections "
        "alive). Requests per image are source (token service included) + destination.",
        "",
        "| RTT ms | run | wall s | source requests/image | destination requests/image "
        "| requests/image |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    goals: list[str] = []
    for rtt, rounds in sorted(res.wan.items()):
        for key in (f"{t} {p}" for t in tools for p in PHASES):
            src = med(rounds, key, lambda m: m.source.requests) / images
            dst = med(rounds, key, lambda m: m.destination.requests) / images
            lines.append(
                f"| {rtt:g} | {key} | {med(rounds, key, lambda m: m.seconds):.2f} "
                f"| {src:.1f} | {dst:.1f} | {src + dst:.1f} |"
            )
        ratios = {
            (b, phase): med(rounds, f"{SKOPEO} {phase}", lambda m: m.seconds)
            / med(rounds, f"{b} {phase}", lambda m: m.seconds)
            for b in res.builds
            for phase in PHASES
        }
        for b in res.builds:
            lines.append(
                f"| {rtt:g} | **ratio** (skopeo / {b}) | cold {ratios[(b, 'cold')]:.1f}×, "
                f"warm {ratios[(b, 'warm')]:.1f}× | | | |"
            )
        if rtt == 50:
            cold_dst = {
                b: med(rounds, f"{b} cold", lambda m: m.destination.requests) / images
                for b in res.builds
            }
            goals += [
                goal(
                    "WAN 50 ms: cold ≥ 20× faster than skopeo sync",
                    ratios[(CURRENT.name, "cold")] >= 20,
                    _against({b: f"{ratios[(b, 'cold')]:.1f}×" for b in res.builds}),
                ),
                goal(
                    "WAN 50 ms: cold ≤ 13 destination requests per image",
                    cold_dst[CURRENT.name] <= 13,
                    _against({b: f"{d:.1f}" for b, d in cold_dst.items()}),
                ),
                goal(
                    "WAN 50 ms: warm ≥ 55× faster than skopeo sync",
                    ratios[(CURRENT.name, "warm")] >= 55,
                    _against({b: f"{ratios[(b, 'warm')]:.1f}×" for b in res.builds}),
                ),
            ]
    more, more_goals = warm_path_lines(res, tools, images)
    return [*lines, "", *more], goals + more_goals


def warm_path_lines(res: Results, tools: list[str], images: int) -> tuple[list[str], list[str]]:
    lines = [
        "### The warm path's round trips",
        "",
        "From the proxies' logs of each warm run: **start-up** is the time from the tool's "
        "start to the first request any proxy received; **round trips in series** is the time "
        "from that request to the last answer any proxy finished, over the RTT; **per tag** "
        "counts, for each tag, how many of its manifest exchanges (source and destination; "
        "answers 401 left out) came one after another once the tool was authorised: time while "
        "an auth exchange for the tag's repository was in flight (a 401, a token request) is "
        "not counted, and an exchange mostly hidden under auth (less than half an RTT outside "
        "it) costs none. Counting exchanges rather than seconds keeps the registries' CPU time "
        "out; independent requests can still fall one after the other by chance, so the "
        "figure is the median tag (the slowest is shown beside it). A manifest fetched by "
        "digest counts for the tag last asked for in its repository.",
        "",
        "| RTT ms | run | wall s | requests/tag | start-up ms | round trips in series "
        "| round trips per tag: median / slowest |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    goals: list[str] = []
    for rtt, rounds in sorted(res.wan.items()):
        rtt_s = rtt / 1000
        for tool in tools:
            key = f"{tool} warm"
            requests = med(rounds, key, lambda m: m.source.requests + m.destination.requests)
            startup = med(rounds, key, lambda m: _trace(m).startup_s or 0.0)
            if rtt_s:
                series = f"{med(rounds, key, partial(_series, rtt_s=rtt_s)):.1f}"
                per_tag = " / ".join(
                    f"{med(rounds, key, partial(_tag_round_trips, pick=p)):g}"
                    for p in ("median", "max")
                )
            else:
                series = per_tag = "—"
            lines.append(
                f"| {rtt:g} | {key} | {med(rounds, key, lambda m: m.seconds):.2f} "
                f"| {requests / images:.2f} | {startup * 1000:.0f} | {series} | {per_tag} |"
            )
        if rtt == 50:
            per_tag_rt = {
                b: med(rounds, f"{b} warm", partial(_tag_round_trips, pick="median"))
                for b in res.builds
            }
            goals.append(
                goal(
                    "WAN 50 ms: warm, one round trip per tag after auth (the median tag)",
                    per_tag_rt[CURRENT.name] <= 1,
                    _against({b: f"{r:g}" for b, r in per_tag_rt.items()}),
                )
            )
    lines.append("")
    return lines, goals


def link_lines(args: argparse.Namespace, res: Results) -> tuple[list[str], list[str]]:
    assert res.wan_corpus is not None and res.link_check is not None
    check, rounds = res.link_check, res.link
    rate = args.bandwidth_mbit * 1e6  # bit/s
    corpus = res.link_corpus or res.wan_corpus
    images = len(corpus.images)
    what = "The WAN section's" if res.link_corpus is None else "The WAN section's layout of"
    lines = [
        f"## Link: {args.bandwidth_mbit:g} Mbit/s each way at {args.link_rtt:g} ms RTT",
        "",
        f"{what} {images} images ({corpus.unique_blob_bytes / 1e6:.1f} MB of unique blob "
        f"bytes, unique layers of {args.link_unique_layer_bytes:,} bytes) copied cold, each "
        "tool into a fresh registry, the tools in turn. The link is modelled as the copying "
        "machine's own full-duplex access link: besides the delay of half the RTT each way, "
        "every answer body (from the source, its token service and the destination) crosses "
        "one shared budget of "
        f"{args.bandwidth_mbit:g} Mbit/s down, and every request body (the blobs written to the "
        f"destination) another of {args.bandwidth_mbit:g} Mbit/s up; a body waits, chunk by "
        "chunk, until its bytes would have crossed, and an idle link earns no credit. TCP's "
        "windows and slow start are not modelled. Check of the model: one "
        f"{check.size / 2**20:.0f} MiB blob through the source proxy with curl, "
        f"**{check.down_mbit:.1f} Mbit/s** down, and through a destination's proxy, "
        f"**{check.up_mbit:.1f} Mbit/s** up (its bytes × 8 / (curl's time − one RTT)).",
        "",
        "Utilisation is the bytes copied (destination bytes written) × 8 / the time / the link "
        "rate, over the wall time and over the active window (first request to last answer, "
        "so without the interpreter's start-up).",
        "",
        "| run | wall s | bytes copied | utilisation of wall | start-up ms | active s "
        "| utilisation of the active window |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    use: dict[str, tuple[float, float]] = {}
    for tool in [*res.builds, SKOPEO]:
        key = f"{tool} cold"
        wall = med(rounds, key, lambda m: m.seconds)
        copied = med(rounds, key, lambda m: m.destination.bytes_in)
        active = med(rounds, key, _active)
        startup = med(rounds, key, lambda m: _trace(m).startup_s or 0.0)
        use[tool] = (
            med(rounds, key, lambda m: m.destination.bytes_in * 8 / m.seconds / rate),
            med(rounds, key, lambda m: m.destination.bytes_in * 8 / _active(m) / rate),
        )
        lines.append(
            f"| {key} | {wall:.2f} | {copied:,.0f} | {use[tool][0]:.1%} | {startup * 1000:.0f} "
            f"| {active:.2f} | {use[tool][1]:.1%} |"
        )
    lines.append("")
    figures = {t: f"{u:.1%}, active window {a:.1%}" for t, (u, a) in use.items()}
    goals = [
        goal(
            f"Link {args.bandwidth_mbit:g} Mbit/s at {args.link_rtt:g} ms: ≥ 90 % utilisation "
            "(of wall)",
            use[CURRENT.name][0] >= 0.9,
            _against(figures),
        )
    ]
    return lines, goals
