#!/usr/bin/env python3
"""Benchmark github-org-backup against skopeo sync and a curl pipe, side by side in one run.

Starts a token-auth source registry and Basic-auth destination registries (the Debian
`docker-registry`), generates a corpus, measures, and writes bench/RESULTS.md. Not a test.

    python3 bench/run.py                      # the full default run
    python3 bench/run.py --runs 1 --skip-scale --big-blob-mib 256   # a quick look
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.countingproxy import CountingProxy, Counts  # noqa: E402
from tests.harness.bigblob import push_big_image  # noqa: E402
from tests.harness.images import (  # noqa: E402
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    Corpus,
    Image,
    Manifest,
    Pusher,
    generate_corpus,
)
from tests.harness.registry import RegistryProcess, htpasswd_auth, token_auth  # noqa: E402
from tests.harness.tokens import ISSUER, TokenService, read_only, read_write  # noqa: E402


@dataclass
class Measure:
    seconds: float
    source: Counts
    destination: Counts
    rss_mib: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # tool, source and destination


@dataclass
class Setup:
    work: Path
    tokens: TokenService
    source: RegistryProcess
    reader_password: str
    dest_password: str = field(default_factory=lambda: secrets.token_hex(12))
    destinations: list[RegistryProcess] = field(default_factory=list)

    def admin_pusher(self) -> Pusher:
        return Pusher(self.source.url, lambda repo: "Bearer " + self.tokens.admin_token([repo]))

    def new_destination(self) -> RegistryProcess:
        directory = self.work / f"dest-{len(self.destinations)}"
        auth = htpasswd_auth(directory, {"backup": self.dest_password})
        process = RegistryProcess(directory, auth).start()
        self.destinations.append(process)
        return process

    def docker_config(self, *hosts_and_secrets: tuple[str, str, str]) -> Path:
        directory = Path(tempfile.mkdtemp(dir=self.work))
        auths = {
            h: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
            for h, u, p in hosts_and_secrets
        }
        (directory / "config.json").write_text(json.dumps({"auths": auths}))
        return directory

    def stop(self) -> None:
        for process in [self.source, *self.destinations]:
            process.stop()
        self.tokens.stop()


def start(work: Path) -> Setup:
    tokens = TokenService("bench", work).start()
    password = tokens.add_user("reader", read_only)
    tokens.add_user("admin", read_write)
    source = RegistryProcess(
        work / "source", token_auth(tokens.realm, "bench", tokens.cert_path, ISSUER)
    ).start()
    return Setup(work, tokens, source, password)


def push_parallel(pusher: Pusher, images: list[Image], workers: int = 8) -> None:
    """Push repositories in parallel, each one's images in order: the registry does not
    cope with two uploads of the same blob into one repository at once."""
    by_repository: dict[str, list[Image]] = {}
    for image in images:
        by_repository.setdefault(image.repository, []).append(image)

    def push(group: list[Image]) -> None:
        for image in group:
            pusher.push_manifest(image.repository, image.tag, image.manifest)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(push, by_repository.values()))


def timed(
    command: list[str], env: dict[str, str], stdin: str | None = None
) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds) of a command, which must succeed.

    GNU time measures the command's own peak RSS: a child spawned straight from this (large)
    process would report the pages it shares with us before exec.
    """
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command],
        env=env,
        input=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    rss, user, system = result.stderr.strip().splitlines()[-1].split()
    return elapsed, int(rss) / 1024, float(user) + float(system)


def tool_env(docker_config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"DOCKER_CONFIG": str(docker_config), "PYTHONPATH": str(ROOT)}


# Corpus runs: cold then warm, each tool into its own fresh destination registry


def cpu_seconds(process: RegistryProcess) -> float:
    assert process.process is not None
    fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runner(
    setup: Setup,
    command: list[str],
    config: Path,
    stdin: str | None,
    src: CountingProxy | Direct,
    dst: CountingProxy | Direct,
) -> Callable[[], Measure]:
    def run() -> Measure:
        before_src, before_dst = src.counts.snapshot(), dst.counts.snapshot()
        registries = (setup.source, dst.registry)
        cpu_before = [cpu_seconds(r) for r in registries]
        seconds, rss, cpu = timed(command, tool_env(config), stdin)
        cpu_after = [cpu_seconds(r) for r in registries]
        return Measure(
            seconds,
            src.counts.since(before_src),
            dst.counts.since(before_dst),
            rss,
            {
                "tool": cpu,
                "source registry": cpu_after[0] - cpu_before[0],
                "destination registry": cpu_after[1] - cpu_before[1],
            },
        )

    return run


