"""What a run tells people and machines: the report, progress, the job summary and metrics."""
