"""deploy/ as shipped: valid against Kubernetes schemas, hardened, and in step with the CLI."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from github_org_backup.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
WORKFLOW = ROOT / "deploy" / "github-actions" / "ghcr-backup.yml"


def tool(name: str) -> str:
    """A linter from the deploy extra: skipped without it, except in CI, which installs it."""
    path = shutil.which(name)
    if path is None and not os.environ.get("CI"):
        pytest.skip(f"{name} is missing: pip install -e '.[deploy]'")
    assert path, f"{name} is missing: CI installs .[test,deploy]"
    return path


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge for what the sharded patch uses: maps deep, containers by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {k: merge(base[k], v) if k in base else v for k, v in (base | patch).items()}
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        by_name = {i["name"]: i for i in base}
        return [merge(by_name.get(i["name"], {}), i) for i in patch]
    return patch


def sharded_cronjob() -> dict[str, Any]:
    (base,) = load(K8S / "cronjob.yaml")
    (patch,) = load(K8S / "sharded" / "cronjob-indexed.yaml")
    return merge(base, patch)


def security_problems(cronjob: dict[str, Any]) -> list[str]:
    """What a hardened, well-behaved backup CronJob must have; empty when all is there."""
    problems = []
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    context = container.get("securityContext", {})
    pod_context = pod.get("securityContext", {})
    checks = {
        "concurrencyPolicy Forbid": spec.get("concurrencyPolicy") == "Forbid",
        "startingDeadlineSeconds": isinstance(spec.get("startingDeadlineSeconds"), int),
        "activeDeadlineSeconds": isinstance(job.get("activeDeadlineSeconds"), int),
        "backoffLimit": isinstance(job.get("backoffLimit"), int),
        "runAsNonRoot": pod_context.get("runAsNonRoot") is True,
        "runAsUser 65532": pod_context.get("runAsUser") == 65532,
        "seccomp RuntimeDefault": pod_context.get("seccompProfile", {}).get("type")
        == "RuntimeDefault",
        "readOnlyRootFilesystem": context.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": context.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": context.get("capabilities", {}).get("drop") == ["ALL"],
        "resource requests": {"cpu", "memory"} <= set(container["resources"]["requests"]),
        "resource limits": {"cpu", "memory"} <= set(container["resources"]["limits"]),
        "emptyDir at /tmp": any(
            m["mountPath"] == "/tmp"
            and any(v["name"] == m["name"] and "emptyDir" in v for v in pod["volumes"])
            for m in container["volumeMounts"]
        ),
    }
    problems += [name for name, ok in checks.items() if not ok]
    grace = [a for a in container["args"] if a.startswith("--grace-period=")]
    if not grace or pod.get("terminationGracePeriodSeconds", 30) <= float(grace[0].split("=")[1]):
        problems.append("terminationGracePeriodSeconds must exceed --grace-period")
    return problems


@pytest.mark.integration  # runs a linter binary
def test_manifests_validate_against_kubernetes_schemas(tmp_path: Path) -> None:
    """Every manifest, and the sharded CronJob after its patch, passes strict validation."""
    merged = tmp_path / "cronjob-sharded.yaml"
    merged.write_text(yaml.safe_dump(sharded_cronjob()))
    files = [K8S / "configmap.yaml", K8S / "secret.yaml", K8S / "cronjob.yaml", merged]
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 5

    broken = tmp_path / "broken.yaml"
    document = sharded_cronjob()
    document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = 3
    broken.write_text(yaml.safe_dump(document))
    assert (
        subprocess.run(
            [tool("kubernetes-validate"), "--strict", str(broken)], capture_output=True, check=False
        ).returncode
        != 0
    )


@pytest.mark.parametrize("variant", ["cronjob", "sharded"])
def test_cronjob_security_settings(variant: str) -> None:
    """Non-root 65532, read-only root, no privilege escalation, no capabilities, limits, /tmp."""
    cronjob = load(K8S / "cronjob.yaml")[0] if variant == "cronjob" else sharded_cronjob()
    assert security_problems(cronjob) == []


def test_security_check_can_fail() -> None:
    """The check above notices a weakened manifest."""
    cronjob = copy.deepcopy(load(K8S / "cronjob.yaml")[0])
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    del pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    pod["terminationGracePeriodSeconds"] = 10
    assert security_problems(cronjob) == [
        "readOnlyRootFilesystem",
        "terminationGracePeriodSeconds must exceed --grace-period",
    ]


def test_sharded_variant_is_an_indexed_job_with_matching_shard_count() -> None:
    """completions = parallelism = N, and each pod runs --shard-count=N."""
    job = sharded_cronjob()["spec"]["jobTemplate"]["spec"]
    args = job["template"]["spec"]["containers"][0]["args"]
    assert job["completionMode"] == "Indexed"
    assert (
        job["completions"]
        == job["parallelism"]
        == int(next(a for a in args if a.startswith("--shard-count=")).split("=")[1])
    )


def test_kustomizations_name_existing_files() -> None:
    """Every kustomization resource and patch exists."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        (document,) = load(kustomization)
        for entry in document.get("resources", []) + [
            p["path"] for p in document.get("patches", [])
        ]:
            assert (kustomization.parent / entry).exists(), entry


