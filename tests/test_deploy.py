"""deploy/ as shipped: valid against Kubernetes schemas, hardened, and in step with the CLI."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from github_org_backup import __version__
from github_org_backup.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
CRONJOB = K8S / "images" / "job" / "cronjob.yaml"
WORKFLOW = ROOT / "deploy" / "github-actions" / "ghcr-backup.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
IMAGE = "ghcr.io/github-org-backup/github-org-backup"
# What `kubectl apply -k` of each kustomization creates, as (kind, name).
SHARED = {
    ("Namespace", "github-org-backup"),
    ("ConfigMap", "github-org-backup"),
    ("Secret", "github-org-backup-token"),
}
IMAGES_JOB = {("Secret", "github-org-backup-docker-config"), ("CronJob", "github-org-backup")}
REPOS_JOB = {
    ("PersistentVolumeClaim", "github-org-backup-repos"),
    ("CronJob", "github-org-backup-repos"),
}
CREATES = {
    ".": SHARED | IMAGES_JOB | REPOS_JOB,
    "images": SHARED | IMAGES_JOB,
    "repos": SHARED | REPOS_JOB,
    "sharded": SHARED | IMAGES_JOB,
}


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
    (base,) = load(CRONJOB)
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


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k directory` would send, rendered by kubectl's own kustomize."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for d in documents
        if d["kind"] == "CronJob"
        for c in d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    ]


def script(relative: str) -> ModuleType:
    """A script of deploy/, imported from its path (its name is no module name)."""
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration  # runs kubectl and a linter binary
@pytest.mark.parametrize("variant", sorted(CREATES))
def test_each_kustomization_creates_its_namespace_and_validates(
    variant: str, tmp_path: Path
) -> None:
    """`kubectl apply -k` works on a fresh cluster: the rendered output holds the Namespace,
    first, every other object in it, exactly the objects docs/deploy.md lists, the versioned
    image, and passes strict schema validation."""
    documents = kustomize(K8S / variant)
    assert {(d["kind"], d["metadata"]["name"]) for d in documents} == CREATES[variant]
    assert documents[0]["kind"] == "Namespace"
    namespace = documents[0]["metadata"]["name"]
    assert all(d["metadata"]["namespace"] == namespace for d in documents[1:])
    assert {c["image"] for c in containers(documents)} == {f"{IMAGE}:{__version__}"}
    for document in documents:
        if document["kind"] == "CronJob":
            assert security_problems(document) == [], document["metadata"]["name"]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(documents)


@pytest.mark.integration  # runs kubectl and a linter binary
def test_rendered_sharded_job_matches_the_patch_and_broken_manifests_fail(tmp_path: Path) -> None:
    """kustomize's strategic merge of sharded/ gives what the unit tests' merge() gives, and
    the schema check rejects a broken CronJob."""
    (rendered,) = [d for d in kustomize(K8S / "sharded") if d["kind"] == "CronJob"]
    expected = sharded_cronjob()
    job = rendered["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert (
        job["template"]["spec"]["containers"][0]["args"]
        == (expected["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])
    )
    rendered["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = 3
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(rendered))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(broken)], capture_output=True, check=False
    )
    assert result.returncode != 0


@pytest.mark.integration  # runs kubectl
def test_an_overlay_points_every_job_at_your_own_image(tmp_path: Path) -> None:
    """docs/deploy.md's own-image overlay: one `images:` entry changes both jobs' image, and a
    `namespace:` line moves everything, the Namespace itself included."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "backups",
                "resources": [os.path.relpath(K8S, tmp_path)],
                "images": [
                    {
                        "name": IMAGE,
                        "newName": "registry.example.com/you/github-org-backup",
                        "newTag": "9.9.9",
                    }
                ],
            }
        )
    )
    documents = kustomize(tmp_path)
    images = [c["image"] for c in containers(documents)]
    assert images == ["registry.example.com/you/github-org-backup:9.9.9"] * 2
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in documents} == {"backups"}


