"""deploy/k8s/: the kustomize base and the example overlay render with kustomize, every object
validates against the Kubernetes JSON schemas (kubernetes-validate, which bundles them: no
network), and the rendered objects fit together and fit the code: selectors and labels, the
probes on the container's port, the Secret and ConfigMap they name, the Dockerfile's user, the
CLI's commands, the configuration's port and lease, a grace period longer than a batch.

ServiceMonitor is a CRD of the Prometheus Operator, outside the Kubernetes schemas. No registry
package ships its openAPIV3Schema as a file; @kubernetes-models/prometheus-operator (npm, pinned in
tests/node/) ships the validator generated from it, which tests/node/servicemonitor.mjs runs. That
validator lets unknown fields pass (the CRD does not forbid them), so the structure is also
checked field by field."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version
from ruamel.yaml import YAML
from typer.main import get_command

from tests.ci import skip_or_fail
from worker.cli.main import app
from worker.settings.loader import load_config
from worker.settings.models import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent.parent
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
SECRET_TEMPLATE = BASE / "secret.example.yaml"
NODE_DIR = ROOT / "tests" / "node"
KINDS = {"ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Service", "ServiceMonitor"}

Doc = dict[str, Any]


def load_all(text: str) -> list[Doc]:
    return [doc for doc in YAML(typ="safe").load_all(io.StringIO(text)) if doc]


def kustomize() -> list[str]:
    """A real kustomize: the standalone binary, or the one built into kubectl."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    skip_or_fail("neither kustomize nor kubectl is installed (deploy/k8s/ is rendered with "
                 "`kubectl kustomize`; install kubectl or kustomize)")
    raise AssertionError("unreachable")


