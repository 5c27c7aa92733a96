"""The Prometheus alerting rules (deploy/prometheus) are valid, fire as their unit tests say, and each has an
entry in the operations runbook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

RULES = REPO / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found: tools/system-deps.sh installs Debian's prometheus package")
        pytest.skip("promtool not found (Debian's prometheus package)")
    return found


@pytest.mark.parametrize(
    "command", [["check", "rules", "tradedb-alerts.yaml"], ["test", "rules", "tradedb-alerts.test.yaml"]]
)
def test_promtool_accepts_the_rules_and_their_unit_tests(promtool: str, command: list[str]) -> None:
    done = subprocess.run([promtool, *command], cwd=RULES, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_is_unit_tested_and_explained_in_the_runbook() -> None:
    rules = yaml.safe_load((RULES / "tradedb-alerts.yaml").read_text())
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    tested = {
        case["alertname"]
        for t in yaml.safe_load((RULES / "tradedb-alerts.test.yaml").read_text())["tests"]
        for case in t["alert_rule_test"]
    }
    runbook = (REPO / "docs" / "runbook.md").read_text()
    headings = set(re.findall(r"(?m)^### (\w+)$", runbook))
    assert len(alerts) >= 8
    assert sorted(set(alerts) - tested) == []
    assert sorted(set(alerts) - headings) == []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}"
