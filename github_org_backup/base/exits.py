"""The exit statuses the commands end with (settings.commands.EXIT_CODES says what each
means), below every stage so that the command line returns them without loading a command."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_EMPTY = 0, 1, 2, 3
