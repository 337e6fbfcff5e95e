#!/usr/bin/env python3
"""Benchmark github-org-backup against skopeo sync and a curl pipe, side by side in one run.

Starts a token-auth source registry and Basic-auth destination registries (the Debian
`docker-registry`), generates a corpus, measures, and writes bench/RESULTS.md. Not a test.

Sections: startup (the interpreter and the CLI starting), corpus (cold and warm copy), big
(one large blob), scale (10,000 tiny images), wan (the corpus over a latency-injecting proxy
at each --rtt, and the warm path's round trips), link (the WAN corpus over a link of
--bandwidth-mbit each way at --link-rtt), warm1000 (a warm rerun over 1,000 tags) and
discovery (a 2,000-package organisation on the GitHub stand-in). With --baseline REV the
startup, wan and link sections also run the build of REV, from a git worktree, in turn.

    python3 bench/run.py                      # the full default run
    python3 bench/run.py --runs 1 --skip-scale --big-blob-mib 256   # a quick look
    python3 bench/run.py --only wan --rtt 0 --rtt 50                # one section
    python3 bench/run.py --only startup --only wan --only link --baseline HEAD~1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.builds import add_baseline, build_version, remove_baseline, verify  # noqa: E402
from bench.countingproxy import Link  # noqa: E402
from bench.discovery import discovery_round  # noqa: E402
from bench.report import (  # noqa: E402
    SECTIONS,
    Results,
    write_results,
)
from bench.rig import (  # noqa: E402
    CURRENT,
    Build,
    Setup,
    push_parallel,
    start,
)
from bench.rounds import (  # noqa: E402
    big_blob_round,
    corpus_round,
    scale_round,
    tiny_corpus,
    warm_many_round,
)
from bench.startup import startup_round  # noqa: E402
from bench.wan import link_check, start_wan_source, wan_round  # noqa: E402
from tests.harness.bigblob import push_big_image  # noqa: E402
from tests.harness.images import Corpus, generate_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=8)
    parser.add_argument("--tags", type=int, default=12)
    parser.add_argument("--platforms", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--shared-layers", type=int, default=2)
    parser.add_argument("--shared-layer-bytes", type=int, default=4_000_000)
    parser.add_argument("--unique-layer-bytes", type=int, default=750_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--big-blob-mib", type=int, default=1024)
    parser.add_argument("--scale-repos", type=int, default=200)
    parser.add_argument("--scale-tags", type=int, default=50)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)"
    )
    parser.add_argument(
        "--rtt",
        action="append",
        type=float,
        metavar="MS",
        help="WAN round-trip times in ms (repeatable; default 0 and 50)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the build of this git revision (startup, wan and link sections)",
    )
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument(
        "--bandwidth-mbit",
        type=float,
        default=100.0,
        help="link section: the link's rate each way, in Mbit/s (default 100)",
    )
    parser.add_argument(
        "--link-unique-layer-bytes",
        type=int,
        default=1_300_000,
        help="link section: the unique layer of each platform image (default: about 110 MB "
        "in all, the size of the issue's lab)",
    )
    parser.add_argument(
        "--link-rtt", type=float, default=50.0, metavar="MS", help="link section: its RTT"
    )
    parser.add_argument("--wan-repos", type=int, default=3)
    parser.add_argument("--wan-tags", type=int, default=12)
    parser.add_argument("--warm-repos", type=int, default=20)
    parser.add_argument("--warm-tags", type=int, default=50)
    parser.add_argument("--discovery-packages", type=int, default=2000)
    parser.add_argument("--discovery-big", type=int, default=10)
    parser.add_argument("--discovery-versions", type=int, default=5000)
    parser.add_argument("--discovery-delay-ms", type=float, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    args.rtt = args.rtt or [0.0, 50.0]
    sections = set(args.only or SECTIONS) - ({"scale"} if args.skip_scale else set())
    for binary in ("docker-registry", "skopeo", "curl"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is missing: apt-get install -y docker-registry skopeo curl")

    work = Path(tempfile.mkdtemp(prefix="gob-bench-"))
    print(f"{CURRENT.name} runs from {verify(CURRENT)}", flush=True)
    builds = [CURRENT]
    try:
        if args.baseline:
            builds.append(add_baseline(work, args.baseline))
        measure(args, work, builds, sections)
    finally:
        for build in builds[1:]:
            remove_baseline(build)
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path, builds: list[Build], sections: set[str]) -> None:
    setup = start(work)
    results = Results(
        builds=[b.name for b in builds], versions={b.name: build_version(b) for b in builds}
    )
    platforms = ("linux/amd64", "linux/arm64", "linux/s390x")[: args.platforms]
    try:
        if "startup" in sections:
            results.startup = startup_round(builds, args.startup_runs)
            for (name, label), seconds in results.startup.seconds.items():
                print(f"startup {name or 'python'} {label}: {min(seconds) * 1000:.0f} ms min")
        if "corpus" in sections:
            corpus_section(args, setup, results, platforms)
        if "big" in sections:
            big_section(args, setup, results)
        if "scale" in sections:
            results.scale = tiny_corpus(args.scale_repos, args.scale_tags, "scale")
            print(f"pushing {len(results.scale.images)} tiny images", flush=True)
            push_parallel(setup.admin_pusher(), results.scale.images, workers=16)
            for n in range(args.runs):
                results.scale_rounds.append(
                    scale_round(setup, results.scale, args.concurrency, count=n == 0)
                )
                print(f"scale run {n + 1}: {results.scale_rounds[-1].seconds:.2f}s", flush=True)
        if "wan" in sections or "link" in sections:
            wan_section(args, setup, results, platforms, builds, sections)
        if "warm1000" in sections:
            results.warm_corpus = tiny_corpus(args.warm_repos, args.warm_tags, "warm")
            push_parallel(setup.admin_pusher(), results.warm_corpus.images, workers=16)
            for n in range(args.runs):
                results.warm_rounds.append(
                    warm_many_round(setup, results.warm_corpus, args.concurrency)
                )
                print(
                    f"warm {len(results.warm_corpus.images)} run {n + 1}: "
                    + ", ".join(
                        f"{k} {v.seconds:.2f}s" for k, v in results.warm_rounds[-1].items()
                    ),
                    flush=True,
                )
        if "discovery" in sections:
            results.discovery = discovery_round(
                work,
                packages=args.discovery_packages,
                big=args.discovery_big,
                big_versions=args.discovery_versions,
                delay_s=args.discovery_delay_ms / 1000,
            )
            for m in results.discovery:
                print(f"discovery {m.name}: {m.seconds:.1f}s, {m.requests} requests", flush=True)
        write_results(args, results)
    finally:
        setup.stop()


def corpus_section(
    args: argparse.Namespace, setup: Setup, results: Results, platforms: tuple[str, ...]
) -> None:
    results.corpus = generate_corpus(
        repositories=args.repos,
        tags=args.tags,
        platforms=platforms,
        shared_layers=args.shared_layers,
        shared_layer_size=args.shared_layer_bytes,
        unique_layer_size=args.unique_layer_bytes,
        prefix="acme",
        artifacts=False,
    )
    print(
        f"pushing {len(results.corpus.images)} images, "
        f"{results.corpus.unique_blob_bytes / 1e6:.1f} MB unique blob bytes",
        flush=True,
    )
    push_parallel(setup.admin_pusher(), results.corpus.images)
    for n in range(args.runs):
        results.rounds.append(corpus_round(setup, results.corpus, args.concurrency))
        print(
            f"corpus run {n + 1}: "
            + ", ".join(f"{k} {v.seconds:.2f}s" for k, v in results.rounds[-1].items()),
            flush=True,
        )


def big_section(args: argparse.Namespace, setup: Setup, results: Results) -> None:
    big_path = setup.work / "big-layer"
    big = push_big_image(
        setup.admin_pusher(), "acme/big", "big", big_path, args.big_blob_mib * 2**20
    )
    for n in range(args.runs):
        results.big_rounds.append(big_blob_round(setup, "acme/big", big))
        print(
            f"big blob run {n + 1}: "
            + ", ".join(
                f"{k} {v.seconds:.2f}s rss {v.rss_mib:.0f} MiB"
                for k, v in results.big_rounds[-1].items()
            ),
            flush=True,
        )


def _wan_corpus(
    args: argparse.Namespace, platforms: tuple[str, ...], prefix: str, unique_layer_bytes: int
) -> Corpus:
    """The WAN section's layout of images (--wan-repos x --wan-tags), with unique layers of
    the given size."""
    return generate_corpus(
        repositories=args.wan_repos,
        tags=args.wan_tags,
        platforms=platforms,
        shared_layers=args.shared_layers,
        shared_layer_size=args.shared_layer_bytes,
        unique_layer_size=unique_layer_bytes,
        prefix=prefix,
        artifacts=False,
    )


def wan_section(
    args: argparse.Namespace,
    setup: Setup,
    results: Results,
    platforms: tuple[str, ...],
    builds: list[Build],
    sections: set[str],
) -> None:
    results.wan_corpus = _wan_corpus(args, platforms, "wan", args.unique_layer_bytes)
    wan = start_wan_source(setup, results.wan_corpus)
    try:
        for n in range(args.runs if "wan" in sections else 0):
            for rtt in args.rtt:
                measured = wan_round(
                    setup, wan, results.wan_corpus, rtt, args.concurrency, builds, turn=n
                )
                results.wan.setdefault(rtt, []).append(measured)
                print(
                    f"wan rtt {rtt:g} ms run {n + 1}: "
                    + ", ".join(f"{k} {v.seconds:.2f}s" for k, v in measured.items()),
                    flush=True,
                )
        if "link" not in sections:
            return
        if args.link_unique_layer_bytes != args.unique_layer_bytes:
            wan.stop()
            results.link_corpus = _wan_corpus(args, platforms, "link", args.link_unique_layer_bytes)
            wan = start_wan_source(setup, results.link_corpus)
        link = Link(args.bandwidth_mbit * 1e6 / 8)
        results.link_check = link_check(setup, wan, link, args.link_rtt)
        print(
            f"link check: {results.link_check.down_mbit:.1f} Mbit/s down, "
            f"{results.link_check.up_mbit:.1f} Mbit/s up",
            flush=True,
        )
        for n in range(args.runs):
            measured = wan_round(
                setup,
                wan,
                results.link_corpus or results.wan_corpus,
                args.link_rtt,
                args.concurrency,
                builds,
                link=link,
                phases=("cold",),
                turn=n,
            )
            results.link.append(measured)
            print(
                f"link run {n + 1}: "
                + ", ".join(
                    f"{k} {v.seconds:.2f}s {v.destination.bytes_in / 1e6:.1f} MB"
                    for k, v in measured.items()
                ),
                flush=True,
            )
    finally:
        wan.stop()


if __name__ == "__main__":
    main()
