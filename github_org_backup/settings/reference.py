"""The command line reference, docs/cli.md, generated from the declarations.

python -m github_org_backup.settings.reference > docs/cli.md
"""

from __future__ import annotations

import sys

from github_org_backup.settings.commands import COMMANDS, EXIT_CODES, flagged, variables
from github_org_backup.settings.declare import Command, Option
from github_org_backup.settings.parser import variable_text

REGENERATE = "python -m github_org_backup.settings.reference > docs/cli.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str | None) -> str:
    return f"`{text}`" if text else ""


def _option_rows(options: tuple[Option, ...], command: str) -> list[str]:
    rows = ["| Option | Variable | Default | What it does |", "| --- | --- | --- | --- |"]
    for option in options:
        label = option.label
        if option.required:
            label += " (required)"
        rows.append(
            f"| {_code(label)} | {_code(option.env)} | {_code(option.default_text())} "
            f"| {_cell(option.help_in(command))}"
            f"{' (repeatable)' if option.action == 'append' else ''} |"
        )
    return rows


def _variable_rows(options: tuple[Option, ...], command: str) -> list[str]:
    rows = ["| Variable | What it holds |", "| --- | --- |"]
    rows += [
        f"| {_code(o.env)} | {_cell(variable_text(o, command))} |" for o in options if not o.flags
    ]
    return rows


def _exit_rows(codes: tuple[tuple[int, str], ...]) -> list[str]:
    rows = ["| Exit status | Meaning |", "| --- | --- |"]
    return rows + [f"| {code} | {_cell(meaning)} |" for code, meaning in codes]


def section(command: Command) -> list[str]:
    lines = [f"## `{command.name}`", "", command.description, ""]
    groups: dict[str, list[Option]] = {}
    for option in flagged(command.name):
        groups.setdefault(option.group, []).append(option)
    for group, options in groups.items():
        lines += [f"### {group.capitalize()}", "", *_option_rows(tuple(options), command.name), ""]
    if any(not o.flags for o in variables(command.name)):
        lines += [
            "### Environment only",
            "",
            *_variable_rows(variables(command.name), command.name),
            "",
        ]
    lines += ["See [Exit status](#exit-status): the same for every command.", ""]
    return lines


def reference() -> str:
    lines = [
        "# Command line reference",
        "",
        f"<!-- Generated from github_org_backup/settings: {REGENERATE} -->",
        "",
        "Every option, its environment variable and its default, by command. A flag beats its "
        "variable, and the variable beats the default. A variable that is set but empty counts "
        "as unset.",
        "",
        "Commands: " + ", ".join(f"[`{c.name}`](#{c.name}) ({c.summary})" for c in COMMANDS) + ".",
        "",
        "## Exit status",
        "",
        "One table for every command, as every `--help` prints it:",
        "",
        *_exit_rows(EXIT_CODES),
        "",
    ]
    for command in COMMANDS:
        lines += section(command)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
