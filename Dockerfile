# syntax=docker/dockerfile:1
# github-org-backup: a rootless image whose entrypoint is the CLI.
#
# BASE is any Debian 12 (bookworm) image with python3 and python3-venv; the two stages must
# share it, because the virtual environment points at the base's interpreter.
#   docker build -t github-org-backup .
#   buildah bud --isolation chroot --build-arg BASE=localhost/github-org-backup-base:bookworm .
ARG BASE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE} AS build
# Set PIP_CERT (and mount that file) when PyPI is reached through a TLS-intercepting proxy.
ARG PIP_CERT=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY github_org_backup ./github_org_backup
RUN python3 -m venv /opt/venv \
    && if [ -z "${PIP_CERT}" ]; then unset PIP_CERT; fi \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
# git and git-lfs for the repos command. Not pinned: Debian security updates replace the
# exact versions; pin the BASE image by digest for a reproducible build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git git-lfs ca-certificates \
    && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="github-org-backup" \
      org.opencontainers.image.description="Back up a GitHub organisation's container images into a registry you own, byte-exact, and its git repositories as bare mirrors." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/github-org-backup/github-org-backup"
COPY --from=build /opt/venv /opt/venv
# Runs with a read-only root filesystem: nothing is written outside /tmp or a mounted volume.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["/opt/venv/bin/github-org-backup"]
CMD ["--help"]
