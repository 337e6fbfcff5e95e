"""What every stage leans on: bounds, retries, fan-out, bounded JSON, atomic files, logs and
redaction."""