def test_deployed_arguments_are_real_cli_flags() -> None:
    """The args in the manifests and the workflow parse with the CLI's own parser."""
    parser = build_parser()
    for cronjob in (load(K8S / "cronjob.yaml")[0], sharded_cronjob()):
        args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        parser.parse_args(args)
    run = next(
        s["run"]
        for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["backup"]["steps"]
        if "github-org-backup registry" in s.get("run", "")
    )
    parser.parse_args(re.sub(r'"[^"]*"', "x", run.split("github-org-backup", 1)[1]).split())


@pytest.mark.integration  # runs a linter binary
def test_workflow_passes_actionlint_and_zizmor() -> None:
    """The scheduled workflow lints clean, asks for no token permissions and never overlaps."""
    for command in (
        [tool("actionlint"), str(WORKFLOW)],
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(WORKFLOW)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key "on" as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "secrets.GHCR_BACKUP_PAT" in WORKFLOW.read_text()


@pytest.mark.integration  # runs a linter binary
def test_dockerfile_passes_hadolint_and_runs_as_65532() -> None:
    """hadolint is clean; the final stage is USER 65532 with an exec-form CLI entrypoint."""
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run(
        [tool("hadolint"), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    final = dockerfile.read_text().rsplit("\nFROM ", 1)[1]
    assert "\nUSER 65532:65532\n" in final
    assert '\nENTRYPOINT ["/opt/venv/bin/github-org-backup"]\n' in final


REPOS_CRONJOB = K8S / "repos-cronjob.yaml"
REPOS_PVC = K8S / "repos-pvc.yaml"
REPOS_WORKFLOW = ROOT / "deploy" / "github-actions" / "repos-backup.yml"


@pytest.mark.integration  # runs a linter binary
def test_repos_job_validates_is_hardened_and_parses() -> None:
    """The repos CronJob and its volume claim pass strict validation, the CronJob passes the
    same hardening checks as the registry one, and its args are real `repos` flags."""
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(REPOS_CRONJOB), str(REPOS_PVC)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 2
    (cronjob,) = load(REPOS_CRONJOB)
    assert security_problems(cronjob) == []
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "repos" and args.wikis and args.lfs


def test_repos_mirrors_live_on_the_claimed_persistent_volume() -> None:
    """--dest and --report sit on the PersistentVolumeClaim of repos-pvc.yaml, not on an
    emptyDir, and the kustomization deploys both."""
    (cronjob,) = load(REPOS_CRONJOB)
    (claim,) = load(REPOS_PVC)
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    persistent = [
        m["mountPath"]
        for m in container["volumeMounts"]
        if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
        == claim["metadata"]["name"]
    ]
    assert len(persistent) == 1
    for path in (args.dest, str(args.report)):
        assert path.startswith(persistent[0] + "/"), path
    (kustomization,) = load(K8S / "kustomization.yaml")
    assert {"repos-pvc.yaml", "repos-cronjob.yaml"} <= set(kustomization["resources"])


@pytest.mark.integration  # runs a linter binary
def test_repos_workflow_lints_clean_and_runs_real_commands() -> None:
    """The repos workflow lints clean, asks for no token permissions, never overlaps, runs on
    a self-hosted runner (a disk that outlives the job) and its commands parse."""
    for command in (
        [tool("actionlint"), str(REPOS_WORKFLOW)],
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(REPOS_WORKFLOW)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(REPOS_WORKFLOW.read_text())
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    job = workflow["jobs"]["backup"]
    assert "self-hosted" in job["runs-on"]["labels"]
    run = next(s["run"] for s in job["steps"] if "github-org-backup repos" in s.get("run", ""))
    parser = build_parser()
    for line in run.strip().splitlines():
        parser.parse_args(re.sub(r'"[^"]*"', "x", line.split("github-org-backup", 1)[1]).split())


def test_image_installs_git_and_git_lfs() -> None:
    """The final stage installs git and git-lfs, which the repos command runs."""
    final = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    install = next(line for line in final.splitlines() if "apt-get install" in line)
    assert {"git", "git-lfs"} <= set(install.split())


def test_deployed_versions_are_the_package_version() -> None:
    """The version is written once (backup.__version__); every pinned image and pip install
    in deploy/ names that version, and the installed package reports it."""
    import importlib.metadata

    from github_org_backup import __version__

    assert importlib.metadata.version("github-org-backup") == __version__
    pins = []
    for path in (ROOT / "deploy").rglob("*.y*ml"):
        pins += re.findall(r"github-org-backup(?::|==)([0-9][0-9A-Za-z.+-]*)", path.read_text())
    assert pins and set(pins) == {__version__}
