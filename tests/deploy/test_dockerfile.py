"""The Dockerfile's promises, read from the file (no Docker engine needed).

Building the image is CI's job where an engine exists; these checks keep
the file honest where none does.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest

from cli.mesh import SERVICE_NAMES, MeshConfig
from tests.deploy.conftest import ROOT, Manifests

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UID = 10001


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, instructions with continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
    return args, stages


def base_image(stage: Stage, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage.base)


def test_every_stage_is_python_3_11_slim() -> None:
    args, stages = parse()
    assert [s.name for s in stages] == ["builder", "runtime"]
    for stage in stages:
        assert re.fullmatch(
            r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base_image(stage, args)
        )


def test_runtime_runs_as_the_uid_the_pods_require(base: Manifests) -> None:
    _, stages = parse()
    runtime = stages[-1]
    assert runtime.all("USER") == [f"{UID}:{UID}"]
    # Numeric, so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    for _, deployment, _ in base.deployments():
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == UID


def test_runtime_has_no_build_tools_and_no_sources() -> None:
    _, stages = parse()
    runtime = stages[-1]
    for command in runtime.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|gcc|make)\b", command), command
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert not runtime.all("ADD")


def test_builder_generates_protos_and_installs_the_package() -> None:
    _, stages = parse()
    builder = " ; ".join(stages[0].all("RUN"))
    assert "bash scripts/protos.sh gen" in builder
    assert re.search(r"/opt/venv/bin/pip install --no-deps \.(\s|$)", builder)
    assert " -e " not in builder, "an editable install would point into the builder's /src"


def test_codegen_pins_match_pyproject() -> None:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    pins = dict(re.findall(r"^(grpcio-tools|mypy-protobuf)(==[\w.]+)$", "\n".join(dev), re.M))
    assert set(pins) == {"grpcio-tools", "mypy-protobuf"}
    text = DOCKERFILE.read_text()
    for name, pin in pins.items():
        assert f'"{name}{pin}"' in text, f"Dockerfile must install {name}{pin}, as pyproject.toml"


def test_entrypoint_takes_the_service_module() -> None:
    _, stages = parse()
    runtime = stages[-1]
    assert [json.loads(e) for e in runtime.all("ENTRYPOINT")] == [["python", "-m"]]
    [cmd] = [json.loads(c) for c in runtime.all("CMD")]
    module = cmd[0].replace(".", "/")
    assert (ROOT / module / "__main__.py").exists(), cmd


def test_every_service_port_is_exposed() -> None:
    _, stages = parse()
    exposed: set[int] = set()
    for spec in " ".join(stages[-1].all("EXPOSE")).split():
        low, _, high = spec.partition("-")
        exposed |= set(range(int(low), int(high or low) + 1))
    ports = MeshConfig()
    for name in SERVICE_NAMES:
        assert {ports.grpc_port(name), ports.metrics_port(name)} <= exposed, name


def test_runtime_writes_only_to_its_var_dir(base: Manifests) -> None:
    _, stages = parse()
    runtime = stages[-1]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(runtime.all("ENV"))))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    var_dir = base.config()["SENDMESH_VAR_DIR"]
    assert env["SENDMESH_VAR_DIR"] == var_dir
    assert runtime.all("WORKDIR") == [var_dir]
    assert any(f"-o {UID} -g {UID}" in r and var_dir in r for r in runtime.all("RUN"))


def test_no_secrets_and_no_healthcheck() -> None:
    _, stages = parse()
    secret = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|AMQP_URL|DATABASE_URL", re.I)
    for stage in stages:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in stage.all(keyword):
                assert not secret.search(args), f"{stage.name}: {keyword} {args}"
        # Kubernetes ignores HEALTHCHECK; the pods probe gRPC health.
        assert not stage.all("HEALTHCHECK")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob(pattern.removeprefix("!").rstrip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _glob(pattern: str) -> re.Pattern[str]:
    out = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
    return re.compile(out.replace(r"\*", "[^/]*").replace(r"\?", "[^/]"))


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("pyproject.toml", True),
        ("protos/sendmesh/bus/v1/envelope.proto", True),
        ("scripts/protos.sh", True),
        ("services/intake/__main__.py", True),
        ("var/dev-api-key", False),
        (".venv/bin/python", False),
        (".git/config", False),
        ("gen/sendmesh/__init__.py", False),
        ("tests/conftest.py", False),
        ("deploy/k8s/base/kustomization.yaml", False),
        ("services/intake/__pycache__/server.cpython-311.pyc", False),
        (".env", False),
    ],
)
def test_build_context_is_an_allowlist(path: str, sent: bool) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert ignored(path, patterns) is not sent


def test_everything_copied_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    _, stages = parse()
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
