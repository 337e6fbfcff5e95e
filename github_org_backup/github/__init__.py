"""Discovery through the GitHub REST API: bounded answers, the package and repository listers,
and the cache of what the last discovery learned."""
