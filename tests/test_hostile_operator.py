"""Ordinary operator mistakes are usage errors before any work, a closed pipe ends quietly, and
source-supplied text shows literally in the job summary and the terminal table."""

from __future__ import annotations

import errno
import html
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from markdown_it import MarkdownIt

from github_org_backup import cli
from github_org_backup.errors import OutputError
from github_org_backup.output.report import write_report
from github_org_backup.output.summary import Outcome, markdown, plain_text
from tests.harness.background import BackgroundLoop
from tests.harness.github_api import GitHubStandIn, StandInPackage
from tests.harness.hostile import COMMAND, MiB, Recorder, Sandbox, run_measured

MAX_RSS_MIB = 200


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Recorder]:
    """A loopback endpoint that the commands are pointed at: any request means work started."""
    loop = BackgroundLoop()
    yield Recorder(loop).start()
    loop.stop()


def _paths(tmp_path: Path) -> dict[str, str]:
    """What the cases below name: a regular file, a real layout, an empty spec file."""
    (tmp_path / "afile").write_text("not a directory\n")
    layout = tmp_path / "layout"
    layout.mkdir(exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    (tmp_path / "mirrors").mkdir(exist_ok=True)
    (tmp_path / "specs.json").write_text("\n")
    return {
        "tmp": str(tmp_path),
        "file": str(tmp_path / "afile"),
        "layout": str(layout),
        "specs": str(tmp_path / "specs.json"),
    }


# A command line each command accepts; a case appends one mistake to it.
BASE = {
    "copy": ["copy", "--specs", "{specs}"],
    "registry": ["registry", "--org", "acme", "--dest", "oci:{tmp}/dest"],
    "verify": ["verify", "--dest", "oci:{layout}"],
    "restore": ["restore", "--from", "oci:{layout}", "--to", "{host}/restored"],
    "snapshots": ["snapshots", "--dest", "oci:{layout}"],
    "repos": ["repos", "--org", "acme", "--dest", "{tmp}/mirrors"],
    "verify --repos": ["verify", "--repos", "{tmp}/mirrors"],
}
NETWORK = ("copy", "registry", "verify", "restore", "snapshots")
COPYING = ("copy", "registry", "restore")
RUNS = (*COPYING, "repos")  # grace period, progress interval, metrics file

FINITE = "give a finite number of seconds"
CASES: list[tuple[str, list[str], str]] = [
    *[
        (c, [f"--connect-timeout={v}"], f"--connect-timeout: '{v}': {FINITE}")
        for c in NETWORK
        for v in ("inf", "nan", "-inf", "0", "-1")
    ],
    *[(c, ["--read-timeout=inf"], f"--read-timeout: 'inf': {FINITE}") for c in (*NETWORK, "repos")],
    *[(c, ["--read-timeout=nan"], f"--read-timeout: 'nan': {FINITE}") for c in (*NETWORK, "repos")],
    *[(c, ["--image-timeout=inf"], f"--image-timeout: 'inf': {FINITE}") for c in COPYING],
    *[("repos", [f"--repo-timeout={v}"], f"--repo-timeout: '{v}': {FINITE}") for v in ("inf", "0")],
    *[
        (c, [f"--grace-period={v}"], f"--grace-period: '{v}': {FINITE}")
        for c in RUNS
        for v in ("-5", "inf", "nan")
    ],
    *[
        (c, [f"--progress-interval={v}"], f"--progress-interval: '{v}': {FINITE}, at least 0.01")
        for c in RUNS
        for v in ("0", "-1", "0.001", "nan", "inf")
    ],
    *[
        (c, ["--keep-within", "99999999999y"], "--keep-within 99999999999y: longer than")
        for c in ("copy", "registry")
    ],
    *[(c, ["--include-tag", "("], "--include-tag '(' is not a valid regex") for c in COPYING[1:]],
    *[
        ("registry", ["--github-api-url", url], f"--github-api-url {url!r} is not an http(s) URL")
        for url in ("not a url", "ftp://127.0.0.1:9", "api.github.com", "http://h:99999")
    ],
    *[
        ("repos", ["--github-api-url", url], f"--github-api-url {url!r} is not an http(s) URL")
        for url in ("not a url", "api.github.com")
    ],
    ("repos", ["--dest", "{file}/below"], "{file} is a file, so"),
    *[
        (c, ["--pushgateway", "not a url"], "--pushgateway 'not a url' is not an http(s) URL")
        for c in RUNS
    ],
    *[
        (c, ["--ca-file", "{tmp}/none.pem"], "--ca-file {tmp}/none.pem: no such file")
        for c in NETWORK
    ],
    *[(c, ["--max-blob-size", "0"], "give at least 1KiB") for c in NETWORK],
    *[(c, ["--min-speed", "fast"], "is not a size like 10KiB") for c in NETWORK],
    ("registry", ["--shard", "0/2", "--shard-count", "2"], "not allowed with argument --shard"),
    ("verify", ["--shard", "0/2", "--shard-count", "2"], "not allowed with argument --shard"),
    ("restore", ["--shard", "0/2", "--shard-count", "2"], "not allowed with argument --shard"),
    ("snapshots", ["--shard", "0/2", "--shard-count", "2"], "not allowed with argument --shard"),
    *[(c, ["--report", "{file}/report.json"], "{file} is a file, not a directory") for c in BASE],
    *[(c, ["--report", "{tmp}"], "--report {tmp} is a directory") for c in BASE],
    *[
        (c, ["--metrics-file", "{tmp}/missing/m.prom"], "directory {tmp}/missing does not exist")
        for c in RUNS
    ],
    *[(c, ["--metrics-file", "{file}/m.prom"], "{file} is a file") for c in RUNS],
]
LAYOUT_IS_A_FILE = "{file} is a file, not a directory: an OCI layout is a directory"
DESTINATIONS: list[tuple[list[str], str]] = [
    (["registry", "--org", "acme", "--dest", "oci:{file}"], LAYOUT_IS_A_FILE),
    (["registry", "--org", "acme", "--dest", "oci:{file}/below"], "{file} is a file, so"),
    (["copy", "{host}/acme/app:1", "oci:{file}:acme/app:1"], LAYOUT_IS_A_FILE),
    (["copy", "--specs", "{specs}", "--snapshot-prefix", "oci:{file}"], LAYOUT_IS_A_FILE),
    (["verify", "--dest", "oci:{file}"], LAYOUT_IS_A_FILE),
    (["snapshots", "--dest", "oci:{file}"], LAYOUT_IS_A_FILE),
    (["restore", "--from", "oci:{file}", "--to", "{host}/r"], LAYOUT_IS_A_FILE),
    (["restore", "--from", "oci:{layout}", "--to", "oci:{file}"], LAYOUT_IS_A_FILE),
]


@pytest.fixture
def run_main(
    tmp_path: Path,
    endpoint: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[list[str]], tuple[int, str]]]:
    """``cli.main`` in this process, every service pointed at ``endpoint``: (exit, stderr)."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "BACKUP_", "DEST_", "SOURCE_", "REPOS_", "PUSHGATEWAY")):
            monkeypatch.delenv(name)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text('{"auths": {}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("GITHUB_TOKEN", "operator-token")
    monkeypatch.setenv("GITHUB_API_URL", endpoint.url)
    monkeypatch.setenv("SOURCE_REGISTRY", endpoint.url)
    monkeypatch.chdir(tmp_path)
    configure = structlog.configure  # main() configures logging: leave nothing cached behind
    monkeypatch.setattr(
        structlog,
        "configure",
        lambda **kw: configure(**(kw | {"cache_logger_on_first_use": False})),
    )
    names = _paths(tmp_path) | {"host": endpoint.url}

    def run(argv: list[str]) -> tuple[int, str]:
        endpoint.received.clear()
        try:
            code = cli.main([a.format(**names) for a in argv] + ["--log-format", "json"])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    yield run
    structlog.reset_defaults()


def _assert_usage_error(code: int, stderr: str, needle: str, endpoint: Recorder) -> None:
    assert code == 2, stderr[-2000:]
    assert needle in stderr, stderr[-2000:]
    assert "Traceback" not in stderr and "run_crashed" not in stderr
    assert endpoint.received == [], "work started before the mistake was refused"


@pytest.mark.parametrize(
    ("command", "mistake", "needle"), CASES, ids=[f"{c}-{' '.join(m)}" for c, m, _ in CASES]
)
def test_a_mistaken_flag_is_a_usage_error_before_any_work(
    run_main: Callable[[list[str]], tuple[int, str]],
    endpoint: Recorder,
    tmp_path: Path,
    command: str,
    mistake: list[str],
    needle: str,
) -> None:
    """Each operator mistake, with every command that takes the flag, exits 2 with a message
    naming the flag and what to give, before any request is sent."""
    code, stderr = run_main([*BASE[command], *mistake])
    names = _paths(tmp_path)
    _assert_usage_error(code, stderr, needle.format(**names), endpoint)


@pytest.mark.parametrize(
    ("argv", "needle"), DESTINATIONS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in DESTINATIONS]
)
def test_a_layout_named_by_a_regular_file_is_a_usage_error(
    run_main: Callable[[list[str]], tuple[int, str]],
    endpoint: Recorder,
    tmp_path: Path,
    argv: list[str],
    needle: str,
) -> None:
    """``oci:FILE`` (or a directory below a file) is refused up front by every command that
    reads or writes a layout, instead of failing image by image or crashing at the end."""
    code, stderr = run_main(argv)
    _assert_usage_error(code, stderr, needle.format(**_paths(tmp_path)), endpoint)
    assert (tmp_path / "afile").read_text() == "not a directory\n"


def test_the_baselines_are_accepted(
    run_main: Callable[[list[str]], tuple[int, str]], tmp_path: Path
) -> None:
    """The command lines the mistakes are added to are themselves valid, so each refusal above
    is the mistake's: copy of an empty spec set ends 0, verify of an empty layout 1."""
    assert run_main(BASE["copy"])[0] == 0
    assert run_main([*BASE["copy"], "--grace-period", "0", "--progress-interval", "0.01"])[0] == 0
    assert run_main(BASE["verify"])[0] == 3  # an empty layout: nothing matched
    assert run_main([*BASE["copy"], "--keep-within", "1000y"])[0] == 0


