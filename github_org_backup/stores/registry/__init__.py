"""A registry reached over HTTP, in layers (as go-containerregistry's ``transport`` wrappers):

- ``client``: ``RegistryClient``, the distribution-spec steps, named after them;
- ``listings``: tags, the catalog and referrers, with one ``Link``-pagination helper;
- ``uploads``: chunked uploads and the fallback to them after a 413;
- ``answers``: reading answers, with status codes mapped to ``github_org_backup.errors`` (each
  keeping the status, the operation and the error body's codes) and a body broken mid-read
  mapped to ``ConnectionBroken``;
- ``transport``: one request: retry with the host's request budget, auth (``auth``),
  the redirect policy, and aiohttp's exceptions mapped to ``github_org_backup.errors``.

Nothing outside this package sees a token, a redirect or an aiohttp exception.
"""

from github_org_backup.stores.registry.client import RegistryClient

__all__ = ["RegistryClient"]