def test_kustomizations_share_one_base_and_one_version() -> None:
    """images/ and repos/ each add their job (a Component) to base/; the top level adds both;
    each sets the namespace base/ creates and the image at the package's version."""
    (namespace,) = load(K8S / "base" / "namespace.yaml")
    assert namespace["kind"] == "Namespace"
    expected = {".": ["images/job", "repos/job"], "images": ["job"], "repos": ["job"]}
    for variant, components in expected.items():
        (document,) = load(K8S / variant / "kustomization.yaml")
        assert document["kind"] == "Kustomization"
        assert document["resources"] == ["../base" if variant != "." else "base"]
        assert document["components"] == components
        assert document["namespace"] == namespace["metadata"]["name"]
        assert document["images"] == [{"name": IMAGE, "newTag": __version__}]
    for job in ("images", "repos"):
        (component,) = load(K8S / job / "job" / "kustomization.yaml")
        assert component["kind"] == "Component"
    (sharded,) = load(K8S / "sharded" / "kustomization.yaml")
    assert sharded["resources"] == ["../images"]


@pytest.mark.parametrize("variant", ["cronjob", "sharded"])
def test_cronjob_security_settings(variant: str) -> None:
    """Non-root 65532, read-only root, no privilege escalation, no capabilities, limits, /tmp."""
    cronjob = load(CRONJOB)[0] if variant == "cronjob" else sharded_cronjob()
    assert security_problems(cronjob) == []


def test_security_check_can_fail() -> None:
    """The check above notices a weakened manifest."""
    cronjob = copy.deepcopy(load(CRONJOB)[0])
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
    """Every kustomization resource, component and patch exists."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        (document,) = load(kustomization)
        for entry in (
            document.get("resources", [])
            + document.get("components", [])
            + [p["path"] for p in document.get("patches", [])]
        ):
            assert (kustomization.parent / entry).exists(), entry


def run_lines(workflow: Path, command: str) -> list[str]:
    """The lines of the workflow's run scripts that call `github-org-backup COMMAND`."""
    steps = yaml.safe_load(workflow.read_text())["jobs"]["backup"]["steps"]
    return [
        line.strip()
        for s in steps
        for line in s.get("run", "").splitlines()
        if line.strip().startswith(f"github-org-backup {command}")
    ]


def parse_line(line: str) -> Any:
    return build_parser().parse_args(re.sub(r'"[^"]*"', "x", line).split()[1:])


def test_deployed_arguments_are_real_cli_flags() -> None:
    """The args in the manifests and the workflow parse with the CLI's own parser."""
    parser = build_parser()
    for cronjob in (load(CRONJOB)[0], sharded_cronjob()):
        args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        parser.parse_args(args)
    (line,) = run_lines(WORKFLOW, "registry")
    parse_line(line)


