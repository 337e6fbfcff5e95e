"""The command line: bad arguments are usage errors with a hint, and --help tells the truth."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.cli import COMMANDS, build_parser
from github_org_backup.settings.commands import OPTIONS, variables
from tests.harness.clirun import ROOT, run_in_process


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI in this process, with DOCKER_CONFIG in ``tmp_path`` and nothing of GitHub's."""
    return run_in_process(list(args), {"DOCKER_CONFIG": str(tmp_path)} | (env or {}))


def _usage_error(result: Any, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    "source",
    [
        "http://127.0.0.1:99999/acme/app:1",
        "http://127.0.0.1:0/acme/app:1",
        "localhost:65536/acme/app:1",
    ],
)
def test_port_out_of_range_is_a_usage_error(tmp_path: Path, source: str) -> None:
    """A port outside 1-65535 is refused before any request, with exit 2 and no traceback."""
    result = _run(tmp_path, "copy", source, "http://127.0.0.1:5000/acme/app:1")
    _usage_error(result, "the port must be 1-65535")


def test_spec_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    """Binary bytes in a spec file give exit 2 and say what a spec file holds."""
    specs = tmp_path / "specs.json"
    specs.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe binary")
    _usage_error(_run(tmp_path, "copy", "--specs", str(specs)), "not UTF-8")


def test_empty_spec_file_warns_and_copies_nothing(tmp_path: Path) -> None:
    """An empty spec file is not an error, but the log says there was nothing to copy."""
    specs = tmp_path / "specs.json"
    specs.write_text("\n")
    report = tmp_path / "report.json"
    result = _run(tmp_path, "copy", "--specs", str(specs), "--report", str(report))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert "specs_empty" in events
    assert json.loads(report.read_text())["summary"]["images_copied"] == 0


def test_empty_token_file_says_it_is_empty(tmp_path: Path) -> None:
    """--github-token-file pointing at an empty file names the file and says it is empty."""
    token = tmp_path / "token"
    token.write_text("\n")
    result = _run(tmp_path, "registry", "--org", "acme", "--github-token-file", str(token))
    _usage_error(result, f"--github-token-file {token} is empty")


@pytest.mark.parametrize(
    ("command", "name", "value", "bounds"),
    [
        ("registry", "GITHUB_API_MAX_PAGES", "0", "from 1 to 1000000"),
        ("registry", "GITHUB_API_MAX_PAGE_BYTES", "10MiB", "from 1024 to 1073741824"),
        ("registry", "GITHUB_API_RETRIES", "21", "from 0 to 20"),
        ("repos", "GITHUB_API_MAX_PAGES", "many", "from 1 to 1000000"),
    ],
)
def test_a_bad_github_api_variable_is_a_usage_error_naming_it(
    tmp_path: Path, command: str, name: str, value: str, bounds: str
) -> None:
    """Read with the other options, before any request: exit 2, the variable and its range.
    The API URL points nowhere that answers, so a request sent would be another error."""
    dest = f"oci:{tmp_path / 'backup'}" if command == "registry" else str(tmp_path / "git")
    env = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": "http://127.0.0.1:9", name: value}
    result = _run(tmp_path, command, "--org", "acme", "--dest", dest, env=env)
    _usage_error(result, f"{name}={value!r}: expected a whole number {bounds}")


def test_verify_on_a_missing_directory_says_it_is_missing(tmp_path: Path) -> None:
    """verify --dest oci:DIR on a directory that does not exist says so (exit 2)."""
    missing = tmp_path / "nowhere"
    _usage_error(_run(tmp_path, "verify", "--dest", f"oci:{missing}"), "does not exist")


def test_verify_on_a_directory_that_is_not_a_layout(tmp_path: Path) -> None:
    """A directory without index.json is named as not being an OCI layout."""
    _usage_error(
        _run(tmp_path, "verify", "--dest", f"oci:{tmp_path}"), "is not an OCI image layout"
    )


@pytest.mark.parametrize("command", ["verify --dest", "restore --to localhost:5000/r --from"])
def test_a_bare_directory_suggests_oci(tmp_path: Path, command: str) -> None:
    """A directory path given where a backup location goes suggests the oci: spelling."""
    result = _run(tmp_path, *command.split(), str(tmp_path))
    _usage_error(result, f"write oci:{tmp_path}")


# --help and what the commands honour


def _help(command: str) -> str:
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    return str(subparsers[command].format_help())


