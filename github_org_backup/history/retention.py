"""Retention: which snapshots a policy keeps, and why (as restic's ``ApplyPolicy`` says
why with its ``KeepReason``s). The latest is always kept; without a rule, every one is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from github_org_backup.history.model import id_time

KeepReason = Literal["latest", "last", "within", "no policy"]


@dataclass(frozen=True)
class Retention:
    keep_last: int | None = None
    keep_within: timedelta | None = None

    @property
    def forgets(self) -> bool:
        return self.keep_last is not None or self.keep_within is not None

    def apply(
        self, ids: Sequence[str], now: datetime | None = None
    ) -> dict[str, tuple[KeepReason, ...]]:
        """Each snapshot this policy keeps, with why; those it forgets are absent."""
        return apply_policy(ids, keep_last=self.keep_last, keep_within=self.keep_within, now=now)


def apply_policy(
    ids: Sequence[str],
    *,
    keep_last: int | None = None,
    keep_within: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, tuple[KeepReason, ...]]:
    """The snapshots a retention policy keeps, oldest first, each with the reasons it is kept:
    ``latest`` (always), ``last`` (among --keep-last), ``within`` (--keep-within), or
    ``no policy`` (without a rule every snapshot is kept)."""
    ordered = sorted(ids)
    if not ordered:
        return {}
    if keep_last is None and keep_within is None:
        return {i: ("no policy",) for i in ordered}
    reasons: dict[str, list[KeepReason]] = {i: [] for i in ordered}
    reasons[ordered[-1]].append("latest")
    if keep_last:
        for i in ordered[-keep_last:]:
            reasons[i].append("last")
    if keep_within is not None:
        now = now or datetime.now(UTC)
        for i in ordered:
            if now - id_time(i) <= keep_within:
                reasons[i].append("within")
    return {i: tuple(found) for i, found in reasons.items() if found}


def select_kept(
    ids: Sequence[str],
    *,
    keep_last: int | None = None,
    keep_within: timedelta | None = None,
    now: datetime | None = None,
) -> set[str]:
    """The snapshots a retention policy keeps. The latest is always kept; no policy keeps all."""
    return set(apply_policy(ids, keep_last=keep_last, keep_within=keep_within, now=now))


def describe(kept: Mapping[str, Sequence[KeepReason]]) -> dict[str, str]:
    """Each kept snapshot's reasons as one text, for a log event."""
    return {i: ",".join(reasons) for i, reasons in kept.items()}
