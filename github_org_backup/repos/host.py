"""The git host that belongs to a GitHub API: the only place a token may go."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class GitHost:
    """The git host that belongs to a GitHub API: the only place the token may go.

    github.com for api.github.com; otherwise (GitHub Enterprise Server) the API's own host, on
    any port. Over https, unless the API itself is http.
    """

    hostname: str
    schemes: tuple[str, ...]
    api_url: str

    @classmethod
    def for_api(cls, api_url: str) -> GitHost:
        api = urlsplit(api_url)
        host = (api.hostname or "").lower()
        if host == "api.github.com":
            return cls("github.com", ("https",), api_url)
        return cls(host, ("https",) if api.scheme == "https" else ("http", "https"), api_url)

    def _origin_problem(self, url: str) -> str | None:
        if not url.isascii() or any(c <= " " or c in "\\\x7f" for c in url):
            return f"clone URL {url!r} has characters no URL of GitHub has"
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed [ in the host
            return f"clone URL {url!r} is not a valid URL"
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            return f"clone URL {url!r} has an invalid port"
        if parts.username is not None or parts.password is not None:
            return "clone URL carries credentials; refusing to store it in the mirror"
        host = (parts.hostname or "").lower()
        if host != self.hostname:
            return (
                f"clone URL host {host or '(none)'!r} is not {self.hostname!r}, the git host of "
                f"the GitHub API {self.api_url}: refused, the token goes only to {self.hostname}"
            )
        if parts.scheme not in self.schemes:
            return (
                f"clone URL {url!r} uses {parts.scheme or 'no scheme'} on {host}: only "
                f"{' or '.join(self.schemes)} is used with the GitHub API {self.api_url}"
            )
        return None

    def allows(self, url: str) -> bool:
        """Whether the token may be sent to ``url``'s origin."""
        return self._origin_problem(url) is None

    def refusal(self, url: str, path: str) -> str | None:
        """Why ``url`` is not the repository ``path`` (/OWNER/REPO.git) on this host, or None."""
        problem = self._origin_problem(url)
        if problem:
            return problem
        parts = urlsplit(url)
        if parts.path.lower() != path.lower() or parts.query or parts.fragment:
            return (
                f"clone URL {url!r} on {self.hostname} is not the repository {path.lstrip('/')}"
                " it was listed as"
            )
        return None