def zizmor_and_actionlint(workflow: Path) -> None:
    for command in (
        [tool("actionlint"), str(workflow)],
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(workflow)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration  # runs a linter binary
def test_workflow_passes_actionlint_and_zizmor() -> None:
    """The scheduled workflow lints clean, asks for no token permissions and never overlaps."""
    zizmor_and_actionlint(WORKFLOW)
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


REPOS_CRONJOB = K8S / "repos" / "job" / "cronjob.yaml"
REPOS_PVC = K8S / "repos" / "job" / "pvc.yaml"
REPOS_WORKFLOW = ROOT / "deploy" / "github-actions" / "repos-backup.yml"


def test_repos_job_is_hardened_and_parses() -> None:
    """The repos CronJob passes the same hardening checks as the registry one, and its args
    are real `repos` flags (the kustomize test above validates it against the schemas)."""
    (cronjob,) = load(REPOS_CRONJOB)
    assert security_problems(cronjob) == []
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "repos" and args.wikis and args.lfs


def test_repos_mirrors_live_on_the_claimed_persistent_volume() -> None:
    """--dest and --report sit on the PersistentVolumeClaim of pvc.yaml, not on an emptyDir,
    and the repos component deploys both."""
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
    (component,) = load(K8S / "repos" / "job" / "kustomization.yaml")
    assert set(component["resources"]) == {"pvc.yaml", "cronjob.yaml"}


@pytest.mark.integration  # runs a linter binary
def test_repos_workflow_lints_clean_and_runs_real_commands() -> None:
    """The repos workflow lints clean, asks for no token permissions, never overlaps, runs on
    a self-hosted runner (a disk that outlives the job) and its commands parse."""
    zizmor_and_actionlint(REPOS_WORKFLOW)
    workflow = yaml.safe_load(REPOS_WORKFLOW.read_text())
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    job = workflow["jobs"]["backup"]
    assert "self-hosted" in job["runs-on"]["labels"]
    lines = run_lines(REPOS_WORKFLOW, "repos") + run_lines(REPOS_WORKFLOW, "verify")
    assert len(lines) == 2
    for line in lines:
        parse_line(line)


@pytest.mark.parametrize("workflow", [WORKFLOW, REPOS_WORKFLOW], ids=["ghcr", "repos"])
def test_backup_workflows_install_into_a_venv_and_keep_what_the_run_writes(
    workflow: Path,
) -> None:
    """No `pip --user` (PEP 668 refuses it on Debian and Ubuntu 24.04 runners): the pip that
    installs is a fresh venv's. The report and the metrics file go to a directory made
    beforehand and uploaded as an artifact even when the backup step fails; the Pushgateway
    is a variable's; GITHUB_STEP_SUMMARY is the runner's (no container job hides it)."""
    job = yaml.safe_load(workflow.read_text())["jobs"]["backup"]
    assert not [s for s in job["steps"] if "--user" in s.get("run", "")]
    assert "container" not in job
    install = job["steps"][0]["run"]
    venv = re.search(r'python3 -m venv "([^"]+)"', install)
    assert venv, install
    pips = re.findall(r"(\S*pip\"?) install", install)
    assert pips == [f'"{venv[1]}/bin/pip"'], pips
    assert f'echo "{venv[1]}/bin" >> "$GITHUB_PATH"' in install
    made = re.findall(r'mkdir -p "([^"]+)"', install)
    (backup,) = [s for s in job["steps"] if "github-org-backup " in s.get("run", "")]
    assert backup["env"]["PUSHGATEWAY_URL"] == "${{ vars.PUSHGATEWAY_URL }}"
    (command,) = [line for line in backup["run"].splitlines() if "--report" in line]
    outputs = re.findall(r'--(?:report|metrics-file) "([^"]+)"', command)
    assert len(outputs) == 2 and {str(Path(o).parent) for o in outputs} == set(made), outputs
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-art")]
    assert upload["if"] == "${{ !cancelled() }}"
    assert upload["with"]["path"].rstrip("/") == made[0].replace(
        "$RUNNER_TEMP", "${{ runner.temp }}"
    )


def test_image_installs_git_and_git_lfs() -> None:
    """The final stage installs git and git-lfs, which the repos command runs."""
    final = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    install = next(line for line in final.splitlines() if "apt-get install" in line)
    assert {"git", "git-lfs"} <= set(install.split())


def test_deployed_versions_are_the_package_version() -> None:
    """The version is written once (backup.__version__); every pinned image, pip install and
    kustomization image tag in deploy/, and every image in docs/deploy.md, names that
    version, and the installed package reports it."""
    import importlib.metadata

    assert importlib.metadata.version("github-org-backup") == __version__
    pins = []
    tags = []
    for path in [*(ROOT / "deploy").rglob("*.y*ml"), ROOT / "docs" / "deploy.md"]:
        text = path.read_text()
        pins += re.findall(r"github-org-backup(?::|==)([0-9][0-9A-Za-z.+-]*)", text)
        tags += re.findall(r"newTag: \"?([^\"\s]+)", text)
    assert pins and set(pins) == {__version__}
    assert tags and set(tags) == {__version__}


def uses_lines(workflow: Path) -> list[str]:
    return re.findall(r"uses: (\S+.*)", workflow.read_text())


@pytest.mark.parametrize("workflow", [WORKFLOW, REPOS_WORKFLOW, RELEASE], ids=lambda p: p.stem)
def test_actions_are_pinned_by_commit_and_no_run_script_expands_an_expression(
    workflow: Path,
) -> None:
    """Every action is pinned to a full commit SHA with its version in a comment, and no
    `run:` holds a `${{ }}` (values reach scripts through env:, never as code)."""
    lines = uses_lines(workflow)
    assert lines, workflow
    for line in lines:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line
    for job in yaml.safe_load(workflow.read_text())["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step


@pytest.mark.integration  # runs a linter binary
def test_release_workflow_passes_actionlint_and_zizmor() -> None:
    zizmor_and_actionlint(RELEASE)


def test_release_workflow_checks_the_tag_signs_attests_and_publishes_with_least_rights() -> None:
    """On a v* tag: the tag is checked against pyproject's version first; the image job runs
    deploy/image/build.sh to ghcr.io/<owner>, signs keyless, attaches the CycloneDX SBOM and
    provenance; PyPI gets the dists by trusted publishing. Each job has only the rights it
    uses, and the workflow token has none by default."""
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    rights = {name: job.get("permissions") for name, job in jobs.items()}
    assert rights == {
        "version": {"contents": "read"},
        "dist": {"contents": "read"},
        "image": {
            "contents": "read",
            "packages": "write",
            "id-token": "write",
            "attestations": "write",
            "artifact-metadata": "write",
        },
        "pypi": {"id-token": "write"},
    }
    assert "version" in jobs["dist"]["needs"] and "version" in jobs["image"]["needs"]
    assert set(jobs["pypi"]["needs"]) >= {"dist", "image"}

    def runs(job: str) -> str:
        return "\n".join(s.get("run", "") for s in jobs[job]["steps"])

    def actions(job: str) -> list[dict[str, Any]]:
        return [s for s in jobs[job]["steps"] if "uses" in s]

    assert 'deploy/release/check_version.py --tag "$TAG"' in runs("version")
    assert jobs["version"]["steps"][-1]["env"]["TAG"] == "${{ github.ref_name }}"
    image = runs("image")
    assert 'image="ghcr.io/${OWNER,,}/github-org-backup"' in image
    assert 'bash deploy/image/build.sh "$image:$VERSION"' in image
    assert "deploy/image/check_sbom.py" in image
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in image
    assert "cosign attest --yes --type cyclonedx --predicate" in image
    attests = [s for s in actions("image") if s["uses"].startswith("actions/attest@")]
    assert [s["with"].get("sbom-path") is not None for s in attests] == [False, True]
    assert all(s["with"]["push-to-registry"] is True for s in attests)
    (publish,) = [s for s in actions("pypi") if s["uses"].startswith("pypa/gh-action-pypi")]
    assert "with" not in publish  # no password: trusted publishing
    assert jobs["pypi"]["environment"]["name"] == "pypi"
    assert "secrets." not in RELEASE.read_text()


def test_check_version_accepts_only_the_tag_of_the_declared_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check_version.py reads the dynamic version as setuptools does, and a tag naming any
    other version fails the release before anything is built."""
    check = script("deploy/release/check_version.py")
    assert check.declared_version() == __version__
    assert check.main(["--tag", f"v{__version__}"]) == 0
    assert capsys.readouterr().out == f"{__version__}\n"
    assert check.main(["--tag", "v99.0.0"]) == 1
    assert check.main(["--tag", __version__]) == 1  # the v is part of the tag
    assert "does not name the version" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2.0.1"\n')
    assert check.main(["--tag", "v2.0.1"], root=tmp_path) == 0


def cyclonedx(**versions: str) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"type": "library", "name": name.replace("_", "-"), "version": version}
            for name, version in versions.items()
        ],
    }


def test_sbom_check_wants_cyclonedx_listing_each_package_with_a_version() -> None:
    check = script("deploy/image/check_sbom.py")
    wanted = [f"github-org-backup={__version__}", "aiohttp"]
    good = cyclonedx(github_org_backup=__version__, aiohttp="3.13.5", yarl="1.9")
    assert check.problems(good, wanted) == (
        [],
        {"github-org-backup": __version__, "aiohttp": "3.13.5"},
    )
    assert check.problems(cyclonedx(github_org_backup=__version__), wanted)[0] == [
        "aiohttp is not listed"
    ]
    assert check.problems(cyclonedx(github_org_backup="0.0.1", aiohttp=""), wanted)[0] == [
        f"github-org-backup is listed as 0.0.1, expected {__version__}",
        "aiohttp is listed without a version",
    ]
    assert check.problems({"spdxVersion": "SPDX-2.3"}, wanted)[0] == [
        "not a CycloneDX document (bomFormat is not CycloneDX)"
    ]


@pytest.mark.integration  # runs cyclonedx-py
def test_sbom_check_reads_what_cyclonedx_py_writes(tmp_path: Path) -> None:
    """build.sh's SBOM tool, run on this environment, writes what check_sbom.py accepts."""
    sbom = tmp_path / "sbom.cdx.json"
    result = subprocess.run(
        [tool("cyclonedx-py"), "environment", "--of", "JSON", "-o", str(sbom), sys.executable],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    check = script("deploy/image/check_sbom.py")
    assert check.main([str(sbom), f"github-org-backup={__version__}", "aiohttp"]) == 0
    assert json.loads(sbom.read_text())["bomFormat"] == "CycloneDX"


def test_build_script_is_what_ci_and_the_release_run() -> None:
    """One build: ci-check.sh (nox -s image, run by .ci/run) and release.yml both run
    build.sh, which builds, writes the SBOM, pushes and prints the digest."""
    build = (ROOT / "deploy" / "image" / "build.sh").read_text()
    for step in ("buildah bud", "cyclonedx-py", "--digestfile", 'echo "image digest: $digest"'):
        assert step in build, step
    assert "bash deploy/image/build.sh" in (ROOT / "deploy" / "image" / "ci-check.sh").read_text()
    assert "bash deploy/image/build.sh" in RELEASE.read_text()
    assert "nox --no-venv -s image" in (ROOT / ".ci" / "run").read_text()


def test_deploy_doc_covers_each_way_and_the_release_identity() -> None:
    """docs/deploy.md: every kustomization with what it creates, the workflows, docker run,
    the exact signing identity release.yml gives, the attestation checks, and building your
    own image."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for variant in CREATES:
        target = "deploy/kubernetes" if variant == "." else f"deploy/kubernetes/{variant}"
        assert f"kubectl apply -k {target}\n" in doc, target
    words = " ".join(doc.split())
    for kind, name in set().union(*CREATES.values()):
        assert f"{kind} `{name}`" in words, (kind, name)
    identity = (
        "https://github.com/github-org-backup/github-org-backup/.github/workflows/"
        f"release.yml@refs/tags/v{__version__}"
    )
    assert RELEASE.relative_to(ROOT).as_posix() == ".github/workflows/release.yml"
    for needed in (
        f"cosign verify {IMAGE}:{__version__}",
        identity,
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "cosign verify-attestation",
        "--type cyclonedx",
        "gh attestation verify",
        "buildah bud",
        "docker build",
        "docker run",
        "newName:",
        "deploy/github-actions/ghcr-backup.yml",
        "deploy/github-actions/repos-backup.yml",
        "PUSHGATEWAY_URL",
    ):
        assert needed in doc, needed
