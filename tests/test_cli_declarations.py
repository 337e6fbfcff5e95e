"""The declarations every parser, --help and docs/cli.md are made from: one meaning per flag,
flag > variable > default, and the same rule for the same option in every command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from github_org_backup.errors import UsageError
from github_org_backup.plan.policy import PackageFilter
from github_org_backup.settings import command_flags as own
from github_org_backup.settings import flags
from github_org_backup.settings.commands import COMMANDS, OPTIONS, flagged
from github_org_backup.settings.config import load_registry_config, shard_texts
from github_org_backup.settings.declare import resolve
from github_org_backup.settings.images import restore_options, verify_options
from github_org_backup.settings.options import run_control_from
from github_org_backup.settings.parser import build_parser
from github_org_backup.settings.reference import REGENERATE, reference
from tests.harness.clirun import ROOT, run_in_process

NAMES = {c.name for c in COMMANDS}


def test_the_reference_is_current() -> None:
    """docs/cli.md is what the declarations make: regenerate it after changing an option."""
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == reference(), f"docs/cli.md is stale: run {REGENERATE}"


def test_a_flag_means_one_thing_in_each_command() -> None:
    """A flag declared twice is declared for disjoint commands; every option names commands
    that exist, has help, and its mutually exclusive partners share its group."""
    seen: dict[tuple[str, str], str] = {}
    for option in OPTIONS:
        assert option.commands and option.commands <= NAMES, option.label
        assert option.help.strip(), option.label
        for command in option.commands:
            for name in option.flags or (option.env or "",):
                assert (command, name) not in seen, f"{name} declared twice for {command}"
                seen[command, name] = option.label
    for command in NAMES:
        groups: dict[str, set[str]] = {}
        for option in flagged(command):
            if option.exclusive:
                groups.setdefault(option.exclusive, set()).add(option.group)
        assert all(len(g) == 1 for g in groups.values()), (command, groups)


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**values)


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    option = own.SOURCE_REGISTRY
    assert resolve(option, _args(source_registry="a.test"), {"SOURCE_REGISTRY": "b.test"}) == (
        "a.test"
    )
    assert resolve(option, _args(source_registry=None), {"SOURCE_REGISTRY": "b.test"}) == "b.test"
    assert resolve(option, _args(source_registry=None), {"SOURCE_REGISTRY": " "}) == "ghcr.io"
    # A variable is parsed as its flag is, and a bad value names the variable.
    assert resolve(flags.SHARD_COUNT, _args(shard_count=None), {"BACKUP_SHARD_COUNT": "3"}) == 3
    with pytest.raises(UsageError, match="BACKUP_SHARD_COUNT='x': 'x' is not an integer"):
        resolve(flags.SHARD_COUNT, _args(shard_count=None), {"BACKUP_SHARD_COUNT": "x"})
    # A variable whose entries add to the flag's.
    realms = resolve(
        flags.ALLOW_TOKEN_REALM,
        _args(allow_token_realm=["a"]),
        {"BACKUP_ALLOW_TOKEN_REALMS": "b,c"},
    )
    assert realms == ["a", "b", "c"]


def test_the_help_says_what_the_code_does() -> None:
    """Wordings once wrong: --prune deletes only what no kept snapshot names, --grace-period
    honours SIGINT too."""
    assert "only snapshots the retention forgot named" in own.PRUNE.help
    assert "never one a kept snapshot names" in own.PRUNE.help
    assert "SIGTERM or SIGINT" in flags.GRACE_PERIOD.help
    assert "team/*" in own.INCLUDE_PACKAGE.help and "acme/team/*" in own.INCLUDE_PACKAGE.help


def test_include_package_takes_the_owner_or_not() -> None:
    """team/* and acme/team/* select the same packages in registry, verify and restore."""
    globs = PackageFilter(("acme/team/*", "other/*", "x"))
    assert globs.allows("acme/team/app") and globs.allows("acme/x") and globs.allows("other/y")
    assert not globs.allows("acme/app") and not globs.allows("acme/y")
    assert globs.allows("Acme/team/app") and PackageFilter(("Acme/team/*",)).allows("acme/team/a")
    for glob in ("team/*", "acme/team/*"):
        names = PackageFilter((glob,))
        assert names.allows("acme/team/app") and not names.allows("acme/app")
    assert not PackageFilter((), ("team/*",)).allows("acme/team/app")


def _layout(tmp_path: Path) -> str:
    layout = tmp_path / "layout"
    layout.mkdir(exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    return f"oci:{layout}"


def test_include_package_reaches_every_command_alike(tmp_path: Path) -> None:
    dest = _layout(tmp_path)
    parse = build_parser().parse_args
    for org in ("acme", "Acme"):
        registry = parse(["registry", "--org", org, "--include-package", "acme/team/*"])
        config = load_registry_config(registry, {"GITHUB_TOKEN": "t"})
        assert config.wants("team/app") and not config.wants("app")
    verify = verify_options(parse(["verify", "--dest", dest, "--include-package", "team/*"]), {})
    assert verify.packages.allows("acme/team/app")
    restore = restore_options(
        parse(["restore", "--from", dest, "--to", "r.test/x", "--include-package", "team/*"]), {}
    )
    assert restore.packages.allows("acme/team/app") and not restore.packages.allows("acme/app")


@pytest.mark.parametrize("command", ["registry --org acme", "verify", "restore", "snapshots"])
def test_one_shard_rule_in_every_command(tmp_path: Path, command: str) -> None:
    """--shard and --shard-count exclude each other, and so do their variables; a flag beats
    both variables."""
    dest = _layout(tmp_path)
    argv = command.split() + (
        ["--from", dest, "--to", "r.test/x"] if command == "restore" else ["--dest", dest]
    )
    both = run_in_process([*argv, "--shard", "0/2", "--shard-count", "2"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    env = {"BACKUP_SHARD": "0/2", "BACKUP_SHARD_COUNT": "2", "GITHUB_TOKEN": "t"}
    variables = run_in_process(argv, env)
    assert variables.returncode == 2, variables.stderr
    assert "BACKUP_SHARD and BACKUP_SHARD_COUNT are both set" in variables.stderr
    assert shard_texts(_args(shard="1/2", shard_count=None), env) == ("1/2", None)
    assert shard_texts(_args(shard=None, shard_count=4), env) == (None, "4")


def test_help_shows_each_variable_and_default_beside_its_flag() -> None:
    parser = build_parser()
    text = parser.parse_known_args
    assert text is not None
    result = run_in_process(["registry", "--help"])
    assert result.returncode == 0
    assert "[SOURCE_REGISTRY] (default ghcr.io)" in " ".join(result.stdout.split())
    assert "environment:" in result.stdout and "exit status (every command):" in result.stdout


def test_the_entry_points_run() -> None:
    """`python -m github_org_backup` and the console script start the same CLI."""
    module = subprocess.run(
        [sys.executable, "-m", "github_org_backup", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert module.returncode == 0 and module.stdout.startswith("github-org-backup ")
    script = Path(sys.executable).with_name("github-org-backup")
    if not script.exists():
        pytest.skip("the package is not installed with its console script")
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # this checkout, as the module ran
    console = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False, env=env
    )
    assert console.returncode == 0 and console.stdout == module.stdout


def test_the_metrics_shard_label_follows_the_shard_flag_or_its_variable() -> None:
    """Shards pushing to one Pushgateway must not share a label: BACKUP_SHARD counts."""
    parser = build_parser()

    def label(argv: list[str], env: dict[str, str]) -> str:
        return run_control_from(parser.parse_args(argv), env).metrics.shard

    registry = ["registry", "--org", "acme", "--dest", "backup.test/ghcr"]
    assert label(registry, {}) == "all"
    assert label([*registry, "--shard", "1/4"], {}) == "1-of-4"
    assert label(registry, {"BACKUP_SHARD": "2/4"}) == "2-of-4"
    assert label([*registry, "--shard", "1/4"], {"BACKUP_SHARD": "2/4"}) == "1-of-4"
    assert label([*registry, "--shard-count", "4"], {"JOB_COMPLETION_INDEX": "3"}) == "3"


def test_a_shared_option_speaks_only_of_the_command_it_is_shown_in() -> None:
    """An aside for one command appears in that command's help and docs section alone."""

    def words(argv: list[str]) -> str:
        return " ".join(run_in_process(argv).stdout.split())

    helps = {c: words([c, "--help"]) for c in ("copy", "registry", "restore")}
    for command, text in helps.items():
        assert "--repos" not in text, command
    assert "with SRC DST only" in helps["copy"] and "with SRC DST only" not in helps["registry"]
    verify = words(["verify", "--help"])
    assert "with --repos: mirrors checked at once" in verify
    assert "classic PAT with read:packages" not in verify
    registry_section = reference().split("## `registry`")[1].split("\n## ")[0]
    assert "--repos" not in registry_section and "read:packages" in registry_section
