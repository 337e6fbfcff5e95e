"""One blob's transfer in-process: resume at the offset, restart from zero, and what is final."""

from __future__ import annotations

import pytest

from github_org_backup.copy.transfer import SOURCE_RESUMES, transfer_blob
from github_org_backup.errors import SizeMismatch, TransientError
from github_org_backup.model.oci import Descriptor, digest_of
from github_org_backup.output.report import Stats
from github_org_backup.stores.protocol import UploadSession
from tests.harness.memstore import FAST_POLICY, LAYER_TYPE, MemStore

DATA = bytes(range(40))
DIGEST = digest_of(DATA)
BLOB = Descriptor(LAYER_TYPE, DIGEST, len(DATA))


def stores(*, layout: bool = False) -> tuple[MemStore, MemStore]:
    src = MemStore("/tmp/layout" if layout else "src.test", layout=layout)
    src.add_blob("acme/app", DATA)
    return src, MemStore("dst.test")


async def copy(src: MemStore, dst: MemStore, session: UploadSession | None = None) -> Stats:
    stats = Stats()
    await transfer_blob(src, "acme/app", dst, "backup/acme/app", BLOB, stats, session, FAST_POLICY)
    return stats


def offsets(src: MemStore) -> list[int]:
    return [offset for _, _, offset in src.reads]


async def test_a_broken_read_resumes_at_the_byte_it_stopped_at() -> None:
    """A connection lost after 10 bytes resumes with a read from byte 10, in the same upload."""
    src, dst = stores()
    src.break_read(DIGEST, nth=1, after=10)
    stats = await copy(src, dst)
    assert offsets(src) == [0, 10]
    assert len(dst.writes) == 1
    assert dst.blobs["backup/acme/app"][DIGEST] == DATA
    assert stats.bytes_transferred == len(DATA)


async def test_a_source_that_refuses_to_resume_restarts_in_a_new_session() -> None:
    """If the source cannot start at byte 10, the transfer restarts from zero, never reusing the
    session that saw the failure."""
    src, dst = stores()
    src.resumable = False
    src.break_read(DIGEST, nth=1, after=10)
    mounted = UploadSession("backup/acme/app", "7")
    await copy(src, dst, mounted)
    assert offsets(src) == [0, 10, 0]
    assert [session for _, _, session in dst.writes] == [mounted, None]
    assert dst.blobs["backup/acme/app"][DIGEST] == DATA


async def test_a_read_broken_before_its_first_byte_restarts_the_transfer() -> None:
    """Nothing received means nothing to resume: the whole transfer is attempted again."""
    src, dst = stores()
    src.break_read(DIGEST, nth=1, after=0)
    await copy(src, dst)
    assert offsets(src) == [0, 0]
    assert len(dst.writes) == 2


async def test_resumes_are_bounded_then_the_transfer_restarts() -> None:
    """After SOURCE_RESUMES resumes in one attempt, the next break fails the attempt; the
    retry starts again at zero and succeeds."""
    src, dst = stores()
    for nth in range(1, SOURCE_RESUMES + 2):
        src.break_read(DIGEST, nth=nth, after=2)
    await copy(src, dst)
    expected = [2 * n for n in range(SOURCE_RESUMES + 1)] + [0]
    assert offsets(src) == expected
    assert len(dst.writes) == 2
    assert dst.blobs["backup/acme/app"][DIGEST] == DATA


async def test_a_read_cut_short_over_the_network_is_retried() -> None:
    """A body that ends early is a size mismatch from a network source: worth another attempt."""
    src, dst = stores()
    src.cut_read(DIGEST, nth=1, after=10)
    await copy(src, dst)
    assert offsets(src) == [0, 0]
    assert len(dst.writes) == 2
    assert dst.blobs["backup/acme/app"][DIGEST] == DATA


async def test_a_blob_cut_short_in_a_layout_is_final_and_names_the_layout() -> None:
    """From a local layout the same short bytes would come back: no retry, the message says so."""
    src, dst = stores(layout=True)
    src.cut_read(DIGEST, nth=1, after=10)
    with pytest.raises(SizeMismatch, match="the layout is damaged"):
        await copy(src, dst)
    assert len(dst.writes) == 1
    assert DIGEST not in dst.blobs.get("backup/acme/app", {})


async def test_bytes_that_hash_wrong_fail_after_every_attempt_with_the_cause() -> None:
    """Wrong bytes of the right length are retried up to the policy, then fail with the cause."""
    src, dst = stores()
    src.blobs["acme/app"][DIGEST] = bytes(reversed(DATA))
    with pytest.raises(TransientError, match=r"failed 3 times, last: DigestMismatch"):
        await copy(src, dst)
    assert len(dst.writes) == FAST_POLICY.attempts
    assert DIGEST not in dst.blobs.get("backup/acme/app", {})


async def test_a_blob_longer_than_its_descriptor_is_stopped_at_the_extra_byte() -> None:
    """A source that sends more than the descriptor's size is refused before the write completes."""
    src, dst = stores()
    src.blobs["acme/app"][DIGEST] = DATA + b"extra"
    with pytest.raises(TransientError, match="SizeMismatch: .* longer than its 40 bytes"):
        await copy(src, dst)
    assert DIGEST not in dst.blobs.get("backup/acme/app", {})


async def test_a_transient_write_error_is_retried_in_a_new_session() -> None:
    """A destination that fails one write gets the blob again from byte zero, without a session."""
    src, dst = stores()
    dst.fail_write(DIGEST, times=1)
    mounted = UploadSession("backup/acme/app", "3")
    stats = await copy(src, dst, mounted)
    assert [session for _, _, session in dst.writes] == [mounted, None]
    assert offsets(src) == [0, 0]
    assert dst.blobs["backup/acme/app"][DIGEST] == DATA
    assert stats.bytes_transferred == 2 * len(DATA)
