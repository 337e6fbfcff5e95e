"""The benchmark rig: registries, a token service, and the timed runs of each tool."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.countingproxy import CountingProxy, Counts
from bench.trace import Trace
from tests.harness.images import (
    Corpus,
    Image,
    Pusher,
)
from tests.harness.registry import RegistryProcess, htpasswd_auth, token_auth
from tests.harness.tokens import ISSUER, TokenService, read_only, read_write

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONCURRENCY = 16  # the tool's own default: unset, a copy may raise it


@dataclass
class Measure:
    seconds: float
    source: Counts
    destination: Counts
    rss_mib: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # tool, source and destination
    started: float = 0.0  # time.monotonic() just before the tool's process started
    trace: Trace | None = None  # the round trips of a run over a WAN


@dataclass(frozen=True)
class Build:
    """A checkout of github-org-backup, run with PYTHONPATH (and the working directory,
    which `python -m` puts first on sys.path) pointing at it."""

    name: str
    root: Path


CURRENT = Build("github-org-backup", ROOT)


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
    command: list[str], env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds) of a command, which must succeed.

    GNU time measures the command's own peak RSS: a child spawned straight from this (large)
    process would report the pages it shares with us before exec.
    """
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command],
        env=env,
        cwd=cwd,
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


def tool_env(docker_config: Path, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"DOCKER_CONFIG": str(docker_config), "PYTHONPATH": str(root)}


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
    root: Path = ROOT,
) -> Callable[[], Measure]:
    def run() -> Measure:
        before_src, before_dst = src.counts.snapshot(), dst.counts.snapshot()
        assert dst.registry is not None, "a measured destination names its registry"
        registries = (setup.source, dst.registry)
        cpu_before = [cpu_seconds(r) for r in registries]
        started = time.monotonic()
        seconds, rss, cpu = timed(command, tool_env(config, root), stdin, cwd=root)
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
            started,
        )

    return run


def ours(
    setup: Setup,
    corpus: Corpus,
    src: CountingProxy | Direct,
    dst: CountingProxy | Direct,
    concurrency: int,
    pinned: bool = False,
    build: Build = CURRENT,
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
        "github_org_backup",
        "copy",
        "--specs",
        "-",
        "--log-level",
        "warning",
    ]
    if concurrency != DEFAULT_CONCURRENCY:  # given, it is a fixed limit: as a user runs it
        command += ["--concurrency", str(concurrency)]
    return runner(setup, command, config, specs, src, dst, build.root)


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
