"""What each command does, one module each, given its typed options (settings.options).

Exit codes (base.exits): 0 done, 1 some inputs failed (the rest done), 2 usage or setup error
before any work, 3 nothing matched, 143 stopped by a signal; 70 (a bug) is decided in
github_org_backup.cli. The command line imports a command's module only once it dispatches to
it, so nothing here imports them all.
"""