def render(directory: Path) -> list[Doc]:
    proc = subprocess.run([*kustomize(), str(directory)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, f"kustomize could not render {directory}:\n{proc.stderr}"
    return load_all(proc.stdout)


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return render(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Doc]:
    return render(OVERLAY)


def secret_template() -> Doc:
    (doc,) = load_all(SECRET_TEMPLATE.read_text())
    return doc


def one(docs: list[Doc], kind: str) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def dockerfile_uid() -> int:
    match = re.search(r"useradd\b[^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile creates no user with --uid"
    return int(match.group(1))


# -- schemas -----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", sorted({all_versions()[0], latest_version()}))
def test_every_object_validates_against_the_kubernetes_schemas(
        base: list[Doc], overlay: list[Doc], version: str) -> None:
    """Strict: an unknown field (a typo) fails as well as a wrong type or a missing field."""
    docs = [*base, *overlay, secret_template()]
    checked = set()
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: test_servicemonitor_structure
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {where}: {exc.message}")
        checked.add(doc["kind"])
    assert checked == (KINDS - {"ServiceMonitor"}) | {"Secret"}


def test_the_kustomizations_files_exist_and_validate_as_written() -> None:
    """Without kustomize too: every file a kustomization names exists, and each resource file
    validates as written (the rendered form is checked above)."""
    for directory in (BASE, OVERLAY):
        (kustomization,) = load_all((directory / "kustomization.yaml").read_text())
        assert kustomization["kind"] == "Kustomization"
        for resource in kustomization.get("resources", []):
            target = directory / resource
            assert target.exists(), f"{directory / 'kustomization.yaml'}: {resource} is missing"
            if target.is_file():
                for doc in load_all(target.read_text()):
                    if doc["kind"] != "ServiceMonitor":
                        kubernetes_validate.validate(doc, latest_version(), strict=True)
        for generator in kustomization.get("configMapGenerator", []):
            for source in generator["files"]:
                assert (directory / source.split("=")[-1]).is_file(), source


# -- the rendered structure --------------------------------------------------------------------

def test_the_base_renders_every_kind_once(base: list[Doc]) -> None:
    assert sorted(doc["kind"] for doc in base) == sorted(KINDS)


def test_selectors_and_labels_match(base: list[Doc]) -> None:
    deployment, service = one(base, "Deployment"), one(base, "Service")
    pdb, monitor, job = one(base, "PodDisruptionBudget"), one(base, "ServiceMonitor"), one(
        base, "Job")
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    job_pods = job["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pods)
    assert selects(service["spec"]["selector"], pods), "the Service selects no replica"
    assert selects(pdb["spec"]["selector"]["matchLabels"], pods), "the PDB guards no replica"
    for selector in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"],
                     pdb["spec"]["selector"]["matchLabels"]):
        assert not selects(selector, job_pods), "the migrate Job's pod counts as a replica"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]), \
        "the ServiceMonitor selects no Service"


def test_ports_and_probes_point_at_the_container_port(base: list[Doc]) -> None:
    deployment, service = one(base, "Deployment"), one(base, "Service")
    monitor = one(base, "ServiceMonitor")
    (container,) = pod_spec(deployment)["containers"]
    (port,) = container["ports"]
    config = load_config(BASE / "winback.yaml", require_env=False)
    assert port["containerPort"] == config.service.http_port, \
        "the container port is not service.http_port of the mounted configuration"
    probes = {name: container[name]["httpGet"]
              for name in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/healthz"
    for name, probe in probes.items():
        assert probe["port"] in (port["name"], port["containerPort"]), \
            f"{name} probes port {probe['port']}, the container listens on {port}"
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    endpoint_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    assert endpoint_ports == {service_port["name"]}, \
        "the ServiceMonitor scrapes a port the Service does not name"


def test_the_secret_and_configmap_referenced_exist(base: list[Doc]) -> None:
    """The ConfigMap (with kustomize's hash suffix) is rendered; the Secret is created by the
    operator from secret.example.yaml, which must hold every key the pods read."""
    configmaps = {doc["metadata"]["name"]: doc for doc in base if doc["kind"] == "ConfigMap"}
    template = secret_template()
    secret_keys = set(template["stringData"])
    for workload in (one(base, "Deployment"), one(base, "Job")):
        spec = pod_spec(workload)
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, \
                    f"{workload['kind']} mounts ConfigMap {volume['configMap']['name']}, " \
                    f"not rendered (rendered: {sorted(configmaps)})"
                assert "winback.yaml" in configmaps[volume["configMap"]["name"]]["data"]
            if "secret" in volume:
                assert volume["secret"]["secretName"] == template["metadata"]["name"]
                assert {item["key"] for item in volume["secret"]["items"]} <= secret_keys
        for container in spec["containers"]:
            for env in container["env"]:
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == template["metadata"]["name"]
                    assert ref["key"] in secret_keys, \
                        f"{env['name']} reads key {ref['key']}, not in secret.example.yaml"
            mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
            assert set(mounts) == set(volumes), f"{workload['kind']}: a volume is not mounted"
            config_mount = next(mounts[name] for name, volume in volumes.items()
                                if "configMap" in volume)
            assert config_mount["readOnly"] is True
            assert container["args"][1] == f"{config_mount['mountPath']}/winback.yaml"


def test_the_documented_secret_command_makes_the_secret_the_pods_read(tmp_path: Path) -> None:
    """docs/operations.md's `kubectl create secret` (run with --dry-run=client, no cluster)
    gives the Secret of secret.example.yaml: its name and exactly its keys."""
    if not shutil.which("kubectl"):
        skip_or_fail("kubectl is not installed: the documented `kubectl create secret` is run "
                     "with --dry-run=client")
    text = (ROOT / "docs" / "operations.md").read_text().split("### Kubernetes", 1)[1]
    block = re.search(r"```sh\n\s*(kubectl create secret generic .*?)```", text, re.S)
    assert block, "docs/operations.md lost the `kubectl create secret` of the Kubernetes section"
    (tmp_path / "sf-jwt.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    command = block.group(1).strip() + " --dry-run=client -o yaml"
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    (made,) = load_all(proc.stdout)
    template = secret_template()
    assert made["metadata"]["name"] == template["metadata"]["name"]
    assert set(made["data"]) == set(template["stringData"])


def pod_env(container: Doc, secret: Doc) -> dict[str, str]:
    """The environment the container gets, with the template's values for the Secret's keys."""
    env = {}
    for item in container["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = secret["stringData"][ref["key"]] if ref else item["value"]
    return env


def test_the_configuration_loads_with_the_pods_environment(base: list[Doc]) -> None:
    """Every ${VAR} of the mounted file is set in the replicas (winback run requires them), and
    the file SF_PRIVATE_KEY_FILE names is a mounted Secret key."""
    assert (BASE / "winback.yaml").read_text() == (ROOT / "config" / "winback.yaml").read_text(), \
        "deploy/k8s/base/winback.yaml differs from config/winback.yaml: copy it again"
    deployment = one(base, "Deployment")
    (container,) = pod_spec(deployment)["containers"]
    env = pod_env(container, secret_template())
    load_config(BASE / "winback.yaml", env=env)  # raises ConfigErrors naming a missing variable
    assert "WINBACK_DATABASE_URL" in env
    assert env["WINBACK_DATABASE_URL"].startswith("postgresql+psycopg://")
    key_file = Path(env["SF_PRIVATE_KEY_FILE"])
    mounts = {Path(mount["mountPath"]): mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    secret_volume = volumes[mounts[key_file.parent]]["secret"]
    assert key_file.name in {item["path"] for item in secret_volume["items"]}
    (job_container,) = pod_spec(one(base, "Job"))["containers"]
    assert "WINBACK_DATABASE_URL" in pod_env(job_container, secret_template())


def test_the_commands_are_the_clis(base: list[Doc]) -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    (run,) = pod_spec(one(base, "Deployment"))["containers"]
    (migrate,) = pod_spec(one(base, "Job"))["containers"]
    assert run["args"][0] == "run" and "run" in commands
    assert migrate["args"][0] == "migrate" and "migrate" in commands
    assert pod_spec(one(base, "Job"))["restartPolicy"] == "Never"


def test_pods_run_unprivileged_as_the_images_user(base: list[Doc]) -> None:
    uid = dockerfile_uid()
    for workload in (one(base, "Deployment"), one(base, "Job")):
        spec = pod_spec(workload)
        what = workload["kind"]
        assert spec["securityContext"]["runAsNonRoot"] is True, what
        assert spec["securityContext"]["runAsUser"] == uid, f"{what}: not the Dockerfile's user"
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", what
        assert spec["automountServiceAccountToken"] is False, what
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, what
            assert context["readOnlyRootFilesystem"] is True, what
            assert context["capabilities"]["drop"] == ["ALL"], what
            assert "add" not in context["capabilities"], what
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), what
            assert "memory" in resources["limits"], what
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{what}: no writable /tmp on a read-only root"


def test_graceful_termination_outlasts_a_batch(base: list[Doc]) -> None:
    """After SIGTERM the runner waits up to service.lease_ttl for the ticks in flight; one CRM
    call (its timeout) may still be under way when the wait ends."""
    spec = pod_spec(one(base, "Deployment"))
    config = load_config(BASE / "winback.yaml", require_env=False)
    lease = config.service.lease_ttl
    assert lease == ServiceSettings().lease_ttl  # the file keeps the default the comment cites
    call = max(connection.timeout for connection in config.connections)
    assert spec["terminationGracePeriodSeconds"] >= lease + call, \
        f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} is shorter " \
        f"than service.lease_ttl {lease} s + one CRM call {call} s"
    strategy = one(base, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_servicemonitor_structure(base: list[Doc]) -> None:
    """monitoring.coreos.com/v1 ServiceMonitor, checked by hand (no schema is available)."""
    monitor = one(base, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) <= {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel",
                         "targetLabels", "podTargetLabels", "sampleLimit"}
    assert set(spec["selector"]) <= {"matchLabels", "matchExpressions"}
    assert all(isinstance(v, str) for v in spec["selector"]["matchLabels"].values())
    assert isinstance(spec["endpoints"], list) and spec["endpoints"]
    duration = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                          r"(([0-9]+)s)?(([0-9]+)ms)?)$")
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme",
                                 "honorLabels", "relabelings", "metricRelabelings"}
        assert isinstance(endpoint["port"], str)
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            assert duration.match(endpoint.get(key, "0")), f"{key}: not a Prometheus duration"


def test_servicemonitor_validates_against_the_crd_schema(base: list[Doc],
                                                         overlay: list[Doc]) -> None:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed: the ServiceMonitor is validated by the Prometheus "
                     "Operator's schema in @kubernetes-models/prometheus-operator (tests/node/)")
    package = NODE_DIR / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    if not (package / "package.json").exists():
        skip_or_fail(f"{package} is not installed: run make test (or npm ci --prefix tests/node)")
    monitors = [doc for doc in [*base, *overlay] if doc["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    proc = subprocess.run([str(node), str(NODE_DIR / "servicemonitor.mjs")], cwd=NODE_DIR,
                          input=json.dumps(monitors), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ServiceMonitor/winback") == 2, proc.stdout


# -- the overlay -------------------------------------------------------------------------------

def test_the_overlay_sets_namespace_image_and_replicas(base: list[Doc],
                                                       overlay: list[Doc]) -> None:
    assert sorted(doc["kind"] for doc in overlay) == sorted(KINDS)
    assert {doc["metadata"].get("namespace") for doc in overlay} == {"winback"}
    assert one(overlay, "Deployment")["spec"]["replicas"] == 3
    images = {container["image"] for kind in ("Deployment", "Job")
              for container in pod_spec(one(overlay, kind))["containers"]}
    assert images == {"registry.example.com/winback:1.0.0"}
    base_images = {container["image"] for kind in ("Deployment", "Job")
                   for container in pod_spec(one(base, kind))["containers"]}
    assert base_images == {"winback:latest"}
