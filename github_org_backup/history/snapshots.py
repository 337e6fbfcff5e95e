"""The names the snapshot code had before it was split by job, for the modules that still
import them from here: history.model (values, ids, durations), history.retention, history.index
(the history index) and history.store (snapshots in a Store)."""

from github_org_backup.history.model import (
    Snapshot,
    TaggedImage,
    id_time,
    moved_tags,
    new_snapshot,
    parse_duration,
    parse_timestamp,
    snapshot_id,
)
from github_org_backup.history.retention import select_kept
from github_org_backup.history.store import Snapshots

__all__ = [
    "Snapshot",
    "Snapshots",
    "TaggedImage",
    "id_time",
    "moved_tags",
    "new_snapshot",
    "parse_duration",
    "parse_timestamp",
    "select_kept",
    "snapshot_id",
]
