"""Whether content is at a destination already: a blob's HEAD (or a mount of it into its own
repository, on a registry that mounts), and the size check of what is found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

import structlog

from github_org_backup.base.fanout import both
from github_org_backup.errors import AuthError, RegistryError, SizeMismatch, TransientError
from github_org_backup.model.oci import Descriptor
from github_org_backup.model.reference import Repository
from github_org_backup.stores.protocol import Store, UploadSession

log = structlog.get_logger("github_org_backup.copy.engine")

PRESENT: Final = "present"  # the blob is at the destination already


LEARN: Final = 4  # answers before a destination counts as fresh


@dataclass
class _Tally:
    present: int = 0
    absent: int = 0

    def record(self, *, present: bool) -> None:
        if present:
            self.present += 1
        else:
            self.absent += 1

    @property
    def fresh(self) -> bool:
        """Absent answers dominate: a destination that holds little of what is copied."""
        return self.absent >= LEARN and self.absent > 4 * self.present


@dataclass
class ManifestProbe(_Tally):
    """What asking one destination registry for manifests found so far in this run.

    A registry accepts a manifest only when all it references is present, so a child manifest
    found there needs nothing below it checked; but on a fresh destination every such HEAD
    answers 404. Once the first answers (the tags' HEADs among them) were mostly absent, child
    manifests are copied without asking: their blobs are still checked one by one, and putting
    a manifest that is there already changes nothing, so a wrong guess costs requests, never
    bytes. One child in ``SAMPLE`` is still asked, so that a destination that holds them after
    all is noticed.
    """

    SAMPLE: ClassVar[int] = 8
    unasked: int = 0

    def ask(self) -> bool:
        """Whether to HEAD the next child manifest before copying it."""
        if not self.fresh:
            return True
        self.unasked += 1
        return self.unasked % self.SAMPLE == 0


@dataclass
class Probe(_Tally):
    """What checking new blobs (and, in ``manifests``, manifests) at one destination registry
    found so far in this run."""

    mounted: bool = False  # a cross-repository mount answered 201: the registry mounts
    mount_refused: bool = False
    mount_asked: bool = False  # learn_mounts has asked
    manifests: ManifestProbe = field(default_factory=ManifestProbe)

    @property
    def by_mount(self) -> bool:
        return self.mounted and not self.mount_refused and self.absent > self.present

    @property
    def eager(self) -> bool:
        """A fresh destination: open the upload with the HEAD. Until blobs have answered, the
        manifests' answers (the tags' HEADs come first) say whether it is fresh."""
        if self.present + self.absent < LEARN:
            return self.manifests.fresh
        return self.fresh


async def learn_mounts(target: Store, dst: Repository, digest: str, probe: Probe) -> None:
    """On a fresh destination, find out at once whether it mounts, rather than at the first
    blob two repositories share: mount a blob just uploaded to ``dst`` into ``dst`` itself.
    201 means it mounts, and each new blob's check becomes one POST instead of HEAD and POST;
    202 means it does not, and the session opened is cancelled. Asked once per registry."""
    if probe.mounted or probe.mount_refused or probe.mount_asked or not probe.eager:
        return
    probe.mount_asked = True
    try:
        session = await target.mount_blob(dst.name, digest, from_name=dst.name)
    except RegistryError as exc:  # transient or refused: the HEADs go on, as before
        log.info("blob_self_mount_refused", registry=str(dst.registry), error=str(exc))
        return
    if session is None:
        probe.mounted = True
    else:
        probe.mount_refused = True
        await target.cancel_upload(session)


async def check_blob(
    target: Store, blob: Descriptor, dst: Repository, probe: Probe, *, open_upload: bool = False
) -> UploadSession | Literal["present"] | None:
    """Whether ``dst`` holds the blob already (``PRESENT``, its size checked); else the
    upload session to send it in, or None to start one.

    Usually a HEAD. While most blobs turn out to be absent, on a registry that has mounted a
    blob in this run (``probe``), it is a mount of the blob from ``dst`` into itself instead:
    201 if the blob is there, else 202 with the upload session that the POST after a 404
    would have opened. A new blob then costs POST and PUT instead of HEAD, POST and PUT.
    With ``open_upload`` (a fresh destination, a transfer slot held for the blob), the HEAD
    and the POST that opens the upload go together: the bytes start a round trip sooner, and
    a blob that is there after all costs its session's DELETE.
    """
    if probe.by_mount:
        try:
            session = await target.mount_blob(dst.name, blob.digest, from_name=dst.name)
        except (TransientError, AuthError):
            raise
        except RegistryError as exc:  # refuses a mount from the repository itself
            probe.mount_refused = True
            log.info("blob_self_mount_refused", registry=str(dst.registry), error=str(exc))
        else:
            probe.record(present=session is None)
            if session is not None:
                return session
            # Mounted, so present: its size is checked as after a HEAD.
            size = await target.blob_size(dst.name, blob.digest)
            return None if size is None else _present(blob, size, dst)
    if open_upload:  # a registry's: a layout's upload needs no session
        size, opened = await both(
            target.blob_size(dst.name, blob.digest), target.start_upload(dst.name)
        )
        probe.record(present=size is not None)
        if size is None:
            return opened
        await target.cancel_upload(opened)  # guessed wrong: a request lost, never bytes
        return _present(blob, size, dst)
    size = await target.blob_size(dst.name, blob.digest)
    probe.record(present=size is not None)
    return None if size is None else _present(blob, size, dst)


def _present(blob: Descriptor, size: int, dst: Repository) -> Literal["present"]:
    check_present_size(blob, size, f"blob {blob.digest}", dst)
    return PRESENT


def check_present_size(descriptor: Descriptor, size: int, what: str, dst: Repository) -> None:
    """Content already at the destination counts only if it is the size its descriptor says."""
    if size >= 0 and size != descriptor.size:
        raise SizeMismatch(
            f"{what} is {size} bytes at {dst}, but the image's descriptor says "
            f"{descriptor.size}: the source image's manifest is wrong; rebuild and push it"
        )