def _environment_read_by(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        text = path.read_text()
        names |= set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z_]+)["']""", text))
        names |= set(re.findall(r"""^[A-Z_]+_ENV = ["']([A-Z_]+)["']""", text, re.M))
    return names


DECLARED = {o.env for o in OPTIONS if o.env}


def test_every_variable_the_code_reads_is_declared() -> None:
    """A variable read anywhere (here by name, or in settings through its declaration) is
    declared, so --help and docs/cli.md name it."""
    read = _environment_read_by(list((ROOT / "github_org_backup").rglob("*.py")))
    assert {"DOCKER_CONFIG", "GITHUB_STEP_SUMMARY"} <= read
    assert read <= DECLARED
    settings = _environment_read_by(list((ROOT / "github_org_backup" / "settings").rglob("*.py")))
    assert settings == set(), "settings reads variables through their declarations"


# Below settings, the modules that still touch the process environment, and why.
ENVIRONMENT_READERS = {
    "repos/gitenv.py": "hands git the process environment (PATH, HOME, proxies), minus git's own",
    "metadata/store.py": "hands the store's git the process environment, minus git's own",
    "stores/registry/credentials.py": "DOCKER_CONFIG, where docker's config.json is",
    "output/summary.py": "GITHUB_STEP_SUMMARY, a default the caller may replace",
}


def test_only_settings_reads_the_environment() -> None:
    """The GitHub API variables (and every other) are read in settings and handed down; the
    few modules below it that touch the environment are named, and github/ is not one."""
    package = ROOT / "github_org_backup"
    touching = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"\benviron\b|getenv", path.read_text())
    }
    below = {name for name in touching if not name.startswith("settings/")}
    assert not any(name.startswith("github/") for name in below), below
    assert below <= set(ENVIRONMENT_READERS), below - set(ENVIRONMENT_READERS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_names_every_variable_of_the_command(command: str) -> None:
    """Each command's --help lists, in its environment section, every variable it reads."""
    text = _help(command)
    section = text[text.index("environment:") :]
    for option in variables(command):
        assert f"  {option.env} " in section or f"  {option.env}\n" in section, option.env


def test_the_reference_names_every_variable() -> None:
    """docs/cli.md documents every variable the code reads."""
    reference = (ROOT / "docs" / "cli.md").read_text()
    for name in DECLARED | _environment_read_by(list((ROOT / "github_org_backup").rglob("*.py"))):
        assert f"`{name}`" in reference, name


def test_verify_offers_no_copy_flags() -> None:
    """verify does not copy, so it offers no upload, grace-period or metrics flags."""
    text = _help("verify")
    for flag in ("--chunk-size", "--grace-period", "--pushgateway", "--metrics-file"):
        assert flag not in text


class _Recording(argparse.Namespace):
    """A namespace that remembers which attributes were read."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "read", set())

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name != "read":
            object.__getattribute__(self, "read").add(name)
        return object.__getattribute__(self, name)


def test_verify_reads_every_flag_it_offers(tmp_path: Path) -> None:
    """Each flag verify offers reaches the code that runs it: no flag is silently ignored."""
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    args = _Recording()
    build_parser().parse_args(
        ["verify", "--dest", f"oci:{layout}", "--report", str(tmp_path / "r.json")],
        namespace=args,
    )
    offered = set(vars(args)) - {"read", "command"}
    args.read.clear()
    assert asyncio.run(COMMANDS["verify"](args)) == 3  # an empty layout: nothing matched
    # main() reads the log flags before running the command.
    unread = offered - args.read - {"log_format", "log_level"}
    assert unread == set()


def test_verify_repos_reads_every_flag_it_offers(tmp_path: Path) -> None:
    """verify --repos reads every verify flag too: those it cannot honour are refused."""
    args = _Recording()
    build_parser().parse_args(
        ["verify", "--repos", str(tmp_path), "--report", str(tmp_path / "r.json")],
        namespace=args,
    )
    offered = set(vars(args)) - {"read", "command"}
    args.read.clear()
    assert asyncio.run(COMMANDS["verify"](args)) == 3  # an empty directory: nothing matched
    unread = offered - args.read - {"log_format", "log_level"}
    assert unread == set()
    refused = _run(tmp_path, "verify", "--repos", str(tmp_path), "--dest", "oci:x")
    _usage_error(refused, "--dest, --from-report and --max-request-rate are for image backups")
    # A BACKUP_DEST set for the image backups of the same job is no mistake.
    env = {"BACKUP_DEST": "oci:x"}
    assert _run(tmp_path, "verify", "--repos", str(tmp_path), env=env).returncode == 3


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the test command the README gives, so the README's one works."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Tests") :]
    command = section.split("```sh\n", 1)[1].split("\n```", 1)[0].strip()
    assert "venv" in command  # Debian's Python refuses pip install outside a venv
    assert command in (ROOT / ".ci" / "run").read_text()


def test_every_command_gives_the_one_exit_code_table() -> None:
    """docs/cli.md has one exit-status table that every command's section links to, and every
    --help prints that table, row for row."""
    from github_org_backup.settings.commands import EXIT_CODES

    reference = (ROOT / "docs" / "cli.md").read_text()
    table = reference[reference.index("## Exit status") :].split("\n## ", 1)[0]
    for code, _meaning in EXIT_CODES:
        assert f"\n| {code} | " in table, code
    assert [c for c, _ in EXIT_CODES] == [0, 1, 2, 3, 70, 130, 141, 143]
    for command in COMMANDS:
        section = reference[reference.index(f"## `{command}`") :].split("\n## ", 1)[0]
        assert "[Exit status](#exit-status)" in section, command
        shown = _help(command).split("exit status (every command):\n", 1)[1]
        codes = [line.split()[0] for line in shown.splitlines() if line[:3].strip().isdigit()]
        assert codes == [str(c) for c, _ in EXIT_CODES], command


def test_a_bug_ends_in_one_json_event_not_a_bare_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception exits 70 with a run_crashed event, its traceback inside it and
    secrets redacted; stderr stays JSON lines."""
    import structlog

    from github_org_backup import cli

    async def crash(args: argparse.Namespace) -> int:
        raise RuntimeError("boom with Bearer abc.def.ghi inside")

    # main() configures logging for the whole process: here it must leave no cached loggers
    # and no configuration behind for later tests that use structlog.testing.capture_logs.
    configure = structlog.configure
    monkeypatch.setattr(
        structlog,
        "configure",
        lambda **kw: configure(**(kw | {"cache_logger_on_first_use": False})),
    )
    monkeypatch.setitem(cli.COMMANDS, "copy", crash)
    try:
        assert cli.main(["copy", "--log-format", "json", "a", "b"]) == cli.EXIT_CRASHED == 70
    finally:
        structlog.reset_defaults()
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]
    (crashed,) = [e for e in events if e["event"] == "run_crashed"]
    assert crashed["error"].startswith("RuntimeError: boom")
    assert "Traceback" in crashed["exception"] and "abc.def.ghi" not in json.dumps(events)


