"""Every error the tool raises, in one hierarchy.

    BackupError
    ├── UsageError            bad flags, config or copy specs; exit 2 before any copy
    │   ├── InvalidReference  (also a ValueError) a reference, name, tag or digest off-grammar
    │   ├── SpecError         a copy-spec set that cannot be executed as a whole
    │   ├── GitHubAccessError GitHub refused the token, or does not know the owner
    │   ├── ApiHostMismatch   the API's answers name another host than --github-api-url
    │   └── GitMissing        git is not installed
    ├── GitHubUnavailable     the GitHub API could not be reached or kept failing
    │   └── GitHubRateLimited a rate limit that resets later than the run waits
    ├── GitHubRefused         one GitHub request refused; the lister decides whose failure
    ├── TooManyPages          a listing still linked a next page after its most pages
    ├── GitHubAnswerInvalid   an answer outside GitHub's documented shape or the tool's bounds
    ├── DiscoveryStopped      the run was asked to stop while GitHub was being asked
    ├── GitError              a git command failed
    │   ├── RepositoryNotFound    the server has no such repository, or hides it
    │   └── GitTimeout            a git command outlived its deadline and was killed
    ├── MetadataStoreError    the metadata store (its git repository or files) refused a write
    ├── RegistryError         an exchange with a registry failed; keeps its status,
    │   │                     operation and the error body's codes (RegistryDiagnostic)
    │   ├── AuthError         credentials missing or refused
    │   ├── NotFound          the manifest or blob does not exist
    │   ├── UnsafeRedirect    a redirect the client refuses to follow
    │   ├── TLSFailed         the TLS handshake failed: certificate untrusted, expired or for
    │   │                     another name, or TLS to a plain-HTTP port
    │   ├── BodyTooLarge      413: the registry or a proxy refused the request body's size
    │   ├── TooSlow           a body moved below the throughput floor, or an image outlasted
    │   │                     its deadline (not retried: a trickling source trickles again)
    │   ├── OverLimit         an answer larger or longer than the tool's bounds allow
    │   └── TransientError    retries exhausted on a fault that may pass
    │       ├── Unreachable   no answer at all: refused, DNS, connect timeout (every attempt)
    │       ├── ResumeRefused a ranged read answered from another offset
    │       └── ConnectionBroken  a connection broke or timed out mid-answer (HTTP client
    │                             errors are mapped to this at the transport boundary)
    ├── ContentError          bytes that do not match what describes them
    │   ├── DigestMismatch
    │   ├── SizeMismatch
    │   ├── InvalidManifest
    │   ├── AssetMismatch     a release asset's bytes differ from its size or digest
    │   └── NoMatchingPlatform
    ├── LayoutWriteError      an OCI layout's file system refused a write (full, quota, file
    │                         size limit, read-only, permission); fails the image, never retried
    └── OutputError           the run's report could not be written (after the work; exit 1)

Outside the tree, because they are not failures of a run:

    JSONTooLarge (ValueError)   a document too large or too deep to parse; callers turn it into
                                the error of what they were reading
    RetryLater                  an attempt's request for another one, inside base.retry
    BodySpent (RuntimeError)    a one-shot request body asked for twice: a bug, never expected
    RegistryDiagnostic          one (code, message) entry of a registry's error body, as a
                                RegistryError keeps them

Messages never carry credentials, Authorization headers or signed-URL query strings, and
each says what the user can do about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

RateLimit = Literal["primary", "secondary"]


class BackupError(Exception):
    """Root of every error raised on purpose by github-org-backup."""


class UsageError(BackupError):
    """The invocation cannot run as given; nothing has been copied."""


class InvalidReference(UsageError, ValueError):
    """A reference, repository name, tag or digest does not match its grammar."""


class SpecError(UsageError):
    """A set of copy specs is contradictory or malformed."""


class RegistryDiagnostic(NamedTuple):
    """One entry of a distribution error body (``{"errors": [{"code", "message"}]}``)."""

    code: str
    message: str


class RegistryError(BackupError):
    """A registry answered in a way the copy cannot continue from.

    As go-containerregistry's ``transport.Error``, it keeps what the registry said, not only
    the message made of it: ``status`` (the HTTP status, None when no answer came),
    ``operation`` (what was asked, e.g. "HEAD manifest", "PUT blob", "GET token"; empty when
    not known), ``errors`` (the error body's entries, redacted) and ``codes`` (their codes,
    each once, in the order the registry sent them).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        operation: str = "",
        errors: Iterable[RegistryDiagnostic] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.operation = operation
        self.errors = tuple(errors)

    @property
    def codes(self) -> tuple[str, ...]:
        """The distribution error codes of the body, e.g. ("MANIFEST_UNKNOWN",)."""
        return tuple(dict.fromkeys(entry.code for entry in self.errors))


class AuthError(RegistryError):
    """The registry refused the credentials, or asked for ones we do not have."""


