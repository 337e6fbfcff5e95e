"""The project's named loops: ``nox -s unit`` and the rest (``nox -l`` lists them).

Every session runs in the environment nox is started from (the project's .venv, after
``pip install -e '.[test,deploy]'``): none creates a virtualenv or installs anything, so
``nox`` and ``nox --no-venv`` behave alike, and CI installs once.

    nox -s lint types unit        # the quick loop: no registry, git or other binary needed
    nox -s integration            # the tests that start processes (README, Tests)
    nox -s coverage               # the whole suite under coverage, as CI runs it
    nox -s bench                  # a quick benchmark (bench/run.py; -- ARGS for a full one)
    nox -s image                  # build and run the container image (deploy/image)
    nox -s docs                   # regenerate docs/cli.md; `-- --check` fails if it is stale
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CHECKED = ["github_org_backup", "tests", "bench", "deploy", "noxfile.py"]
DEPLOY_SCRIPTS = ["deploy/image/check_sbom.py", "deploy/release/check_version.py"]
DOCS_MODULE = "github_org_backup.settings.reference"
DOCS = ROOT / "docs" / "cli.md"
# bench/run.py's quick look, with a smaller organisation to discover and one WAN round trip.
BENCH_QUICK = [
    *("--runs", "1", "--skip-scale", "--big-blob-mib", "256", "--rtt", "50"),
    *("--discovery-packages", "200", "--discovery-big", "2", "--discovery-versions", "500"),
]

nox.options.default_venv_backend = "none"  # reuse the active venv
nox.options.sessions = ["lint", "types", "unit"]
nox.options.error_on_missing_interpreters = True


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check (the versions pinned in the lint extra)."""
    session.run("ruff", "check", *CHECKED)
    session.run("ruff", "format", "--check", *CHECKED)


@nox.session(python=False)
def types(session: nox.Session) -> None:
    """mypy, strict, on the package, the tests and the benchmarks ([tool.mypy]), and the
    deploy scripts."""
    session.run("mypy", *session.posargs)
    session.run("mypy", "--strict", *DEPLOY_SCRIPTS)


@nox.session(python=False)
def unit(session: nox.Session) -> None:
    """Every test that starts no process and needs no binary: well under a minute."""
    session.run("python", "-m", "pytest", "-q", "-m", "not integration", *session.posargs)


@nox.session(python=False)
def integration(session: nox.Session) -> None:
    """The tests that start registries, git, skopeo, nginx or the CLI (README, Tests)."""
    session.run("python", "-m", "pytest", "-q", "-m", "integration", *session.posargs)


@nox.session(python=False)
def coverage(session: nox.Session) -> None:
    """The whole suite under coverage, combined and reported (fail_under in pyproject)."""
    session.run("coverage", "run", "-m", "pytest", "-q", *session.posargs)
    session.run("coverage", "combine", "-q")
    session.run("coverage", "report")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """bench/run.py: with no arguments a quick look, written to a temporary file."""
    args = session.posargs
    if not args:
        out = Path(tempfile.mkdtemp(prefix="gob-bench-")) / "RESULTS.md"
        args = [*BENCH_QUICK, "--out", str(out)]
        session.log(f"quick mode; results in {out} (pass arguments for a full run)")
    session.run("python", "bench/run.py", *args)


@nox.session(python=False)
def image(session: nox.Session) -> None:
    """The release's image build (deploy/image/build.sh) short of publishing: hadolint, build,
    SBOM checked, pushed to a loopback registry, digest checked; then run it as uid 65532."""
    session.run("bash", "deploy/image/ci-check.sh", external=True)


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """docs/cli.md from the CLI's own declarations; ``-- --check`` only compares."""
    done = subprocess.run(
        [sys.executable, "-m", DOCS_MODULE], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        session.error(f"python -m {DOCS_MODULE} failed:\n{done.stderr}")
    text = done.stdout
    if "--check" in session.posargs:
        if not DOCS.exists() or DOCS.read_text() != text:
            session.error(f"{DOCS.relative_to(ROOT)} is stale: run `nox -s docs` and commit it")
        session.log(f"{DOCS.relative_to(ROOT)} is up to date")
        return
    DOCS.write_text(text)
    session.log(f"wrote {DOCS.relative_to(ROOT)}")
