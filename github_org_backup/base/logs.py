"""structlog set-up: JSON off a TTY, console on one, secrets scrubbed from every event.

Libraries that log through the standard library (PyGithub on the "github" logger, urllib3
below it) come out through the same processors and renderer, so a piped run writes one JSON
object per line, whoever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal, TextIO

from github_org_backup.base.imports import without
from github_org_backup.base.redact import redact_event, redact_text

# structlog.dev imports rich, only to draw tracebacks on the console: a run that logs JSON (any
# run without a terminal) does not load it. _console_renderer loads rich when it is used.
with without("rich"):
    import structlog

LogFormat = Literal["json", "console", "auto"]

# (logger name, least severe level shown). urllib3's retry warnings repeat what the tool's own
# github_api_unreachable and github_request_retry events say.
_LIBRARY_LOGGERS = (("github", logging.DEBUG), ("urllib3", logging.ERROR))


class _Stderr:
    """Whatever ``sys.stderr`` is at the moment of writing: on a terminal the live progress
    display swaps in a proxy that prints log lines above itself instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _Stderr()  # one object, so structlog's per-stream lock is shared by every writer


class _StructlogHandler(logging.Handler):
    """Writes formatted records with structlog's PrintLogger: it shares that logger's lock
    on the stream, so lines from PyGithub's worker thread never interleave with ours."""

    def __init__(self) -> None:
        super().__init__()
        self._printer = structlog.PrintLogger(_STDERR)  # type: ignore[arg-type]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer.msg(self.format(record))
        except Exception:  # logging must never break the run
            self.handleError(record)


# Terminal control (ESC sequences, bidi overrides, line separators) in source text: a name or a
# registry's message must not recolour, retitle or hyperlink the operator's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Show control characters in string values as escapes (the console renderer writes
    them raw; JSON escapes them itself)."""
    return {k: _CONTROL.sub(_escaped, v) if isinstance(v, str) else v for k, v in event.items()}


def _console_renderer(colors: bool) -> structlog.dev.ConsoleRenderer:
    """structlog's console renderer, with rich drawing tracebacks as structlog's default does,
    but without the frames' local variables: those would reach the terminal unredacted."""
    from rich.console import Console
    from rich.traceback import Stack, Traceback

    def clean(stacks: list[Stack]) -> None:
        # The exceptions' messages may quote a registry's words: redacted and escaped, as
        # every other field is. The code lines shown come from this package's own files.
        for stack in stacks:
            stack.exc_value = _CONTROL.sub(_escaped, redact_text(stack.exc_value))
            stack.notes = [_CONTROL.sub(_escaped, redact_text(note)) for note in stack.notes]
            for group in stack.exceptions:
                clean(group.stacks)

    def rich_traceback(sio: TextIO, exc_info: structlog.typing.ExcInfo) -> None:
        sio.write("\n")
        console = Console(file=sio, color_system="truecolor" if colors else None)
        kind, value, trace = exc_info
        assert kind is not None and value is not None
        extracted = Traceback.extract(kind, value, trace)
        clean(extracted.stacks)
        console.print(Traceback(extracted, width=None, word_wrap=True))

    return structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=rich_traceback)


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        _console_renderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    level_number = logging.getLevelNamesMapping()[level.upper()]
    # JSON carries a traceback as one string field; the console renderer draws its own.
    tracebacks = [structlog.processors.format_exc_info] if log_format == "json" else []
    escape = [printable] if log_format == "console" else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tracebacks,
            redact_event,
            *escape,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    _route_library_logs(renderer, level_number)


def _route_library_logs(renderer: structlog.typing.Processor, level: int) -> None:
    global _formatter, _level
    _formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_event,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    _level = level
    adopt_library_logs()


_formatter: logging.Formatter | None = None
_level = logging.INFO


def adopt_library_logs() -> None:
    """Send the library loggers through structlog, and only there. Call it again after
    importing a library that installs a handler of its own (PyGithub adds a plain
    StreamHandler and sets INFO on "github" when imported)."""
    if _formatter is None:  # logging was never configured: leave the libraries alone
        return
    for name, least in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        handler = _StructlogHandler()
        handler.setFormatter(_formatter)
        logger.addHandler(handler)
        logger.setLevel(max(_level, least))
        logger.propagate = False
