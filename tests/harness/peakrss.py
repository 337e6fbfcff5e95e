"""Run a command as a child of this small process and write the child's peak RSS to a file.

``python -m tests.harness.peakrss OUT CMD...``. A process forked straight from the test
session would inherit the session's resident set as its high-water mark (``ru_maxrss``
survives ``execve``), so after a few hundred tests every child would seem to take hundreds of
MiB. Forked from here, a child starts from this process's few MiB instead.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: os.kill(pid, signum))
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as file:
        file.write(str(usage.ru_maxrss * 1024))  # kilobytes on Linux
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
