"""Container and Kubernetes files: the manifests validate against the Kubernetes schemas (no cluster here)."""

from __future__ import annotations

import copy
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