def ours(
    setup: Setup,
    corpus: Corpus,
    src: CountingProxy | Direct,
    dst: CountingProxy | Direct,
    concurrency: int,
    pinned: bool = False,
) -> Callable[[], Measure]:
    """github-org-backup copy; ``pinned`` gives it the source digests, as `registry` does."""
    specs = "\n".join(
        json.dumps(
            {
                "src": f"http://{src.host}/{i.repository}:{i.tag}"
                + (f"@{i.manifest.digest}" if pinned else ""),
                "dst": f"http://{dst.host}/gob/{i.repository}:{i.tag}",
            }
        )
        for i in corpus.images
    )
    config = setup.docker_config(
        (src.host, "reader", setup.reader_password), (dst.host, "backup", setup.dest_password)
    )
    command = [
        sys.executable,
        "-m",
        "backup",
        "copy",
        "--specs",
        "-",
        "--log-level",
        "warning",
        "--concurrency",
        str(concurrency),
    ]
    return runner(setup, command, config, specs, src, dst)


def skopeo(
    setup: Setup, corpus: Corpus, src: CountingProxy | Direct, dst: CountingProxy | Direct
) -> Callable[[], Measure]:
    images: dict[str, list[str]] = {}
    for image in corpus.images:
        images.setdefault(image.repository, []).append(image.tag)
    sync = setup.work / f"sync-{dst.port}.yml"
    sync.write_text(json.dumps({src.host: {"tls-verify": False, "images": images}}))
    config = setup.docker_config(
        (src.host, "reader", setup.reader_password), (dst.host, "backup", setup.dest_password)
    )
    auth = str(config / "config.json")
    command = [
        "skopeo",
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--all",
        "--preserve-digests",
        "--src-authfile",
        auth,
        "--dest-authfile",
        auth,
        "--dest-tls-verify=false",
        str(sync),
        f"{dst.host}/skopeo",
    ]
    return runner(setup, command, config, None, src, dst)


class Direct:
    """Stands where a CountingProxy would, without one: for timing runs."""

    def __init__(self, registry: RegistryProcess) -> None:
        self.registry = registry
        self.host = registry.host
        self.port = registry.port
        self.counts = Counts()


def corpus_round(setup: Setup, corpus: Corpus, concurrency: int) -> dict[str, Measure]:
    """Each tool, cold then warm, into a fresh registry: timed direct, counted through proxies.

    The proxies cost CPU on this 2-core machine, so wall times come from direct runs and
    requests and bytes from a second pair of runs through the proxies.
    """
    results: dict[str, Measure] = {}
    for name in ("github-org-backup", "skopeo sync"):
        for counted in (False, True):
            destination = setup.new_destination()
            src: CountingProxy | Direct = (
                CountingProxy(setup.source.url, setup.source).start()
                if counted
                else Direct(setup.source)
            )
            dst: CountingProxy | Direct = (
                CountingProxy(destination.url, destination).start()
                if counted
                else Direct(destination)
            )
            run = (
                ours(setup, corpus, src, dst, concurrency)
                if name == "github-org-backup"
                else skopeo(setup, corpus, src, dst)
            )
            phases = [("cold", run), ("warm", run)]
            if name == "github-org-backup":
                phases.append(
                    ("warm, digests known", ours(setup, corpus, src, dst, concurrency, pinned=True))
                )
            for phase, step in phases:
                measure = step()
                key = f"{name} {phase}"
                if counted:
                    timing = results[key]
                    results[key] = Measure(
                        timing.seconds,
                        measure.source,
                        measure.destination,
                        timing.rss_mib,
                        timing.cpu_s,
                    )
                else:
                    results[key] = measure
            for proxy in (src, dst):
                if isinstance(proxy, CountingProxy):
                    proxy.stop()
            destination.stop()
    return results


# One large blob: stream-through against a curl GET | curl PUT pipe


