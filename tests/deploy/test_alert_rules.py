"""The shipped alert rules: valid, firing when they should and only then (promtool's own
rule tests), and written on metrics the services really serve."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import accounting.app
import analytics.app
import auth.app
import tasks.app

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")


def promtool(*arguments: str) -> str:
    done = subprocess.run([PROMTOOL, *arguments], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_is_installed_by_make_test():
    assert PROMTOOL is not None, "make test installs promtool (Debian package prometheus)"


def test_the_rules_are_valid():
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "alerts.yml")


def test_each_alert_fires_when_it_should_and_only_then():
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_test_and_a_runbook_entry():
    alerts = [rule["alert"] for group in yaml.safe_load((RULES / "alerts.yml").read_text())[
        "groups"] for rule in group["rules"]]
    tested = {test["alertname"] for case in yaml.safe_load(
        (RULES / "alerts.test.yml").read_text())["tests"] for test in case["alert_rule_test"]}
    runbook = (RULES.parents[1] / "docs" / "runbook.md").read_text()
    assert set(alerts) == tested
    assert [a for a in alerts if f"`{a}`" not in runbook] == []


def served_metric_names() -> set[str]:
    """Metrics declared on import by any service, and the gauges read at scrape time,
    which the services register when their app is built (found in their source)."""
    for app in (auth.app, tasks.app, accounting.app, analytics.app):
        assert app.__name__
    declared = set(REGISTRY._names_to_collectors)
    sources = [path.read_text() for package in ("accounting", "analytics", "auth", "tasks",
               "messaging", "platform_kit") for path in (RULES.parents[1] / package).glob("*.py")]
    scraped = {name for source in sources
               for name in re.findall(r'scrape_gauge\(\s*"(ates_[a-z_]+)"', source)}
    return declared | scraped


def test_every_metric_the_rules_read_is_served():
    expressions = [rule["expr"] for group in yaml.safe_load((RULES / "alerts.yml").read_text())[
        "groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\bates_[a-z_]+", expr)}
    assert used
    assert used - served_metric_names() == set()


def test_kubernetes_ships_the_same_rules_in_a_config_map_of_the_kustomization():
    k8s = RULES.parent / "k8s"
    config_map = yaml.safe_load((k8s / "prometheus-alerts.yaml").read_text())
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())

    assert config_map["kind"] == "ConfigMap"
    assert config_map["data"]["alerts.yml"] == (RULES / "alerts.yml").read_text()
    assert "prometheus-alerts.yaml" in kustomization["resources"]
