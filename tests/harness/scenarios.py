"""Fault scenarios: run the CLI through fault proxies and judge the destination independently."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.clirun import run_cli
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import Corpus
from tests.harness.walker import Walker

# Log events that show how the client coped, as "observed behaviour".
COPING_EVENTS = (
    "request_retry",
    "blob_read_resumed",
    "blob_transfer_retry",
    "manifest_refetch",
    "upload_resumed",
    "redirect_expired",
    "image_failed",
)


@dataclass(frozen=True)
class Scenario:
    name: str
    source: tuple[Rule, ...] = ()
    destination: tuple[Rule, ...] = ()
    expect: str = "identical"  # or "clean-failure"
    args: tuple[str, ...] = ()
    ignore_range: bool = False
    seed: int = 0


@dataclass
class Outcome:
    scenario: str
    exit_code: int
    faults: int
    identical: bool
    failed_cleanly: bool
    corrupt_tags: int
    leaks: list[str]
    bytes_copied: int
    unique_bytes: int
    events: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    fault_kinds: Counter[str] = field(default_factory=Counter)

    def behaviour(self) -> str:
        parts = [f"{name.replace('_', ' ')} ×{n}" for name, n in sorted(self.events.items())]
        return ", ".join(parts) or "no retries needed"


def specs_through(corpus: Corpus, source: FaultProxy, destination: FaultProxy, prefix: str) -> str:
    return "\n".join(
        json.dumps(
            {
                "src": f"http://{source.host}/{i.repository}:{i.tag}",
                "dst": f"http://{destination.host}/{prefix}/{i.repository}:{i.tag}",
            }
        )
        for i in corpus.images
    )


def judge(corpus: Corpus, walker: Walker, prefix: str) -> tuple[int, int]:
    """(tags present and identical, tags present but wrong or incomplete)."""
    good = corrupt = 0
    for image in corpus.images:
        walked = walker.walk(f"{prefix}/{image.repository}", image.tag)
        if walked.digest is None:
            continue
        if walked.problems or walked.digest != image.manifest.digest:
            corrupt += 1
        else:
            good += 1
    return good, corrupt


def find_leaks(texts: list[str], secrets: list[str], proxies: list[FaultProxy]) -> list[str]:
    leaks = [
        f"secret #{n} in output" for n, s in enumerate(secrets) if any(s and s in t for t in texts)
    ]
    leaks += ["JWT in output" for t in texts if "Bearer ey" in t or '"eyJ' in t][:1]
    for proxy in proxies:
        leaks += [
            f"signed-URL query in output ({proxy.cdn_secret[:6]}…)"
            for t in texts
            if proxy.cdn_secret in t
        ][:1]
        leaks += [
            "Authorization sent to the CDN"
            for h in proxy.cdn_headers
            if any(k.lower() == "authorization" for k in h)
        ][:1]
    return leaks


def count_events(stderr: str) -> Counter[str]:
    events: Counter[str] = Counter()
    for line in stderr.splitlines():
        try:
            event = json.loads(line).get("event")
        except ValueError:
            continue
        if event in COPING_EVENTS:
            events[event] += 1
        elif event == "auth_challenge" and '"renewing": true' in line:
            events["credentials_renewed_after_401"] += 1
    return events


def run_scenario(
    scenario: Scenario,
    corpus: Corpus,
    source: FaultProxy,
    destination: FaultProxy,
    walker: Walker,
    docker_config: Path,
    secrets: list[str],
    prefix: str,
    workdir: Path,
) -> Outcome:
    source.set_rules(list(scenario.source), scenario.seed, scenario.ignore_range)
    destination.set_rules(list(scenario.destination), scenario.seed + 1)
    report = workdir / f"{prefix}.json"
    result = run_cli(
        [
            "copy",
            "--specs",
            "-",
            "--report",
            str(report),
            "--read-timeout",
            "1",
            "--log-level",
            "debug",
            *scenario.args,
        ],
        docker_config,
        specs_through(corpus, source, destination, prefix),
    )
    good, corrupt = judge(corpus, walker, prefix)
    report_text = report.read_text() if report.exists() else ""
    summary = json.loads(report_text)["summary"] if report_text else {}
    identical = result.returncode == 0 and good == len(corpus.images)
    return Outcome(
        scenario=scenario.name,
        exit_code=result.returncode,
        faults=sum(source.injected.values()) + sum(destination.injected.values()),
        identical=identical,
        failed_cleanly=result.returncode != 0 and corrupt == 0,
        corrupt_tags=corrupt,
        leaks=find_leaks(
            [result.stderr, result.stdout, report_text], secrets, [source, destination]
        ),
        bytes_copied=int(summary.get("bytes_transferred", 0)),  # every byte moved, retries too
        unique_bytes=corpus.unique_blob_bytes,
        events=count_events(result.stderr),
        errors=[i["error"] for i in json.loads(report_text)["images"] if i["error"]]
        if report_text
        else [result.stderr[-2000:]],
        fault_kinds=source.injected + destination.injected,
    )