@pytest.mark.parametrize(
    ("argv", "builder"),
    [
        (["copy", "--specs", "{specs}", "--snapshot-prefix", "oci:{tmp}/snap"], "copy_options"),
        (["registry", "--org", "acme", "--dest", "oci:{tmp}/b"], "registry_options"),
        (["restore", "--from", "oci:{tmp}/layout", "--to", "localhost:5000/r"], "restore_options"),
        (["snapshots", "--dest", "oci:{tmp}/layout"], "snapshots_options"),
        (["verify", "--dest", "oci:{tmp}/layout"], "verify_options"),
        (["repos", "--org", "acme", "--dest", "{tmp}/mirrors"], "settings.repos:repos_options"),
        (["verify", "--repos", "{tmp}/layout"], "settings.repos:verify_repos_options"),
    ],
)
def test_every_flag_reaches_the_typed_options(
    tmp_path: Path, argv: list[str], builder: str
) -> None:
    """Building a command's typed options reads every flag the command offers (only
    --log-level is read before, by main): no flag is offered and then ignored."""
    import importlib

    (tmp_path / "layout").mkdir()
    (tmp_path / "layout" / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    (tmp_path / "specs.json").write_text("")
    filled = [a.format(tmp=tmp_path, specs=tmp_path / "specs.json") for a in argv]
    args = _Recording()
    build_parser().parse_args(filled, namespace=args)
    offered = set(vars(args)) - {"read", "command"}
    args.read.clear()
    module, _, name = builder.rpartition(":")
    build = getattr(
        importlib.import_module(f"github_org_backup.{module or 'settings.images'}"), name
    )
    options = build(args, {"GITHUB_TOKEN": "ghp_x"})
    assert options.output.command == argv[0]
    read_before = {"log_level", "repos"}  # by main() and by verify's dispatch to --repos
    assert offered - args.read - read_before == set()
