"""Every error the tool raises, in one hierarchy.

    BackupError
    ├── UsageError            bad flags, config or copy specs; exit 2 before any copy
    │   ├── InvalidReference  (also a ValueError) a reference, name, tag or digest off-grammar
    │   └── SpecError         a copy-spec set that cannot be executed as a whole
    ├── RegistryError         an exchange with a registry failed
    │   ├── AuthError         credentials missing or refused
    │   ├── NotFound          the manifest or blob does not exist
    │   ├── UnsafeRedirect    a redirect the client refuses to follow
    │   ├── BodyTooLarge      413: the registry or a proxy refused the request body's size
    │   ├── TooSlow           a body moved below the throughput floor, or an image outlasted
    │   │                     its deadline (not retried: a trickling source trickles again)
    │   ├── OverLimit         an answer larger or longer than the tool's bounds allow
    │   └── TransientError    retries exhausted on a fault that may pass
    │       ├── ResumeRefused a ranged read answered from another offset
    │       └── ConnectionBroken  a connection broke or timed out mid-answer (HTTP client
    │                             errors are mapped to this at the transport boundary)
    ├── ContentError          bytes that do not match what describes them
    │   ├── DigestMismatch
    │   ├── SizeMismatch
    │   ├── InvalidManifest
    │   └── NoMatchingPlatform
    └── OutputError           the run's report could not be written (after the work; exit 1)

Messages never carry credentials, Authorization headers or signed-URL query strings, and
each says what the user can do about it.
"""

from __future__ import annotations


class BackupError(Exception):
    """Root of every error raised on purpose by github-org-backup."""


class UsageError(BackupError):
    """The invocation cannot run as given; nothing has been copied."""


class InvalidReference(UsageError, ValueError):
    """A reference, repository name, tag or digest does not match its grammar."""


class SpecError(UsageError):
    """A set of copy specs is contradictory or malformed."""


class RegistryError(BackupError):
    """A registry answered in a way the copy cannot continue from."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(RegistryError):
    """The registry refused the credentials, or asked for ones we do not have."""


class NotFound(RegistryError):
    """The registry does not have the requested manifest or blob."""


class UnsafeRedirect(RegistryError):
    """A redirect pointed somewhere the client will not follow (https to http)."""


class BodyTooLarge(RegistryError):
    """HTTP 413: the registry, or a proxy in front of it, limits request bodies below this one."""


class TooSlow(RegistryError):
    """A body stayed below the throughput floor over a window, or an image ran out of time."""


class OverLimit(RegistryError):
    """An answer is larger or longer than a bound allows (a blob, a listing, an index)."""


class TransientError(RegistryError):
    """A fault that may pass (5xx, 429, connection loss) persisted beyond the retry budget."""


class ResumeRefused(TransientError):
    """A read asked to resume at byte N was answered from elsewhere: restart from zero."""


class ConnectionBroken(TransientError):
    """The connection broke, or went silent, while an answer's body was being read.

    ``cause`` names the HTTP client's own error (e.g. ``ClientPayloadError``).
    """

    def __init__(self, message: str, *, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class ContentError(BackupError):
    """Content does not match the descriptor that names it."""


class DigestMismatch(ContentError):
    """The bytes hash to a different digest than expected."""


class SizeMismatch(ContentError):
    """The body is longer or shorter than its descriptor says."""


class InvalidManifest(ContentError):
    """A manifest is malformed, too large, ambiguous or of an unknown media type."""


class NoMatchingPlatform(ContentError):
    """A limitPlatforms transform selected none of an index's platforms."""


class OutputError(BackupError):
    """The run's report could not be written where the operator asked; the work is done."""
