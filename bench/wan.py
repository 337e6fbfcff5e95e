"""WAN rounds: the same copy over a link with a round-trip time (and, for the link section,
a bandwidth), through latency-injecting proxies; each tool alternating in every round."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from bench.countingproxy import CountingProxy, Link
from bench.rig import Build, Measure, Setup, ours, push_parallel, skopeo
from bench.trace import trace
from tests.harness.images import OCI_LAYER, Blob, Corpus, Pusher
from tests.harness.registry import RegistryProcess, token_auth
from tests.harness.tokens import ISSUER

SKOPEO = "skopeo sync"


@dataclass
class Wan:
    """A source registry whose token realm, like the registry itself, sits behind the link."""

    registry: RegistryProcess
    proxy: CountingProxy  # in front of the source registry
    realm: CountingProxy  # in front of the token service

    def stop(self) -> None:
        self.proxy.stop()
        self.realm.stop()
        self.registry.stop()


def start_wan_source(setup: Setup, corpus: Corpus) -> Wan:
    realm = CountingProxy(setup.tokens.realm.rsplit("/", 1)[0]).start()
    path = setup.tokens.realm.rsplit("/", 1)[1]
    registry = RegistryProcess(
        setup.work / "wan-source",
        token_auth(f"http://{realm.host}/{path}", "bench", setup.tokens.cert_path, ISSUER),
    ).start()
    proxy = CountingProxy(registry.url, registry).start()
    pusher = Pusher(registry.url, lambda repo: "Bearer " + setup.tokens.admin_token([repo]))
    push_parallel(pusher, corpus.images)
    return Wan(registry, proxy, realm)


def tool_names(builds: list[Build]) -> list[str]:
    return [b.name for b in builds] + [SKOPEO]


def wan_round(
    setup: Setup,
    wan: Wan,
    corpus: Corpus,
    rtt_ms: float,
    concurrency: int,
    builds: list[Build],
    *,
    link: Link | None = None,
    phases: tuple[str, ...] = ("cold", "warm"),
    turn: int = 0,
) -> dict[str, Measure]:
    """Each tool cold (then warm) into a fresh registry, every request crossing the link.

    ``turn`` rotates the order of the tools, so that no tool always runs first.
    """
    results: dict[str, Measure] = {}
    for proxy in (wan.proxy, wan.realm):
        proxy.rtt_s = rtt_ms / 1000
        proxy.link = link
    tools: list[Build | None] = [*builds, None]  # None: skopeo
    turn %= len(tools)
    for build in tools[turn:] + tools[:turn]:
        destination = setup.new_destination()
        dst = CountingProxy(destination.url, destination, rtt_s=rtt_ms / 1000, link=link).start()
        src = wan.proxy
        src.registry = wan.registry
        run: Callable[[], Measure] = (
            skopeo(setup, corpus, src, dst)
            if build is None
            else ours(setup, corpus, src, dst, concurrency, build=build)
        )
        name = SKOPEO if build is None else build.name
        proxies = [src, wan.realm, dst]
        for phase in phases:
            for proxy in proxies:
                proxy.reset()
            realm_before = wan.realm.counts.snapshot()
            measure = run()
            measure.source.requests += wan.realm.counts.since(realm_before).requests
            measure.trace = trace(proxies, measure.started, rtt_ms / 1000)
            results[f"{name} {phase}"] = measure
        dst.stop()
        destination.stop()
    return results


# The link's own check: one blob down through the source proxy, one up through a destination's


@dataclass
class LinkCheck:
    size: int
    down_mbit: float  # the blob's bytes * 8 / (curl's time - one round trip)
    up_mbit: float


def _curl_seconds(*arguments: str) -> float:
    out = subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total}", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def link_check(
    setup: Setup, wan: Wan, link: Link, rtt_ms: float, size: int = 16 * 2**20
) -> LinkCheck:
    repository = "wan/link-check"
    blob = Blob(os.urandom(size), OCI_LAYER)
    Pusher(wan.registry.url, lambda repo: "Bearer " + setup.tokens.admin_token([repo])).push_blob(
        repository, blob
    )
    wan.proxy.rtt_s, wan.proxy.link = rtt_ms / 1000, link
    down = _curl_seconds(
        "-H",
        "Authorization: Bearer " + setup.tokens.admin_token([repository]),
        f"http://{wan.proxy.host}/v2/{repository}/blobs/{blob.digest}",
    )
    destination = setup.new_destination()
    dst = CountingProxy(destination.url, destination, rtt_s=rtt_ms / 1000, link=link).start()
    try:
        basic = "Basic " + base64.b64encode(f"backup:{setup.dest_password}".encode()).decode()
        headers = subprocess.run(
            [
                *("curl", "-sf", "-D", "-", "-o", "/dev/null", "-X", "POST"),
                *("-H", f"Authorization: {basic}"),
                f"http://{dst.host}/v2/{repository}/blobs/uploads/",
            ],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        location = re.search(r"(?im)^location: (\S+)", headers).group(1)  # type: ignore[union-attr]
        if not location.startswith("http"):
            location = f"http://{dst.host}{location}"
        file = setup.work / "link-check"
        file.write_bytes(blob.data)
        up = _curl_seconds(
            "-H",
            f"Authorization: {basic}",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",  # no 100-continue round trip
            "-T",
            str(file),
            f"{location}{'&' if '?' in location else '?'}digest={blob.digest}",
        )
        file.unlink()
    finally:
        dst.stop()
        destination.stop()
    rtt = rtt_ms / 1000
    return LinkCheck(size, size * 8 / (down - rtt) / 1e6, size * 8 / (up - rtt) / 1e6)
