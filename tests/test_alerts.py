"""deploy/prometheus: the alert rules pass promtool, and every query names an exported metric."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from github_org_backup.output.metrics import IMAGES, _registry
from github_org_backup.output.report import Counts, Discovery, HistoryOutcome, RunReport
from tests.harness.clirun import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
_METRIC = re.compile(r"\bgithub_org_backup_[a-z_]+\b")


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus")
    result = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _exported() -> set[str]:
    """Every metric name a run publishes, with every optional field of the summary present."""
    report = RunReport(
        Counts(images_copied=1, bytes_copied=1, duration_s=1.0),
        discovery=Discovery(2, 0, 3, 4999, False, None, "absent", 0, 0, 0, 2),
        history=HistoryOutcome("20261129T171538.123Z"),
    )
    registry = _registry(IMAGES, report, succeeded=True, last_success=1.0)
    return {metric.name for metric in registry.collect()}


def _rule_exprs(groups: list[dict[str, Any]]) -> list[str]:
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    """promtool accepts the rules file, and its unit tests fire each alert when they should."""
    assert "SUCCESS: 6 rules found" in _promtool("check", "rules", "rules.yml")
    assert "SUCCESS" in _promtool("test", "rules", "rules_test.yml")


def test_prometheus_rule_carries_the_same_groups(tmp_path: Path) -> None:
    """The Operator resource holds exactly the plain file's groups, and promtool accepts them."""
    plain = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    resource = yaml.safe_load((PROMETHEUS / "prometheusrule.yaml").read_text())
    assert (resource["apiVersion"], resource["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert resource["spec"]["groups"] == plain["groups"]
    extracted = tmp_path / "extracted.yml"
    extracted.write_text(yaml.safe_dump({"groups": resource["spec"]["groups"]}))
    assert "SUCCESS" in _promtool("check", "rules", str(extracted))


def test_every_alert_names_an_exported_metric() -> None:
    """A rule over a metric nobody exports would never fire: each names only real ones."""
    exported = _exported()
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert {
        "GitHubOrgBackupStale",
        "GitHubOrgBackupLastRunFailed",
        "GitHubOrgBackupImagesFailing",
        "GitHubOrgBackupRateLimitLow",
        "GitHubOrgBackupTagsMoved",
    } <= alerts
    for expr in _rule_exprs(groups):
        named = set(_METRIC.findall(expr))
        assert named and named <= exported, (expr, named - exported)


def test_dashboard_queries_name_exported_metrics() -> None:
    """Every Grafana panel and variable query names at least one metric, and only exported ones."""
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    exported = _exported()
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(queries) >= len(dashboard["panels"]) >= 6
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for query in queries:
        named = set(_METRIC.findall(query))
        assert named and named <= exported, (query, named - exported)
    used = {name for query in queries for name in _METRIC.findall(query)}
    assert used == exported  # every exported metric has a panel


def test_every_alert_has_a_runbook_entry() -> None:
    """docs/operations.md explains each alert under a heading with its name."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert f"### {rule['alert']}" in operations, rule["alert"]
        assert f"docs/operations.md#{rule['alert'].lower()}" in rule["annotations"]["description"]
