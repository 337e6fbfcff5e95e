"""One measured round of each benchmark section, and the facts of the machine."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.countingproxy import CountingProxy, Counts
from bench.rig import (
    Direct,
    Measure,
    Setup,
    ours,
    skopeo,
    timed,
    tool_env,
)
from tests.harness.images import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    Corpus,
    Image,
    Manifest,
)
from tests.harness.registry import RegistryProcess


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
    subprocess.run(  # noqa: S602 - a shell pipe of two curls is the baseline measured
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
            "github_org_backup",
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


# A warm rerun over 1,000 tags: start-up no longer decides the figure


def warm_many_round(setup: Setup, corpus: Corpus, concurrency: int) -> dict[str, Measure]:
    """Each tool copies cold into its own registry, then reruns warm: timed direct, counted
    through proxies in a second warm run."""
    results: dict[str, Measure] = {}
    for name in ("github-org-backup", "skopeo sync"):
        destination = setup.new_destination()
        direct_src, direct_dst = Direct(setup.source), Direct(destination)

        def tool(
            src: CountingProxy | Direct,
            dst: CountingProxy | Direct,
            pinned: bool = False,
            name: str = name,
        ) -> Callable[[], Measure]:
            if name == "github-org-backup":
                return ours(setup, corpus, src, dst, concurrency, pinned=pinned)
            return skopeo(setup, corpus, src, dst)

        tool(direct_src, direct_dst)()  # cold, not measured here
        phases = [("warm", False)] + (
            [("warm, digests known", True)] if name != "skopeo sync" else []
        )
        for phase, pinned in phases:
            timing = tool(direct_src, direct_dst, pinned)()
            src = CountingProxy(setup.source.url, setup.source).start()
            dst = CountingProxy(destination.url, destination).start()
            counted = tool(src, dst, pinned)()
            for proxy in (src, dst):
                proxy.stop()
            results[f"{name} {phase}"] = Measure(
                timing.seconds, counted.source, counted.destination, timing.rss_mib, timing.cpu_s
            )
        destination.stop()
    return results


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