def test_a_report_that_fails_at_the_end_is_a_clear_error_not_a_bug(
    run_main: Callable[[list[str]], tuple[int, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A disk that fills after the start-up check: exit 1 and the path and reason, not exit 70."""

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("github_org_backup.output.report.atomic_write", disk_full)
    report = tmp_path / "out" / "report.json"
    code, stderr = run_main([*BASE["copy"], "--report", str(report)])
    assert code == 1, stderr
    assert f"could not be written to {report}: No space left on device" in stderr
    assert "run_crashed" not in stderr and "Traceback" not in stderr


def test_write_report_names_the_path_it_could_not_write(tmp_path: Path) -> None:
    """The writer itself turns an OSError into an OutputError with the path and the reason."""
    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputError, match="could not be written to .*afile/report.json"):
        write_report(tmp_path / "afile" / "report.json", {"summary": {}})


# A closed pipe


def _into_a_closed_pipe(args: list[str], sandbox: Sandbox, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout a pipe whose reader has already gone, as after ``| head``."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*COMMAND, *args, "--log-format", "json"],
            stdout=write,
            stderr=subprocess.PIPE,
            env=sandbox.env(env),
            cwd=sandbox.work,
            timeout=60,
            text=True,
        )
    finally:
        os.close(write)
    return done.returncode, done.stderr


def _ended_quietly(code: int, stderr: str) -> None:
    assert code == cli.EXIT_PIPE_CLOSED == 141, stderr[-3000:]
    for word in ("Traceback", "BrokenPipe", "run_crashed", "Exception ignored"):
        assert word not in stderr, stderr[-3000:]


@pytest.mark.integration
@pytest.mark.parametrize(
    "argv",
    [
        ["copy", "--specs", "{specs}", "--report", "-"],
        ["verify", "--dest", "oci:{layout}", "--report", "-"],
        ["snapshots", "--dest", "oci:{layout}", "--json"],
        ["verify", "--repos", "{tmp}/mirrors", "--report", "-"],
    ],
    ids=["copy --report -", "verify --report -", "snapshots --json", "verify --repos"],
)
def test_a_closed_stdout_ends_quietly(tmp_path: Path, argv: list[str]) -> None:
    """Output into a pipe whose reader left ends with 141, as ``git log | head`` does, and no
    traceback or bug report on stderr."""
    sandbox = Sandbox.make(tmp_path)
    names = _paths(sandbox.work)
    code, stderr = _into_a_closed_pipe([a.format(**names) for a in argv], sandbox, {})
    _ended_quietly(code, stderr)


@pytest.mark.integration
def test_registry_dry_run_into_head_ends_quietly(tmp_path: Path, endpoint: Recorder) -> None:
    """``registry --dry-run | head -n 1`` under ``set -o pipefail``: the plan (far larger than a
    pipe's buffer) stops at the closed pipe; the shell sees 141 and stderr stays clean."""
    versions = [(f"sha256:{i:064x}", [f"1.{i}.0"]) for i in range(2000)]
    api = GitHubStandIn(
        owners={"acme": [StandInPackage("app", versions)]}, tokens={"t": {"read:packages"}}
    ).start()
    try:
        sandbox = Sandbox.make(tmp_path)
        env = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": api.url, "SOURCE_REGISTRY": endpoint.url}
        command = " ".join(
            [*COMMAND, "registry", "--org", "acme", "--dest", f"oci:{sandbox.work}/b", "--dry-run"]
        )
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{command} --log-format json | head -n 1"],
            capture_output=True,
            text=True,
            env=sandbox.env(env),
            cwd=sandbox.work,
            timeout=60,
        )
    finally:
        api.stop()
    assert done.stdout.startswith("app"), done.stdout[:500] + done.stderr[-2000:]
    _ended_quietly(done.returncode, done.stderr)
    assert time.monotonic() - started < 30


# Source text in the job summary and the terminal table

HOSTILE = {
    "link": "[click](http://evil.example)",
    "image": "![x](http://evil.example/p.png)",
    "html": "<img src=x onerror=alert(1)>",
    "heading": "# heading",
    "cell": "a|b",
    "line": "fine\n## injected\r\n---\n| x | y |",
    "autolink": "see http://evil.example, www.evil.example, ops@evil.example",
    "angle": "<http://evil.example>",
    "inline": "`code` **bold** _em_ ~~gone~~ $x^2$ :x: \\[x]",
    "entity": "&lt;script&gt; &#x3C;b&#x3E;",
    "terminal": "\x1b[31mred\x1b]8;;http://evil.example\x07link\u202eevil\u2028next",
}


def _hostile_outcome(*failures: tuple[str, str]) -> Outcome:
    """What the summaries show of a run whose package names, image names, errors and moved
    tags all came from a hostile source."""
    hostile = list(HOSTILE.values())
    return Outcome(
        counts=(("images failed", str(len(HOSTILE))),),
        failures=(
            ("discovery", HOSTILE["line"]),
            *((v, v) for v in hostile),  # packages
            *((v, v) for v in hostile),  # images
            *failures,
        ),
        moved=tuple((v, v, v) for v in hostile),
    )


def _assert_literal_markdown(text: str, hostile: list[str]) -> None:
    """Nothing in ``text`` forms a construct: rendered by a CommonMark parser with GFM tables,
    there are only our headings and tables, and each hostile cell shows exactly its text."""
    ours = {"## :x: github-org-backup", "### Failures (", "### Moved at the source ("}
    for line in text.splitlines():
        if line.startswith("#"):
            assert any(line.startswith(h) for h in ours), line
    assert "<" not in text, "raw HTML survived"
    assert not re.search(r"(?<!\\)\]\(", text), "a link or image survived"
    assert "://" not in text and "www." not in text, "an autolink survived"
    body = "\n".join(line for line in text.splitlines() if not line.startswith("## "))
    assert not re.search(r"(?<!\\)[@:]", body), "an unescaped @ or : (mention, emoji, URL)"
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
    for tag in ("<a ", "<img", "<code", "<strong", "<em", "<s>", "<del", "<h1", "<h4", "<hr"):
        assert tag not in rendered, (tag, rendered)
    assert rendered.count("<h2>") == 1
    assert rendered.count("<h3>") == sum(line.startswith("### ") for line in text.splitlines())
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", rendered, re.DOTALL)]
    for value in hostile:
        assert plain_text(value).strip() in cells, (value, cells)
    for row in re.findall(r"<tr>(.*?)</tr>", rendered, re.DOTALL):
        assert row.count("<td") in (0, 2, 3), row  # no cell was split by a hostile '|'


def test_job_summary_shows_hostile_names_and_errors_literally() -> None:
    """Package names, tags and error texts with links, images, HTML, headings, table pipes,
    autolinks, emphasis, entities, terminal sequences and line breaks render as plain text."""
    text = markdown("registry", _hostile_outcome(), 1)
    _assert_literal_markdown(text, list(HOSTILE.values()))


def test_a_long_hostile_cell_is_clipped_before_escaping() -> None:
    """The 300-character clip applies to the text, so it never cuts an escape in half."""
    text = markdown("copy", Outcome((), (("x", "[" * 999),), ()), 1)
    row = next(line for line in text.splitlines() if line.startswith("| x |"))
    assert row.count("\\[") == 299 and row.endswith("… |")


def test_terminal_table_shows_hostile_text_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich markup (``[link=...]``, an unmatched ``[/bold]``) and terminal escapes in a name or
    an error are printed as text: no crash, no hyperlink, no escape sequence."""
    from github_org_backup.output.progress import print_summary_table

    monkeypatch.setenv("COLUMNS", "400")
    report = _hostile_outcome(("x[/bold]", "[link=http://evil.example]k[/link]"))
    print_summary_table("copy", report, 1)
    shown = capsys.readouterr().err
    assert "x[/bold]" in shown and "[link=http://evil.example]k[/link]" in shown
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown


@pytest.mark.integration
def test_a_hostile_registry_error_reaches_the_job_summary_escaped(tmp_path: Path) -> None:
    """End to end: a registry answers a manifest GET with a 403 whose message carries Markdown
    and HTML; the CLI's job summary shows it literally, and nothing else leaks or strays."""
    message = " ".join(HOSTILE[k] for k in ("link", "image", "html", "cell", "line"))

    async def deny(request: web.Request) -> web.StreamResponse:
        if request.path == "/v2/":
            return web.json_response({})
        body = {"errors": [{"code": "DENIED", "message": message}]}
        return web.json_response(body, status=403)

    loop = BackgroundLoop()
    registry = Recorder(loop, deny).start()
    try:
        sandbox = Sandbox.make(tmp_path)
        summary, dest = sandbox.root / "summary.md", sandbox.root / "dest"
        summary.write_text("earlier step\n")
        result = run_measured(
            [
                "copy",
                f"{registry.url}/acme/app:1",
                f"oci:{dest}:acme/app:1",
                "--log-format",
                "json",
            ],
            sandbox,
            env={"GITHUB_STEP_SUMMARY": str(summary)},
            timeout=60,
        )
    finally:
        loop.stop()
    assert result.returncode == 2, result  # its one image was refused: the run could not go on
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    section = text.split("\n", 1)[1]
    assert r"\[click\]\(http\:\/\/evil\.example\)" in section  # the message arrived, escaped
    _assert_literal_markdown(section, [])
    assert "## injected" not in section.replace("\\#\\# injected", "")
    assert registry.received, "the registry was asked"
    assert registry.saw_secret() == []  # no Authorization header went to it
    assert sandbox.files_outside(dest, summary) == []
    assert result.peak_rss_bytes <= MAX_RSS_MIB * MiB, result
    assert result.wall_s < 30, result


def test_a_broken_pipe_to_anything_but_the_output_is_still_a_bug(
    run_main: Callable[[list[str]], tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BrokenPipeError while stdout and stderr are still read (a child process's pipe, say)
    is not the reader leaving: it ends in exit 70 with the run_crashed event, not quietly."""

    async def child_pipe_broke(args: Any) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "copy", child_pipe_broke)
    code, stderr = run_main(BASE["copy"])
    assert code == cli.EXIT_CRASHED == 70
    assert "run_crashed" in stderr and "BrokenPipeError" in stderr


def test_console_logs_show_terminal_control_in_source_text_as_escapes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An ESC sequence, an OSC 8 hyperlink or a bidi override in a name reaches the terminal
    as visible escapes, and a newline cannot start a fake log line."""
    import structlog

    from github_org_backup.base.logs import configure_logging

    configure_logging("console", "info")
    try:
        hostile = "app\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\u202etxt\nfake_event"
        structlog.get_logger("test").error("image_failed", src=hostile)
        err = capsys.readouterr().err
    finally:
        configure_logging("json", "info")
    assert "\x1b]8" not in err and "\u202e" not in err and "\x07" not in err
    assert "\\u001b[2J" in err and "\\u000afake_event" in err
    assert err.count("\n") == 1
