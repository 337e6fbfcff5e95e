"""Git repositories: bare mirrors that keep what the source rewrites, and their checks."""
