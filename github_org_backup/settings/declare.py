"""One declaration per option: its flag, its environment variable, its parser and default, its
help, and the commands that take it.

The argparse parsers (settings.parser), the environment sections of --help, the reference in
docs/cli.md (settings.reference) and the readers of the builders (:func:`resolve`) are all made
from these values, so a flag's help, its variable and its documentation cannot disagree.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from github_org_backup.errors import UsageError
from github_org_backup.settings import values

Action = Literal["store", "store_true", "store_false", "append"]


@dataclass(frozen=True)
class Option:
    """One option of one or more commands.

    ``flags`` is empty for a variable without a flag, and holds one name without dashes for a
    positional argument. One flag may be declared twice only for disjoint ``commands``, where it
    means something else (``--dest`` is a backup prefix for images, a directory for git).
    """

    flags: tuple[str, ...]
    help: str
    commands: frozenset[str]
    group: str
    env: str | None = None
    parse: Callable[[str], Any] = values.text
    action: Action = "store"
    default: Any = None
    shown_default: str | None = None  # the default as a user writes it, when str() is not
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    dest: str | None = None
    exclusive: str | None = None  # options naming one same group exclude each other
    required: bool = False
    nargs: str | None = None
    const: str | None = None  # the value of a flag given without one (--metadata)
    env_adds: bool = False  # append: the variable's comma-separated entries join the flag's
    asides: tuple[tuple[str, str], ...] = ()  # (command, what the option does there besides)

    @property
    def name(self) -> str:
        """The attribute of the parsed namespace (or, for a variable, the variable)."""
        if self.dest:
            return self.dest
        if not self.flags:
            return self.env or ""
        return self.flags[0].lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return bool(self.flags) and not self.flags[0].startswith("-")

    @property
    def label(self) -> str:
        """How help names it: ``--flag METAVAR``, a positional's metavar, or the variable."""
        if not self.flags:
            return self.env or ""
        if self.positional:
            return self.metavar or self.flags[0]
        if self.action in ("store_true", "store_false"):
            return self.flags[0]
        if self.choices and not self.metavar:
            return f"{self.flags[0]} {{{','.join(self.choices)}}}"
        return f"{self.flags[0]} {self.metavar or self.name.upper()}"

    def default_text(self) -> str | None:
        if self.shown_default is not None:
            return self.shown_default
        if self.action != "store" or self.default is None:
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def help_in(self, command: str | None) -> str:
        """What the option does in ``command``: its help, and the aside for that command."""
        return self.help + "".join(f" ({aside})" for name, aside in self.asides if name == command)

    def for_help(self, command: str | None = None) -> str:
        """The help of the flag: what it does, its variable, its default."""
        text = self.help_in(command)
        if self.action == "append":
            text += " (repeatable)"
        if self.env:
            text += f" [{self.env}]"
        if (default := self.default_text()) is not None:
            text += f" (default {default})"
        return text

    def add_to(self, parser: Any, command: str | None = None) -> None:
        """Add this option to an argparse parser, group or mutually exclusive group."""
        kwargs: dict[str, Any] = {"help": self.for_help(command).replace("%", "%%")}
        if self.positional:
            kwargs["nargs"] = self.nargs
            kwargs["metavar"] = self.metavar
            parser.add_argument(self.flags[0], **kwargs)
            return
        kwargs["action"] = self.action
        if self.dest:
            kwargs["dest"] = self.dest
        if self.action in ("store", "append"):
            kwargs["metavar"] = self.metavar
            if self.parse is not values.text:
                kwargs["type"] = self.parse
            if self.choices:
                kwargs["choices"] = self.choices
            if self.const is not None:
                kwargs["nargs"], kwargs["const"] = "?", self.const
        if self.action == "append":
            kwargs["default"] = []
        elif self.action == "store":
            # With a variable, "not given" must stay visible: resolve() decides.
            kwargs["default"] = None if self.env else self.default
        if self.required:
            kwargs["required"] = True
        parser.add_argument(*self.flags, **kwargs)


def _parsed(option: Option, text: str) -> Any:
    try:
        return option.parse(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise UsageError(f"{option.env}={text!r}: {exc}") from None


def from_env(option: Option, env: Mapping[str, str] = os.environ) -> Any:
    """The option's variable, parsed; None when unset or empty."""
    if option.env is None:
        return None
    text = env.get(option.env, "").strip()
    return _parsed(option, text) if text else None


def resolve(option: Option, args: argparse.Namespace | None, env: Mapping[str, str]) -> Any:
    """The option's value: the flag if given, else its variable, else its default.

    A repeatable flag given beats its variable, unless the variable's entries add to the flag's
    (``env_adds``); the variable then holds comma-separated entries.
    """
    given = getattr(args, option.name, None) if option.flags and args is not None else None
    if option.action == "append":
        found = list(given or [])
        if option.env and (option.env_adds or not found):
            text = env.get(option.env, "")
            found += [_parsed(option, part.strip()) for part in text.split(",") if part.strip()]
        return found or list(option.default or [])
    if option.action == "store_true":
        return bool(given)
    if option.action == "store_false":
        return given is not False
    if given is not None and given != "":
        return given
    from_variable = from_env(option, env)
    if from_variable is not None:
        return from_variable
    return option.default


def given(option: Option, args: argparse.Namespace, env: Mapping[str, str]) -> bool:
    """Whether the flag or its variable sets the option (its default does not). An option
    with a variable has no parser default, so its flag given with the default's value counts
    as given."""
    value = getattr(args, option.name, None) if option.flags else None
    if value not in (None, "", [], False) and (option.env or value != option.default):
        return True
    return bool(option.env and env.get(option.env, "").strip())


@dataclass(frozen=True)
class Command:
    """A command of the CLI, as --help and the reference present it."""

    name: str
    summary: str
    description: str