def curl_pipe(setup: Setup, repository: str, digest: str, destination: RegistryProcess) -> float:
    token = json.loads(
        subprocess.run(
            [
                "curl",
                "-sf",
                "-u",
                f"reader:{setup.reader_password}",
                f"{setup.tokens.realm}?service=bench&scope=repository:{repository}:pull",
            ],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    )["token"]
    basic = f"backup:{setup.dest_password}"
    headers = subprocess.run(
        [
            "curl",
            "-sf",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-u",
            basic,
            "-X",
            "POST",
            f"{destination.url}/v2/curl/big/blobs/uploads/",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    location = re.search(r"(?im)^location: (\S+)", headers).group(1)  # type: ignore[union-attr]
    started = time.perf_counter()
    subprocess.run(
        f'curl -sf -H "Authorization: Bearer {token}" '
        f'"{setup.source.url}/v2/{repository}/blobs/{digest}"'
        f' | curl -sf -u "{basic}" -T - -H "Content-Type: application/octet-stream" '
        f'"{location}&digest={digest}"',
        shell=True,
        check=True,
    )
    return time.perf_counter() - started


def big_blob_round(setup: Setup, repository: str, manifest: Manifest) -> dict[str, Measure]:
    layer = json.loads(manifest.raw)["layers"][0]["digest"]
    results = {}
    destination = setup.new_destination()
    config = setup.docker_config(
        (setup.source.host, "reader", setup.reader_password),
        (destination.host, "backup", setup.dest_password),
    )
    seconds, rss, _ = timed(
        [
            sys.executable,
            "-m",
            "backup",
            "copy",
            "--log-level",
            "warning",
            f"http://{setup.source.host}/{repository}:big",
            f"http://{destination.host}/gob/big:1",
        ],
        tool_env(config),
    )
    results["github-org-backup 1 blob"] = Measure(seconds, Counts(), Counts(), rss)
    results["curl pipe 1 blob"] = Measure(
        curl_pipe(setup, repository, layer, destination), Counts(), Counts()
    )
    destination.stop()
    return results


# Scale: many tiny images, manifest-bound


def tiny_corpus(repositories: int, tags: int, prefix: str) -> Corpus:
    corpus = Corpus()
    layer = Blob(b"tiny layer", OCI_LAYER)
    for r in range(repositories):
        for t in range(tags):
            config = Blob(
                json.dumps(
                    {
                        "architecture": "amd64",
                        "os": "linux",
                        "n": [r, t],
                        "rootfs": {"type": "layers", "diff_ids": []},
                    }
                ).encode(),
                OCI_CONFIG,
            )
            raw = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config.descriptor(),
                    "layers": [layer.descriptor()],
                }
            ).encode()
            corpus.images.append(
                Image(f"{prefix}/svc-{r}", f"1.{t}.0", Manifest(raw, OCI_MANIFEST, (config, layer)))
            )
    return corpus


def scale_round(setup: Setup, corpus: Corpus, concurrency: int, count: bool) -> Measure:
    """Timed direct; with ``count``, requests counted in a second run through the proxies."""
    destination = setup.new_destination()
    timing = ours(setup, corpus, Direct(setup.source), Direct(destination), concurrency)()
    destination.stop()
    if not count:
        return timing
    destination = setup.new_destination()
    src = CountingProxy(setup.source.url, setup.source).start()
    dst = CountingProxy(destination.url, destination).start()
    counted = ours(setup, corpus, src, dst, concurrency)()
    for proxy in (dst, src):
        proxy.stop()
    destination.stop()
    return Measure(
        timing.seconds, counted.source, counted.destination, timing.rss_mib, timing.cpu_s
    )


# Report


def version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    memory = next(
        line
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    ).split()[1]
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({model}), {int(memory) / 2**20:.1f} GiB memory"


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
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    for binary in ("docker-registry", "skopeo", "curl"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is missing: apt-get install -y docker-registry skopeo curl")

    work = Path(tempfile.mkdtemp(prefix="gob-bench-"))
    setup = start(work)
    try:
        platforms = ("linux/amd64", "linux/arm64", "linux/s390x")[: args.platforms]
        corpus = generate_corpus(
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
            f"pushing {len(corpus.images)} images, {corpus.unique_blob_bytes / 1e6:.1f} MB "
            "unique blob bytes",
            flush=True,
        )
        push_parallel(setup.admin_pusher(), corpus.images)
        rounds = []
        for n in range(args.runs):
            rounds.append(corpus_round(setup, corpus, args.concurrency))
            print(
                f"corpus run {n + 1}: "
                + ", ".join(f"{k} {v.seconds:.2f}s" for k, v in rounds[-1].items()),
                flush=True,
            )

        big_path = work / "big-layer"
        big = push_big_image(
            setup.admin_pusher(), "acme/big", "big", big_path, args.big_blob_mib * 2**20
        )
        big_rounds = []
        for n in range(args.runs):
            big_rounds.append(big_blob_round(setup, "acme/big", big))
            print(
                f"big blob run {n + 1}: "
                + ", ".join(
                    f"{k} {v.seconds:.2f}s rss {v.rss_mib:.0f} MiB"
                    for k, v in big_rounds[-1].items()
                ),
                flush=True,
            )

        scale_rounds: list[Measure] = []
        scale = None
        if not args.skip_scale:
            scale = tiny_corpus(args.scale_repos, args.scale_tags, "scale")
            print(f"pushing {len(scale.images)} tiny images", flush=True)
            push_parallel(setup.admin_pusher(), scale.images, workers=16)
            for n in range(args.runs):
                scale_rounds.append(scale_round(setup, scale, args.concurrency, count=n == 0))
                print(f"scale run {n + 1}: {scale_rounds[-1].seconds:.2f}s", flush=True)
        write_results(args, corpus, rounds, big_rounds, scale, scale_rounds)
    finally:
        setup.stop()
        shutil.rmtree(work, ignore_errors=True)


def write_results(
    args: argparse.Namespace,
    corpus: Corpus,
    rounds: list[dict[str, Measure]],
    big_rounds: list[dict[str, Measure]],
    scale: Corpus | None,
    scale_rounds: list[Measure],
) -> None:
    def med(
        key: str, pick: Callable[[Measure], float], source: list[dict[str, Measure]] = rounds
    ) -> float:
        return median([pick(r[key]) for r in source])

    unique = corpus.unique_blob_bytes
    tags = len(corpus.images)
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Versions: github-org-backup {version([sys.executable, '-m', 'backup', '--version'])}"
        f"; Python {platform.python_version()}; {version(['skopeo', '--version'])}; "
        f"{version(['docker-registry', '--version'])}; {version(['curl', '--version'])}",
        f"- Corpus: {args.repos} repositories × {args.tags} tags × {args.platforms} platforms "
        f"({tags} multi-arch images), {args.shared_layers} shared base layers of "
        f"{args.shared_layer_bytes} bytes per platform, one unique layer of "
        f"{args.unique_layer_bytes} bytes per platform image: **{unique:,} unique blob bytes**.",
        f"- Each figure is the median of {args.runs} runs; the tools alternate within each run. "
        "Source: token auth (ES256 JWT realm); destination: htpasswd Basic auth; every tool "
        "into a fresh destination registry. Wall times come from direct runs; requests and "
        "bytes from a second pair of runs through a streaming counting proxy in front of each "
        "registry (the proxies cost CPU on this machine, so they are kept out of the timing). "
        "Peak RSS is GNU time's `%M` for the tool's process.",
        "",
        "## Corpus: cold copy and warm rerun",
        "",
        "| run | wall s | source requests | source bytes read | destination requests | "
        "destination bytes written | peak RSS MiB | CPU s: tool / source reg. / dest. reg. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in rounds[0]:
        cpu = " / ".join(
            f"{med(key, lambda m, part=part: m.cpu_s[part]):.1f}"
            for part in ("tool", "source registry", "destination registry")
        )
        lines.append(
            f"| {key} | {med(key, lambda m: m.seconds):.2f} "
            f"| {med(key, lambda m: m.source.requests):.0f} "
            f"| {med(key, lambda m: m.source.bytes_out):,.0f} "
            f"| {med(key, lambda m: m.destination.requests):.0f} "
            f"| {med(key, lambda m: m.destination.bytes_in):,.0f} "
            f"| {med(key, lambda m: m.rss_mib):.0f} | {cpu} |"
        )
    cold_cpu = med("github-org-backup cold", lambda m: sum(m.cpu_s.values()))
    lines += [
        "",
        f"On the cold run the three processes used {cold_cpu:.1f} CPU seconds between them: on "
        f"{os.cpu_count()} cores no schedule can finish in under "
        f"{cold_cpu / (os.cpu_count() or 1):.2f} s, which is the practical floor here.",
    ]
    cold = med("skopeo sync cold", lambda m: m.seconds) / med(
        "github-org-backup cold", lambda m: m.seconds
    )
    warm = med("skopeo sync warm", lambda m: m.seconds) / med(
        "github-org-backup warm", lambda m: m.seconds
    )
    warm_known = med("skopeo sync warm", lambda m: m.seconds) / med(
        "github-org-backup warm, digests known", lambda m: m.seconds
    )
    warm_dest = med("github-org-backup warm", lambda m: m.destination.requests) / tags
    warm_bytes = med("github-org-backup warm", lambda m: m.destination.bytes_in)
    source_ratio = med("github-org-backup cold", lambda m: m.source.bytes_out) / unique
    big_ours = median([r["github-org-backup 1 blob"].seconds for r in big_rounds])
    big_curl = median([r["curl pipe 1 blob"].seconds for r in big_rounds])
    big_rss = max(r["github-org-backup 1 blob"].rss_mib for r in big_rounds)
    size = args.big_blob_mib * 2**20
    lines += [
        "",
        f"## One {args.big_blob_mib} MiB blob: stream-through against `curl GET | curl PUT`",
        "",
        "| tool | wall s | MiB/s | peak RSS MiB |",
        "| --- | --- | --- | --- |",
        f"| github-org-backup copy | {big_ours:.2f} | {size / 2**20 / big_ours:.0f} "
        f"| {big_rss:.0f} |",
        f"| curl GET \\| curl PUT | {big_curl:.2f} | {size / 2**20 / big_curl:.0f} | |",
    ]
    if scale is not None and scale_rounds:
        seconds = median([m.seconds for m in scale_rounds])
        counted = scale_rounds[0]  # requests are counted on the first run only
        requests = counted.source.requests + counted.destination.requests
        lines += [
            "",
            f"## Scale: {args.scale_repos} repositories × {args.scale_tags} tags of tiny images",
            "",
            "| images | wall s | images/s | requests/image (source + destination) |",
            "| --- | --- | --- | --- |",
            f"| {len(scale.images)} | {seconds:.1f} | {len(scale.images) / seconds:.0f} | "
            f"{requests / len(scale.images):.2f} |",
        ]

    def goal(name: str, met: bool, figure: str) -> str:
        return f"| {name} | {'met' if met else '**not met**'} | {figure} |"

    lines += [
        "",
        "## Goals",
        "",
        "| goal | status | figure |",
        "| --- | --- | --- |",
        goal("Cold: ≥ 4× faster than skopeo sync", cold >= 4, f"{cold:.1f}×"),
        goal("Warm: ≥ 10× faster than skopeo sync", warm >= 10, f"{warm:.1f}×"),
        goal(
            "Warm, digests known (as `registry` runs): ≥ 10× faster than skopeo sync",
            warm_known >= 10,
            f"{warm_known:.1f}×",
        ),
        goal("Warm: ≤ 1 destination request per tag", warm_dest <= 1, f"{warm_dest:.2f} per tag"),
        goal("Warm: 0 blob bytes", warm_bytes == 0, f"{warm_bytes:.0f} bytes written"),
        goal(
            f"{args.big_blob_mib} MiB stream-through ≥ 0.7× the curl pipe",
            big_curl / big_ours >= 0.7,
            f"{big_curl / big_ours:.2f}×",
        ),
        goal("Peak RSS ≤ 150 MiB", big_rss <= 150, f"{big_rss:.0f} MiB"),
        goal(
            "Source bytes on the cold run ≤ 1.05× unique blob bytes",
            source_ratio <= 1.05,
            f"{source_ratio:.3f}×",
        ),
        "",
        "## Reproduce",
        "",
        "```sh",
        "apt-get install -y docker-registry skopeo curl && pip install -e '.[test]'",
        "python3 bench/run.py" + ("" if args.runs == 3 else f" --runs {args.runs}"),
        "```",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
