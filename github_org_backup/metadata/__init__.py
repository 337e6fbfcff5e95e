"""What lives only in GitHub's database, backed up beside the mirrors: issues, pull requests,
releases and their assets, labels, milestones and the organisation's own configuration."""
