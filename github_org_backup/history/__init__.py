"""What a backup remembers: snapshots, retention, the history index, recording a run, prune."""
