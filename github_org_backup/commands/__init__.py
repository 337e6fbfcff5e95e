"""What each command does, one module each, given its typed options (settings.options).

Exit codes: 0 done, 1 some inputs failed (the rest done), 2 usage or setup error before any
work, 143 stopped by a signal; 70 (a bug) is decided in github_org_backup.cli.
"""

from github_org_backup.commands.copy import run_copy
from github_org_backup.commands.registry import run_registry
from github_org_backup.commands.repos import run_repos, run_verify_repos
from github_org_backup.commands.restore import run_restore
from github_org_backup.commands.run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from github_org_backup.commands.snapshots import run_snapshots
from github_org_backup.commands.verify import run_verify

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "run_copy",
    "run_registry",
    "run_repos",
    "run_restore",
    "run_snapshots",
    "run_verify",
    "run_verify_repos",
]
