"""What the rendered manifests promise, checked against the code they deploy.

Ports, health service names, settings, queue names and the shutdown budget
come from the services' own modules, so a change on either side that breaks
the other fails here.
"""

from __future__ import annotations

import base64
import importlib
import os
import re

import pytest

from cli.mesh import SERVICE_NAMES, MeshConfig
from services.channels import registry
from services.channels.service import WEBHOOKS
from shared.bus.topology import CHANNELS, Topology, send_stage
from shared.grpc.server import LIVENESS
from shared.runtime import BROKER_CLOSE_S
from shared.settings import ServiceSettings, SettingsError, load_settings
from tests.deploy.conftest import OVERLAYS, Doc, Manifests, env_of, port_of, selects

STAGES = tuple(name for name in SERVICE_NAMES if name not in CHANNELS)
PORTS = MeshConfig()
APP_SECRET = "sendmesh-secrets"
# Where the providers' webhook calls come from: the ingress controller's
# namespace, labelled by the operator (deploy/k8s/README.md).
WEBHOOK_PEERS = {"namespaceSelector": {"matchLabels": {"sendmesh.io/webhooks": "true"}}}

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class `python -m services.<service>` loads."""
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        c
        for c in vars(module).values()
        if isinstance(c, type)
        and issubclass(c, ServiceSettings)
        and c.__module__ == module.__name__
    ]
    assert len(found) == 1, f"{module.__name__}: expected one settings class, found {found}"
    return found[0]


def pod_labels(deployment: Doc) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (the forms these manifests use) as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_each_deployment_runs_its_own_service(rendered: dict[str, Manifests], overlay: str) -> None:
    names = []
    for name, _, container in rendered[overlay].deployments():
        names.append(name)
        assert container["name"] == "sendmesh"
        assert container["args"] == [f"services.{name}"]
        image = container["image"]
        assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image), image
        assert not image.endswith(":latest"), image
    assert sorted(names) == sorted(SERVICE_NAMES)


def test_probes_ask_grpc_health_on_the_grpc_port(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    for name, _, container in rendered[overlay].deployments():
        port = port_of(container, "grpc")
        assert port == PORTS.grpc_port(name)
        readiness = container["readinessProbe"]["grpc"]
        liveness = container["livenessProbe"]["grpc"]
        startup = container["startupProbe"]["grpc"]
        assert (readiness["port"], readiness.get("service", "")) == (port, ""), name
        assert (liveness["port"], liveness.get("service")) == (port, LIVENESS), name
        assert (startup["port"], startup.get("service")) == (port, LIVENESS), name


def test_settings_put_the_servers_on_the_container_ports(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    config = rendered[overlay].config()
    assert config["SENDMESH_GRPC_HOST"] == "0.0.0.0"
    assert config["SENDMESH_METRICS_HOST"] == "0.0.0.0"
    for name, _, container in rendered[overlay].deployments():
        env = env_of(container)
        assert env["SENDMESH_GRPC_PORT"]["value"] == str(port_of(container, "grpc")), name
        assert env["SENDMESH_METRICS_PORT"]["value"] == str(port_of(container, "metrics")), name
        assert port_of(container, "metrics") == PORTS.metrics_port(name)
        refs = {e.get("configMapRef", {}).get("name", "") for e in container.get("envFrom", [])}
        assert rendered[overlay].named("ConfigMap", "sendmesh-config")["metadata"]["name"] in refs


def test_every_setting_set_is_one_the_service_reads(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    """pydantic-settings ignores unknown SENDMESH_ variables: a typo would pass silently."""
    shared_names = set(rendered[overlay].config())
    for name, _, container in rendered[overlay].deployments():
        fields = settings_class(name).model_fields
        for var in shared_names | set(env_of(container)):
            assert var.startswith("SENDMESH_"), var
            assert var.removeprefix("SENDMESH_").lower() in fields, f"{name} has no setting {var}"


def test_channel_providers_are_registered(rendered: dict[str, Manifests], overlay: str) -> None:
    for name, _, container in rendered[overlay].deployments():
        if name in CHANNELS:
            provider = env_of(container)["SENDMESH_PROVIDER"]["value"]
            assert provider in registry.known(name), f"{name}: no provider {provider!r}"


def test_requests_and_limits_are_set(rendered: dict[str, Manifests], overlay: str) -> None:
    for name, _, container in rendered[overlay].deployments():
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{name} {resource}"


def test_pods_meet_the_restricted_pod_security_standard(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    namespace = manifests.of_kind("Namespace")
    assert [n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in namespace] == [
        "restricted"
    ]
    for d in manifests.of_kind("Deployment"):
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod.get("hostNetwork") is not True
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "add" not in context["capabilities"]
            assert context.get("privileged") is not True


def test_services_run_as_uid_10001_on_a_read_only_root(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    var_dir = rendered[overlay].config()["SENDMESH_VAR_DIR"]
    for name, deployment, container in rendered[overlay].deployments():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        # The only places the services write.
        assert "emptyDir" in mounts["/tmp"], name
        assert "emptyDir" in mounts[var_dir], name


def test_shutdown_finishes_within_the_termination_grace_period(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    config = rendered[overlay].config()
    for name, deployment, container in rendered[overlay].deployments():
        own = env_of(container).get("SENDMESH_SHUTDOWN_GRACE_S", {}).get("value")
        grace = float(own or config["SENDMESH_SHUTDOWN_GRACE_S"])
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and len(command) == 2, command
        budget = float(command[1]) + grace + BROKER_CLOSE_S
        period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert period > budget, f"{name}: {period} s to stop, needs {budget} s and a margin"


def test_each_service_exposes_its_container_ports(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    for name, deployment, container in manifests.deployments():
        service = manifests.get("Service", name)
        assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        for port in container["ports"]:
            assert ports[port["name"]]["port"] == port["containerPort"], name
            assert ports[port["name"]]["targetPort"] == port["name"], name


def test_the_channels_with_webhooks_serve_them_on_a_named_port_and_no_other_service_does(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    served = []
    for name, _, container in manifests.deployments():
        env = env_of(container)
        ports = {p["name"] for p in container["ports"]}
        if name not in WEBHOOKS:
            assert "webhook" not in ports, name
            assert not any(var.startswith("SENDMESH_WEBHOOK_") for var in env), name
            continue
        served.append(name)
        # The listener is on the container's port, reachable from outside the pod.
        assert env["SENDMESH_WEBHOOK_PORT"]["value"] == str(port_of(container, "webhook")), name
        assert env["SENDMESH_WEBHOOK_HOST"]["value"] == "0.0.0.0", name
        service_ports = {p["name"]: p for p in manifests.get("Service", name)["spec"]["ports"]}
        assert service_ports["webhook"]["port"] == port_of(container, "webhook"), name
        assert service_ports["webhook"]["appProtocol"] == "http", name
    assert sorted(served) == sorted(WEBHOOKS)


def test_only_the_ingress_controllers_namespace_reaches_the_webhook_ports(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    ingress = [
        p
        for p in rendered[overlay].of_kind("NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"]
    ]
    for name, deployment, _ in rendered[overlay].deployments():
        rules = [
            r
            for p in ingress
            if selects(p["spec"]["podSelector"], pod_labels(deployment))
            for r in p["spec"].get("ingress", [])
        ]
        peers = [
            peer
            for r in rules
            if any(p["port"] == "webhook" for p in r["ports"])
            for peer in r["from"]
        ]
        if name in WEBHOOKS:
            assert peers == [WEBHOOK_PEERS], name
        else:
            assert peers == [], name


def test_each_deployment_has_a_disruption_budget(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    budgets = rendered[overlay].of_kind("PodDisruptionBudget")
    for name, deployment, _ in rendered[overlay].deployments():
        mine = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        assert len(mine) == 1, name
        if overlay == "prod":
            assert mine[0]["spec"].get("minAvailable") == 1, name
            assert "maxUnavailable" not in mine[0]["spec"]
        else:  # a single replica must not block a node drain
            assert mine[0]["spec"].get("maxUnavailable") == 1, name


def test_dev_runs_one_replica_and_prod_autoscales_from_two(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    autoscaled = {
        **{
            h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
            for h in manifests.of_kind("HorizontalPodAutoscaler")
        },
        **{
            s["spec"]["scaleTargetRef"]["name"]: s["spec"]["minReplicaCount"]
            for s in manifests.of_kind("ScaledObject")
        },
    }
    for name, deployment, _ in manifests.deployments():
        if overlay == "dev":
            assert deployment["spec"]["replicas"] == 1, name
            assert name not in autoscaled
        else:
            # The autoscaler owns the count; the manifest must not reset it.
            assert "replicas" not in deployment["spec"], name
            assert autoscaled.get(name, 0) >= 2, f"{name} is not autoscaled from 2 replicas"


def test_every_stage_scales_on_cpu_in_prod(rendered: dict[str, Manifests], overlay: str) -> None:
    hpas = {h["metadata"]["name"]: h for h in rendered[overlay].of_kind("HorizontalPodAutoscaler")}
    if overlay == "dev":
        assert hpas == {}
        return
    assert sorted(hpas) == sorted(STAGES)
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        resources = [
            m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"
        ]
        assert resources == ["cpu"]


def test_every_channel_worker_scales_on_its_own_queue(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in manifests.of_kind("ScaledObject")}
    if overlay == "dev":
        assert scaled == {}
        return
    assert sorted(scaled) == sorted(CHANNELS)
    topology = Topology(manifests.config()["SENDMESH_BUS_NAMESPACE"])
    auths = {a["metadata"]["name"]: a for a in manifests.of_kind("TriggerAuthentication")}
    for channel, scaled_object in scaled.items():
        assert scaled_object["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        manifests.get("Deployment", channel)
        [trigger] = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        queue = trigger["metadata"]["queueName"]
        assert queue == topology.queue(send_stage(channel))
        assert queue in topology.all_queues()
        auth = auths[trigger["authenticationRef"]["name"]]
        # The scaler reaches the broker with the URL the services use.
        [ref] = [r for r in auth["spec"]["secretTargetRef"] if r["parameter"] == "host"]
        amqp = env_of(
            manifests.get("Deployment", channel)["spec"]["template"]["spec"]["containers"][0]
        )
        assert amqp["SENDMESH_AMQP_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": ref["name"],
            "key": ref["key"],
        }


def test_prod_scrapes_every_service_on_its_metrics_port(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    monitors = manifests.of_kind("ServiceMonitor")
    if overlay == "dev":
        assert monitors == []
        return
    for name, _, _ in manifests.deployments():
        service = manifests.get("Service", name)
        labels = service["metadata"]["labels"]
        mine = [m for m in monitors if selects(m["spec"]["selector"], labels)]
        assert len(mine) == 1, name
        port_names = {p["name"] for p in service["spec"]["ports"]}
        assert [e["port"] for e in mine[0]["spec"]["endpoints"]] == ["metrics"]
        assert "metrics" in port_names


def test_prod_expects_its_secrets_and_dev_generates_every_key(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    """Prod expects its Secrets to exist; dev generates every key it refers to."""
    manifests = rendered[overlay]
    secrets = {s["metadata"]["name"]: s for s in manifests.of_kind("Secret")}
    if overlay == "prod":
        assert secrets == {}
    for d in manifests.of_kind("Deployment"):
        for container in d["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                if overlay == "prod":
                    assert ref["name"] == APP_SECRET
                elif not ref.get("optional"):
                    assert ref["name"].startswith(APP_SECRET + "-"), ref
                    assert ref["key"] in secrets[ref["name"]]["data"], ref


def test_dev_settings_load_in_every_service(
    rendered: dict[str, Manifests], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if overlay != "dev":
        return
    manifests = rendered[overlay]
    secret = manifests.named("Secret", APP_SECRET)["data"]
    for name, _, container in manifests.deployments():
        env = dict(manifests.config())
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            env[entry["name"]] = (
                base64.b64decode(secret[ref["key"]]).decode() if ref else entry["value"]
            )
        with monkeypatch.context() as patched:
            for var in [v for v in os.environ if v.startswith("SENDMESH_")]:
                patched.delenv(var)
            for var, value in env.items():
                patched.setenv(var, value)
            try:
                settings = load_settings(settings_class(name))
            except SettingsError as err:
                pytest.fail(f"{name}: {err}")
        assert settings.grpc_port == port_of(container, "grpc")
        if name in WEBHOOKS:  # the sms webhooks start only with a token to check
            assert getattr(settings, "webhook_port", None) == port_of(container, "webhook")
        assert settings.database_url is None  # SQLite on the pod's var volume
        assert settings.api_keys, "the dev key must be admitted"


def test_network_policies_let_in_only_what_is_needed(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    policies = rendered[overlay].of_kind("NetworkPolicy")
    ingress = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]]
    egress = [p for p in policies if "Egress" in p["spec"]["policyTypes"]]
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in ingress)
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    for name, deployment, _ in rendered[overlay].deployments():
        labels = pod_labels(deployment)
        rules = [
            r
            for p in ingress
            if selects(p["spec"]["podSelector"], labels)
            for r in p["spec"].get("ingress", [])
        ]
        opened = {
            (port["port"], str(peer)) for r in rules for port in r["ports"] for peer in r["from"]
        }
        assert ("grpc", str({"podSelector": {}})) in opened, name
        assert ("metrics", str(monitoring)) in opened, name
        out = [
            r
            for p in egress
            if selects(p["spec"]["podSelector"], labels)
            for r in p["spec"].get("egress", [])
        ]
        ports = {(port["port"], port.get("protocol", "TCP")) for r in out for port in r["ports"]}
        assert {(53, "UDP"), (5672, "TCP"), (5432, "TCP")} <= ports, name


def test_services_call_each_other_through_their_services(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    for name, _, container in manifests.deployments():
        for var, entry in env_of(container).items():
            if not var.endswith("_ADDRESS"):
                continue
            host, _, port = entry["value"].rpartition(":")
            assert host == var.removeprefix("SENDMESH_").removesuffix("_ADDRESS").lower(), var
            callee = manifests.get("Service", host)
            grpc = [p for p in callee["spec"]["ports"] if p["name"] == "grpc"]
            assert [p["port"] for p in grpc] == [int(port)], f"{name}: {var}"


def test_operator_objects_line_up_with_the_services(
    rendered: dict[str, Manifests], overlay: str
) -> None:
    manifests = rendered[overlay]
    if overlay == "dev":
        assert manifests.of_kind("Cluster") == manifests.of_kind("RabbitmqCluster") == []
        return
    [cluster] = manifests.of_kind("Cluster")
    name = cluster["metadata"]["name"]
    databases = manifests.of_kind("Database")
    assert {d["spec"]["cluster"]["name"] for d in databases} == {name}
    owner = cluster["spec"]["bootstrap"]["initdb"]["owner"]
    assert {d["spec"]["owner"] for d in databases} == {owner}
    assert sorted(d["spec"]["name"] for d in databases) == sorted(
        f"sendmesh_{service}" for service in SERVICE_NAMES
    )
    for service, _, container in manifests.deployments():
        ref = env_of(container)["SENDMESH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": APP_SECRET, "key": f"{service}-database-url"}
    [broker] = manifests.of_kind("RabbitmqCluster")
    broker_pods = {"app.kubernetes.io/name": broker["metadata"]["name"]}
    monitor = manifests.get("ServiceMonitor", broker["metadata"]["name"])
    assert selects(monitor["spec"]["selector"], broker_pods)
    assert any(
        selects(p["spec"]["podSelector"], broker_pods)
        for p in manifests.of_kind("NetworkPolicy")
        if p["spec"]["podSelector"]
    )
    assert any(
        selects(p["spec"]["podSelector"], {"cnpg.io/cluster": name})
        for p in manifests.of_kind("NetworkPolicy")
        if p["spec"]["podSelector"]
    )
