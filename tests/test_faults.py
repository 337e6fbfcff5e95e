"""Fault injection between the CLI and real registries: every fault is survived or fails cleanly.

Set FAULT_SOAK=N to repeat the randomised scenarios with N more seeds, and RELIABILITY_TABLE=FILE
to write the results as a Markdown table.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry
from tests.harness.clirun import ROOT, cli_env
from tests.harness.fault_scenarios import MIXED, MIXED_DST, SCENARIOS
from tests.harness.faultproxy import CHUNK, FaultProxy
from tests.harness.images import Corpus, generate_corpus
from tests.harness.scenarios import (
    Outcome,
    Scenario,
    find_leaks,
    judge,
    run_scenario,
    specs_through,
)

pytestmark = pytest.mark.integration

SOAK = int(os.environ.get("FAULT_SOAK", "0"))
SCENARIOS += [
    Scenario(f"mixed faults, soak seed {s}", source=MIXED, destination=MIXED_DST, seed=s)
    for s in range(100, 100 + SOAK)
]

STOP_CEILING_S = 15  # SIGTERM to exit with --grace-period 1, see the SIGTERM test

OUTCOMES: list[Outcome] = []
EXTRA_ROWS: list[str] = []


@pytest.fixture(scope="module")
def corpus(source: LiveRegistry) -> Corpus:
    corpus = generate_corpus(
        repositories=3,
        tags=2,
        prefix=f"faults{random.randrange(10**6)}",
        shared_layer_size=300_000,
        unique_layer_size=400_000,
    )
    source.pusher().push(corpus)
    return corpus


@pytest.fixture(scope="module")
def proxies(
    source: LiveRegistry, destination: LiveRegistry
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    src, dst = FaultProxy(source.url).start(), FaultProxy(destination.url).start()
    yield src, dst
    src.stop()
    dst.stop()
    if OUTCOMES and (path := os.environ.get("RELIABILITY_TABLE")):
        write_table(Path(path))


@pytest.fixture(scope="module")
def proxy_docker_config(
    tmp_path_factory: pytest.TempPathFactory,
    source: LiveRegistry,
    destination: LiveRegistry,
    proxies: tuple[FaultProxy, FaultProxy],
) -> Path:
    import base64
    import json

    src, dst = proxies
    directory = tmp_path_factory.mktemp("proxy-docker")
    auths = {
        p.host: {"auth": base64.b64encode(f"{r.username}:{r.password}".encode()).decode()}
        for p, r in ((src, source), (dst, destination))
    }
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_scenario(
    scenario: Scenario,
    corpus: Corpus,
    proxies: tuple[FaultProxy, FaultProxy],
    destination: LiveRegistry,
    source: LiveRegistry,
    proxy_docker_config: Path,
    tmp_path: Path,
) -> None:
    """The run ends byte-identical, or fails cleanly; never a corrupt tag, never a leak."""
    src, dst = proxies
    prefix = f"s{len(OUTCOMES)}x{random.randrange(10**6)}"
    outcome = run_scenario(
        scenario,
        corpus,
        src,
        dst,
        destination.walker(),
        proxy_docker_config,
        [source.password, destination.password],
        prefix,
        tmp_path,
    )
    OUTCOMES.append(outcome)
    # A request written onto a connection that still held part of a broken one.
    assert src.protocol_errors + dst.protocol_errors == []
    assert outcome.faults > 0
    assert outcome.corrupt_tags == 0
    assert outcome.leaks == []
    if scenario.expect == "identical":
        assert outcome.identical, outcome.errors[:3]
    else:
        assert outcome.failed_cleanly, outcome


def test_sigkill_at_random_points_never_leaves_a_partial_tag(
    corpus: Corpus,
    proxies: tuple[FaultProxy, FaultProxy],
    destination: LiveRegistry,
    proxy_docker_config: Path,
) -> None:
    """Kill -9 mid-run N times; every tag present is complete; the final run completes."""
    src, dst = proxies
    src.set_rules([], 0)
    dst.set_rules([], 0)
    src.bandwidth_bps = 512 * 2**10  # per response: slow enough that kills land mid-transfer
    prefix = f"kill{random.randrange(10**6)}"
    specs = specs_through(corpus, src, dst, prefix)
    env = cli_env(proxy_docker_config)
    rng = random.Random(7)
    kills = int(os.environ.get("KILL_RUNS", "6")) * (1 + SOAK)
    walker = destination.walker()
    partial_seen = corrupt_total = 0
    try:
        for _ in range(kills):
            process = subprocess.Popen(
                [sys.executable, "-m", "github_org_backup", "copy", "--specs", "-"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert process.stdin is not None
            process.stdin.write(specs)
            process.stdin.close()
            # Time each kill from the run's first request to the source, not from the start of
            # the interpreter: on a loaded machine start-up alone can outlast a fixed delay, and
            # every kill would land before any work.
            asked = src.requests
            deadline = time.monotonic() + 60
            while src.requests == asked and process.poll() is None:
                assert time.monotonic() < deadline, "the CLI sent no request within 60 s"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 2.5))
            process.send_signal(signal.SIGKILL)
            process.wait()
            good, corrupt = judge(corpus, walker, prefix)
            corrupt_total += corrupt
            partial_seen += good < len(corpus.images)
        served_before_final = src.blob_bytes_served
        src.bandwidth_bps = None
        final = subprocess.run(
            [sys.executable, "-m", "github_org_backup", "copy", "--specs", "-"],
            cwd=ROOT,
            env=env,
            input=specs,
            capture_output=True,
            text=True,
            check=False,
        )
        assert final.returncode == 0, final.stderr[-2000:]
    finally:
        src.bandwidth_bps = None
    good, corrupt = judge(corpus, walker, prefix)
    total_served = src.blob_bytes_served
    unique = corpus.unique_blob_bytes
    EXTRA_ROWS.append(
        f"| SIGKILL at random points ×{kills}, then a rerun | {kills} kills | 1 final "
        "| "
        f"{int(good == len(corpus.images))} | {kills} killed (non-zero) "
        f"| {corrupt_total + corrupt} "
        f"| 0 | re-transferred {total_served - unique} bytes over {unique} unique "
        f"({total_served / unique:.2f}× source bytes in total; final run read "
        f"{total_served - served_before_final}) |"
    )
    assert corrupt_total == 0 and corrupt == 0
    assert good == len(corpus.images)
    assert partial_seen > 0  # the kills really interrupted work


def test_sigterm_stops_within_grace_period_and_writes_the_report(
    corpus: Corpus,
    proxies: tuple[FaultProxy, FaultProxy],
    destination: LiveRegistry,
    source: LiveRegistry,
    proxy_docker_config: Path,
    tmp_path: Path,
) -> None:
    """SIGTERM: nothing new starts, in-flight work ends by the grace period, exit 143, report."""
    src, dst = proxies
    src.set_rules([], 0)
    dst.set_rules([], 0)
    # Slow enough that a layer in flight would need far longer than STOP_CEILING_S to finish on
    # its own (the shared layer alone takes about 37 s at this rate): a stop within the ceiling
    # proves the grace period cut the transfer off, not that it happened to end.
    src.bandwidth_bps = 8 * 2**10
    prefix = f"term{random.randrange(10**6)}"
    report = tmp_path / "report.json"
    env = cli_env(proxy_docker_config)
    specs = tmp_path / "specs.json"
    specs.write_text(specs_through(corpus, src, dst, prefix))
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "github_org_backup",
                "copy",
                "--specs",
                str(specs),
                "--report",
                str(report),
                "--grace-period",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Signal once a layer is streaming (its first 64 KiB chunk is out; the configs and
        # attestations together are far smaller): the CLI installs its handler before its first
        # request, and a layer is in flight. A fixed sleep raced the interpreter's start-up on a
        # loaded machine, where a SIGTERM before the handler killed the CLI outright (exit -15,
        # no report).
        deadline = time.monotonic() + 120
        while src.blob_bytes_served < CHUNK and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert src.blob_bytes_served >= CHUNK, "no layer started streaming within 120 s"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        src.bandwidth_bps = None
    import json

    summary = json.loads(report.read_text())["summary"]
    _, corrupt = judge(corpus, destination.walker(), prefix)
    leaks = find_leaks([stderr, report.read_text()], [source.password, destination.password], [])
    EXTRA_ROWS.append(
        f"| SIGTERM mid-run, --grace-period 1 | 1 signal | 1 | 0 "
        f"| 1 (exit {process.returncode}, stopped in {elapsed:.1f} s, report written) "
        f"| {corrupt} | {len(leaks)} "
        f"| {summary['images_copied']} images finished, {summary['images_failed']} "
        f"not started or abandoned |"
    )
    assert process.returncode == 143, stderr[-2000:]
    # The grace period is 1 s; the ceiling leaves room for a loaded machine's shutdown (report,
    # sessions) yet is well under the ~30 s the layer in flight would still need at 8 KiB/s.
    assert elapsed < STOP_CEILING_S
    assert summary["interrupted"] is True
    assert corrupt == 0
    assert summary["images_failed"] > 0


def write_table(path: Path) -> None:
    lines = [
        "| scenario | faults injected | runs | byte-identical | failed cleanly | corrupt tags "
        "| credential leaks | observed behaviour |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in OUTCOMES:
        kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(o.fault_kinds.items()))
        lines.append(
            f"| {o.scenario} | {o.faults} ({kinds}) | 1 | {int(o.identical)} | "
            f"{int(o.failed_cleanly)} (exit {o.exit_code}) | {o.corrupt_tags} | {len(o.leaks)} | "
            f"{o.behaviour()}; {o.bytes_copied} bytes moved for {o.unique_bytes} unique |"
        )
    lines += EXTRA_ROWS
    path.write_text("\n".join(lines) + "\n")