class NotFound(RegistryError):
    """The registry does not have the requested manifest or blob."""


class UnsafeRedirect(RegistryError):
    """A redirect pointed somewhere the client will not follow (https to http)."""


class TLSFailed(RegistryError):
    """The TLS handshake with a registry failed; retrying will not fix trust."""


class BodyTooLarge(RegistryError):
    """HTTP 413: the registry, or a proxy in front of it, limits request bodies below this one."""


class TooSlow(RegistryError):
    """A body stayed below the throughput floor over a window, or an image ran out of time."""


class OverLimit(RegistryError):
    """An answer is larger or longer than a bound allows (a blob, a listing, an index)."""


class TransientError(RegistryError):
    """A fault that may pass (5xx, 429, connection loss) persisted beyond the retry budget."""


class Unreachable(TransientError):
    """The registry gave no answer to any attempt: refused, a DNS failure, a connect timeout."""


class ResumeRefused(TransientError):
    """A read asked to resume at byte N was answered from elsewhere: restart from zero."""


class ConnectionBroken(TransientError):
    """The connection broke, or went silent, while an answer's body was being read.

    ``cause`` names the HTTP client's own error (e.g. ``ClientPayloadError``).
    """

    def __init__(self, message: str, *, cause: str = "", operation: str = "") -> None:
        super().__init__(message, operation=operation)
        self.cause = cause


class ContentError(BackupError):
    """Content does not match the descriptor that names it."""


class DigestMismatch(ContentError):
    """The bytes hash to a different digest than expected."""


class SizeMismatch(ContentError):
    """The body is longer or shorter than its descriptor says."""


class InvalidManifest(ContentError):
    """A manifest is malformed, too large, ambiguous or of an unknown media type."""


class AssetMismatch(ContentError):
    """A release asset's bytes are not what its ``size`` and ``digest`` say: not kept."""


class NoMatchingPlatform(ContentError):
    """A limitPlatforms transform selected none of an index's platforms."""


class LayoutWriteError(BackupError):
    """A write into an OCI layout failed on its file system; the message names the path."""


class OutputError(BackupError):
    """The run's report could not be written where the operator asked; the work is done."""


class GitHubAccessError(UsageError):
    """GitHub refused the token or does not know the owner: the user must fix the setup."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiHostMismatch(UsageError):
    """The API's answers name another host than --github-api-url (a GHES behind another name)."""


class GitMissing(UsageError):
    """git is not installed."""


class GitHubUnavailable(BackupError):
    """The GitHub API could not be reached or kept failing."""


class GitHubRateLimited(GitHubUnavailable):
    """A rate limit that resets later than the run waits, or outlasted every retry."""

    def __init__(self, message: str, *, limit: RateLimit, resets_at: float | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.resets_at = resets_at


class GitHubRefused(BackupError):
    """GitHub answered one request with an error status; the lister decides whose failure it
    is (the run's, or one package's)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message  # GitHub's own words, cleaned


class TooManyPages(BackupError):
    """A listing still linked a next page after the most pages it may have."""

    def __init__(self, pages: int, items: int, url: str = "") -> None:
        where = f"{url} " if url else ""
        super().__init__(f"{where}still linked a next page after {pages} pages")
        self.pages = pages
        self.items = items


class GitHubAnswerInvalid(BackupError):
    """GitHub answered outside its documented shape or bounds: a body too large or too slow,
    endless pages, a redirect to another origin, a page that is not a list."""


class DiscoveryStopped(BackupError):
    """The run was asked to stop (SIGTERM or SIGINT) while GitHub was being asked."""


class GitError(BackupError):
    """A git command failed; the message is git's own, with any credential blanked."""


class RepositoryNotFound(GitError):
    """The server has no such repository, or hides it from this token (HTTP 404)."""


class GitTimeout(GitError):
    """A git command against the network did not end within its deadline; it was killed."""


class MetadataStoreError(BackupError):
    """The metadata store could not be read or written: its git, a path, the disk."""


class JSONTooLarge(ValueError):
    """A document holding more values, or nested deeper, than may be parsed."""

    def __init__(self, message: str, values: int = 0) -> None:
        super().__init__(message)
        self.values = values


class RetryLater(Exception):
    """Raised by an attempt that wants another one, after ``retry_after`` seconds if the other
    side said when (an answer that may pass, as opposed to an error)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class BodySpent(RuntimeError):
    """A one-shot body was asked for a second time (aiohttp's own resend)."""


def lacks_access(exc: BaseException) -> bool:
    """Whether a failure is for want of access, not of the input's own making: credentials
    missing or refused, or a registry that gave no answer at all (refused, DNS, TLS). When
    every image of a run fails so, the run as a whole could not go on (exit 2)."""
    return isinstance(exc, AuthError | UsageError | Unreachable | TLSFailed)
