"""A traceback drawn on the console is redacted and escaped like every other field."""

from __future__ import annotations

import sys

from github_org_backup.base.logs import _console_renderer


def test_a_console_traceback_redacts_and_escapes_the_exception_message() -> None:
    # Built apart from the raise, so that the code line the traceback shows does not hold it.
    said = "registry said \x1b[2J\x1b]0;owned\x07 with Bearer " + "s3cr3t" + "value"
    try:
        raise ValueError(said)
    except ValueError:
        exc_info = sys.exc_info()
    rendered = _console_renderer(colors=False)(
        None, "error", {"event": "run_crashed", "exc_info": exc_info}
    )
    assert isinstance(rendered, str)
    assert "ValueError" in rendered and "registry said" in rendered
    assert "s3cr3tvalue" not in rendered
    assert "\x1b" not in rendered and "\x07" not in rendered
    assert "\\u001b" in rendered
