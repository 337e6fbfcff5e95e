"""github-org-backup: copy a GitHub organisation's container images into a registry you own."""

__version__ = "0.1.0"
