"""Every overlay renders, and everything it renders is valid for its kind.

Core kinds are checked against Kubernetes' own OpenAPI schemas (strict: an
unknown field fails), custom resources against the CRD schemas vendored in
deploy/schemas/ (strict too). Both run offline.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections import Counter
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from cli.mesh import SERVICE_NAMES
from tests.deploy.conftest import OVERLAYS, ROOT, SCHEMAS, Doc, Manifests

# The oldest Kubernetes the manifests support (gRPC probes, matchLabelKeys and
# unhealthyPodEvictionPolicy are all on by default from 1.27) and a recent one.
KUBERNETES_VERSIONS = ("1.30", "1.33")

# Kinds that Kubernetes itself serves; everything else needs a vendored schema.
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}


def is_core(doc: Doc) -> bool:
    return doc["apiVersion"] in CORE_GROUPS


@cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> JSON Schema, for every file in deploy/schemas/."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        key = (
            schema["properties"]["apiVersion"]["enum"][0],
            schema["properties"]["kind"]["enum"][0],
        )
        schemas[key] = schema
    return schemas


def crd_errors(doc: Doc) -> list[str]:
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        return [f"no schema in deploy/schemas/ for {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def core_error(doc: Doc, version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(map(str, e.path))}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return e.message
    return None


def where(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_without_duplicates(rendered: dict[str, Manifests], overlay: str) -> None:
    docs = rendered[overlay].docs
    assert docs, f"{overlay} rendered nothing"
    counts = Counter((d["kind"], d["metadata"]["name"]) for d in docs)
    assert [k for k, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_kinds_are_valid_kubernetes(
    rendered: dict[str, Manifests], overlay: str, version: str
) -> None:
    errors = {}
    for doc in rendered[overlay].docs:
        if is_core(doc) and (error := core_error(doc, version)):
            errors[where(doc)] = error
    assert errors == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_their_crds(rendered: dict[str, Manifests], overlay: str) -> None:
    errors = {}
    for doc in rendered[overlay].docs:
        if not is_core(doc) and (problems := crd_errors(doc)):
            errors[where(doc)] = problems
    assert errors == {}


def test_prod_uses_every_vendored_schema(rendered: dict[str, Manifests]) -> None:
    used = {(d["apiVersion"], d["kind"]) for d in rendered["prod"].docs if not is_core(d)}
    assert used == set(crd_schemas())


def test_vendored_schemas_match_their_sources() -> None:
    result = subprocess.run(
        [sys.executable, str(SCHEMAS / "crd2jsonschema.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_validators_reject_a_misspelt_field(rendered: dict[str, Manifests]) -> None:
    """Strictness is what makes the checks above worth having: prove it."""
    prod = rendered["prod"]
    deployment = copy.deepcopy(prod.get("Deployment", "intake"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert core_error(deployment, KUBERNETES_VERSIONS[-1]) is not None

    scaled = copy.deepcopy(prod.get("ScaledObject", "email"))
    scaled["spec"]["minReplicas"] = 2
    assert any("minReplicas" in e for e in crd_errors(scaled))

    monitor = copy.deepcopy(prod.get("ServiceMonitor", "intake"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("intervall" in e for e in crd_errors(monitor))


def test_every_deployable_service_has_a_deployment(base: Manifests) -> None:
    deployable = sorted(p.parent.name for p in (ROOT / "services").glob("*/__main__.py"))
    deployed = sorted(name for name, _, _ in base.deployments())
    missing = sorted(set(deployable) - set(deployed))
    assert not missing, (
        f"services without manifests: {missing}; add deploy/k8s/base/<name>.yaml "
        "(Deployment, Service, PodDisruptionBudget; copy frequency.yaml) and list it "
        "in deploy/k8s/base/kustomization.yaml"
    )
    assert deployed == sorted(SERVICE_NAMES)


def test_prometheus_rules_match_deploy_monitoring() -> None:
    script = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "sync_rules.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
