"""The argparse parser of every command, with its environment and exit-status sections, made
from the declarations (settings.commands)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from github_org_backup import __version__
from github_org_backup.settings.commands import COMMANDS, EXIT_CODES, flagged, variables
from github_org_backup.settings.declare import Command, Option

WIDTH = 90
_NAME_COLUMN = 22


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts as usual; keeps the line layout of the multi-line epilogs."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _entry(name: str, text: str) -> list[str]:
    """``  NAME   text`` wrapped to the help's width, the text in one column."""
    body = textwrap.wrap(text, WIDTH - _NAME_COLUMN) or [""]
    head = f"  {name}"
    if len(head) < _NAME_COLUMN - 1:
        first = [head.ljust(_NAME_COLUMN) + body[0]]
        rest = body[1:]
    else:
        first, rest = [head], body
    return first + [" " * _NAME_COLUMN + line for line in rest]


def variable_text(option: Option, command: str | None = None) -> str:
    """What a variable does: its flag's name when it has one, its own help otherwise."""
    if option.flags:
        text = f"the same as {option.flags[0]}"
        if option.env_adds:
            text += " (comma-separated; added to the flag's)"
        return text
    default = option.default_text()
    return option.help_in(command) + (f" (default {default})" if default is not None else "")


def environment_section(name: str) -> list[str]:
    lines = ["environment:"]
    for option in variables(name):
        assert option.env is not None
        lines += _entry(option.env, variable_text(option, name))
    return lines


def exit_section() -> list[str]:
    """The one exit-status table, the same in every command's --help."""
    lines = ["exit status (every command):"]
    for code, meaning in EXIT_CODES:
        lines += _entry(str(code), meaning)
    return lines


def epilog(command: Command) -> str:
    return "\n".join([*environment_section(command.name), "", *exit_section()])


def add_command(commands: Any, command: Command) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        command.name,
        formatter_class=_HelpFormatter,
        help=command.summary,
        description=command.description,
        epilog=epilog(command),
    )
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for option in flagged(command.name):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        target = groups[option.group]
        if option.exclusive:
            if option.exclusive not in exclusive:
                exclusive[option.exclusive] = target.add_mutually_exclusive_group()
            target = exclusive[option.exclusive]
        option.add_to(target, command.name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="github-org-backup",
        description="Back up container images byte-exact into a registry you own.",
        epilog="\n".join(exit_section()),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        add_command(commands, command)
    return parser
