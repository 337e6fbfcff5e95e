"""A request budget per registry host: GHCR's 429 hint honoured, the rate halved on every 429
and recovering after, and an optional cap (--max-request-rate HOST=N/s)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from github_org_backup.base import retry
from github_org_backup.base.retry import HostBudget, retry_after_in_body
from tests.conftest import LiveRegistry
from tests.harness.clirun import run_cli
from tests.harness.faultproxy import FaultProxy
from tests.harness.images import Corpus, generate_corpus
from tests.harness.registry import RegistryProcess


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("retry-after: 10.305464ms, allowed: 2000/minute", 0.010305464),
        ("Retry-After: 1.5s, allowed: 44000/minute", 1.5),
        ("retry-after: 1m0.5s", 60.5),
        ("retry-after: 250us", 0.00025),
        ("too many requests", None),
    ],
)
def test_ghcr_retry_after_hint_in_the_body(message: str, seconds: float | None) -> None:
    """GHCR writes a Go duration into the error message; it is read in seconds."""
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]})
    found = retry_after_in_body(body)
    assert found == pytest.approx(seconds) if seconds is not None else found is None


def test_budget_halves_on_429_recovers_and_never_passes_its_cap() -> None:
    """No limit at first; a 429 halves what was being sent; answers raise it again to the cap."""
    budget = HostBudget()
    assert budget.rate is None
    budget._recent.extend([time.monotonic()] * 40)  # 20 requests a second just went out
    assert budget.too_many_requests() == pytest.approx(10.0)
    assert budget.too_many_requests() == pytest.approx(10.0)  # the same burst: one signal
    budget._lowered_at -= 1.0
    assert budget.too_many_requests() == pytest.approx(5.0)
    budget.answered()
    assert budget.rate == pytest.approx(5.2)  # a second's worth of answers adds one a second
    for _ in range(100_000):
        budget.answered()
    assert budget.rate is None  # recovered all the way: no limit of its own again

    capped = HostBudget(cap=8.0)
    assert capped.rate == 8.0
    capped.too_many_requests()
    assert capped.rate == 4.0
    for _ in range(100):
        capped.answered()
    assert capped.rate == 8.0  # never past the cap
    for _ in range(20):
        capped._lowered_at -= 1.0
        capped.too_many_requests()
    assert capped.rate == HostBudget._FLOOR


class _Clock:
    """The budget's clock and sleep, virtual: every wait lasts exactly as long as asked, plus
    ``late`` seconds for the next one (a wake-up delayed on a loaded machine)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.late = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late
        self.late = 0.0


async def test_budget_spaces_requests_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20 requests a second, requests go out 50 ms apart; a late wake-up shifts the rest
    instead of letting them catch up in a burst. (On a virtual clock: on the real one a loaded
    machine oversleeps by a varying amount, which made an upper bound on the time flaky.)"""
    clock = _Clock()
    monkeypatch.setattr(retry, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(retry, "asyncio", SimpleNamespace(sleep=clock.sleep))
    budget = HostBudget(cap=20.0)
    sent = []
    for _ in range(11):
        await budget.acquire()
        sent.append(clock.now - 1000.0)
    assert sent == pytest.approx([n * 0.05 for n in range(11)])
    clock.late = 0.3
    await budget.acquire()
    await budget.acquire()
    assert clock.now - 1000.0 == pytest.approx(0.5 + 0.05 + 0.3 + 0.05)


async def test_budget_spaces_requests_in_real_time() -> None:
    """The same on the real clock: sleeping never ends early, so 11 requests at 20 a second
    take at least half a second (however much longer a loaded machine makes it)."""
    budget = HostBudget(cap=20.0)
    started = time.monotonic()
    for _ in range(11):
        await budget.acquire()
    assert time.monotonic() - started >= 0.45


async def test_a_pause_holds_every_request() -> None:
    """A Retry-After pauses the host for everyone."""
    budget = HostBudget()
    budget.pause(0.3)
    started = time.monotonic()
    await asyncio.gather(*(budget.acquire() for _ in range(5)))
    assert time.monotonic() - started >= 0.29


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    process = RegistryProcess(tmp_path_factory.mktemp("budget")).start()
    yield process
    process.stop()


@pytest.fixture
def corpus(source: LiveRegistry, namespace: str) -> Corpus:
    corpus = generate_corpus(repositories=3, tags=2, prefix=namespace)
    source.pusher().push(corpus)
    return corpus


def _copy(
    corpus: Corpus, source: LiveRegistry, proxy: FaultProxy, tmp_path: Path, *extra: str
) -> tuple[int, str, dict[str, object]]:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    basic = base64.b64encode(f"{source.username}:{source.password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {source.host: {"auth": basic}}}))
    specs = "\n".join(
        json.dumps(
            {
                "src": f"http://{source.host}/{image.repository}:{image.tag}",
                "dst": f"http://{proxy.host}/{tmp_path.name}/{image.repository}:{image.tag}",
            }
        )
        for image in corpus.images
    )
    report = tmp_path / "report.json"
    result = run_cli(
        ["copy", "--specs", "-", "--report", str(report), "--concurrency", "16", *extra],
        directory,
        specs,
    )
    return result.returncode, result.stderr, json.loads(report.read_text())["summary"]


def _busiest_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.integration
def test_a_rate_limited_registry_slows_the_run_down_instead_of_failing_it(
    corpus: Corpus, source: LiveRegistry, plain_registry: RegistryProcess, tmp_path: Path
) -> None:
    """A destination allowing 30 requests a second answers a burst with 429s carrying GHCR's
    body hint; the run lowers its rate, honours the hint and copies everything."""
    proxy = FaultProxy(plain_registry.url, rate_limit=30).start()
    try:
        code, stderr, summary = _copy(corpus, source, proxy, tmp_path)
    finally:
        proxy.stop()
    assert code == 0, stderr[-3000:]
    assert summary["images_copied"] == len(corpus.images)
    events = [json.loads(line) for line in stderr.splitlines()]
    lowered = [e for e in events if e["event"] == "request_rate_lowered"]
    assert lowered
    assert all(e["retry_after_s"] is not None for e in lowered if e["method"] != "HEAD")
    assert 0 < proxy.limited < len(proxy.admitted) // 4  # a few 429s, then it kept under


@pytest.mark.integration
def test_max_request_rate_keeps_a_run_under_the_cap(
    corpus: Corpus, source: LiveRegistry, plain_registry: RegistryProcess, tmp_path: Path
) -> None:
    """--max-request-rate HOST=1500/min: never more than 25 requests in any second, so a
    limit of 30 a second never answers 429."""
    proxy = FaultProxy(plain_registry.url, rate_limit=30).start()
    try:
        code, stderr, _ = _copy(
            corpus, source, proxy, tmp_path, "--max-request-rate", f"{proxy.host}=1500/min"
        )
    finally:
        proxy.stop()
    assert code == 0, stderr[-3000:]
    assert proxy.limited == 0
    assert _busiest_second(proxy.admitted) <= 26  # one slot of slack for timer granularity
