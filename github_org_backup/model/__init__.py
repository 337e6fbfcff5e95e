"""The values the stages pass along: image references, OCI manifests, copy specs, discovered
packages, and the names the tool reserves in a backup."""
