"""The rendered Kubernetes manifests, once per run, and ways to look into them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
OVERLAYS = ("dev", "prod")

KUBECTL_MISSING = """kubectl was not found (looked at $KUBECTL, then PATH).
These tests render deploy/k8s with `kubectl kustomize` (kustomize v5, kubectl >= 1.27).
Install it: on Debian/Ubuntu with the Kubernetes or Google Cloud apt repository,
`apt-get install kubectl`; otherwise see https://kubernetes.io/docs/tasks/tools/.
Or point $KUBECTL at a kubectl binary."""

Doc = dict[str, Any]


def kubectl() -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not path or not Path(path).exists():
        pytest.fail(KUBECTL_MISSING, pytrace=False)
    return path


def render(directory: Path) -> list[Doc]:
    """`kubectl kustomize DIR`, parsed."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class Manifests:
    """One rendered overlay."""

    overlay: str
    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert found, f"{self.overlay}: no {kind} named {name}"
        return found[0]

    def named(self, kind: str, prefix: str) -> Doc:
        """A generated object (ConfigMap, Secret) by its name before the hash suffix."""
        found = [
            d
            for d in self.of_kind(kind)
            if d["metadata"]["name"] == prefix or d["metadata"]["name"].startswith(prefix + "-")
        ]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {prefix}, got {len(found)}"
        return found[0]

    def deployments(self) -> Iterator[tuple[str, Doc, Doc]]:
        """(name, deployment, its sendmesh container) for every sendmesh service."""
        for d in self.of_kind("Deployment"):
            labels = d["metadata"].get("labels", {})
            if labels.get("app.kubernetes.io/part-of") == "sendmesh":
                container = d["spec"]["template"]["spec"]["containers"][0]
                yield d["metadata"]["name"], d, container

    def config(self) -> dict[str, str]:
        data: dict[str, str] = self.named("ConfigMap", "sendmesh-config")["data"]
        return data


@pytest.fixture(scope="session")
def rendered() -> dict[str, Manifests]:
    return {name: Manifests(name, render(K8S / "overlays" / name)) for name in OVERLAYS}


@pytest.fixture(scope="session")
def base() -> Manifests:
    return Manifests("base", render(K8S / "base"))


def env_of(container: Doc) -> dict[str, Doc]:
    """The container's env entries by name."""
    return {e["name"]: e for e in container.get("env", [])}


def port_of(container: Doc, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container has no port named {name}: {ports}"
    port: int = ports[name]
    return port


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
