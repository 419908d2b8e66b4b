"""The Kubernetes manifests: every resource the kustomization lists, validated offline against
the Kubernetes schemas by kubernetes-validate (strict: no unknown fields), then checked to fit
together: selectors, probes, resources, autoscalers, budgets, the Ingress and the config."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import kubernetes_validate
import pytest
import yaml
from django.urls import resolve

from tests.support.processes import REPO_ROOT

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
# The oldest and newest releases the manifests are written for.
VERSIONS = ["1.29.0", "1.37.0"]
IMAGE = "ai-orchestra"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SECRET = "orchestra-secrets"  # created from .env.production, never committed


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def documents() -> list[dict[str, Any]]:
    found = []
    for name in kustomization()["resources"]:
        found += [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> name -> resource."""
    by_kind: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for document in documents():
        by_kind[document["kind"]][document["metadata"]["name"]] = document
    return by_kind


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["spec"]["template"]["spec"]


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_the_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert kustomization()["images"][0]["name"] == IMAGE


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(version):
    for document in documents():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_refuses_what_kubernetes_refuses():
    (web,) = [
        d
        for d in documents()
        if d["metadata"]["name"] == "orchestra-web" and "replicas" in d["spec"]
    ]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_workloads(resources):
    deployments = resources["Deployment"]
    assert set(deployments) == {"orchestra-web", "orchestra-worker", "orchestra-beat"}
    for name, deployment in {**deployments, **resources["Job"]}.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if deployment["kind"] == "Deployment":
            assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(deployment):
            assert container["image"] == IMAGE, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            refs = container["envFrom"]
            assert {"configMapRef": {"name": "orchestra-config"}} in refs, name
            assert {"secretRef": {"name": SECRET}} in refs, name
        for claim in pod_spec(deployment).get("volumes", []):
            if "persistentVolumeClaim" in claim:
                assert (
                    claim["persistentVolumeClaim"]["claimName"]
                    in resources["PersistentVolumeClaim"]
                )
    beat = deployments["orchestra-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.prod.yml").read_text())["services"]
    for name in ("worker", "beat"):
        container = deployments[f"orchestra-{name}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == compose[name]["command"], name
    (job,) = resources["Job"].values()
    steps = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert all(s in steps for s in ("migrate --noinput", "bootstrap_providers", "ensure_admin"))


def test_web_probes_ask_the_health_endpoint_with_an_allowed_host(resources):
    web = resources["Deployment"]["orchestra-web"]
    (container,) = pod_spec(web)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    allowed = resources["ConfigMap"]["orchestra-config"]["data"]["ALLOWED_HOSTS"].split(",")
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in ports
        assert resolve(path).url_name in {"health-live", "health-ready"}
        assert get["httpHeaders"] == [{"name": "Host", "value": allowed[0]}]
    (wait,) = pod_spec(web)["initContainers"]
    assert "migrate --check" in wait["command"][2]
    for name in ("orchestra-worker", "orchestra-beat"):
        (container,) = pod_spec(resources["Deployment"][name])["containers"]
        assert "exec" in container["livenessProbe"], name


def test_autoscalers_budgets_services_and_the_ingress(resources):
    deployments = resources["Deployment"]
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"]
        for hpa in resources["HorizontalPodAutoscaler"].values()
    }
    assert set(scaled) == {"orchestra-web", "orchestra-worker"}
    for name, spec in scaled.items():
        assert spec["metrics"][0]["resource"]["name"] == "cpu"
        assert spec["minReplicas"] >= 2, "a budget of minAvailable 1 leaves one to drain"
        assert deployments[name]["spec"]["replicas"] == spec["minReplicas"]
    budgets = {
        tuple(pdb["spec"]["selector"]["matchLabels"].items())
        for pdb in resources["PodDisruptionBudget"].values()
    }
    assert budgets == {
        tuple(deployments[name]["spec"]["selector"]["matchLabels"].items()) for name in scaled
    }
    (service,) = resources["Service"].values()
    web = deployments["orchestra-web"]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    (ingress,) = resources["Ingress"].values()
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[f"{prefix}proxy-buffering"] == "off"
    assert int(annotations[f"{prefix}proxy-read-timeout"]) >= 3600
    assert int(annotations[f"{prefix}proxy-send-timeout"]) >= 3600
    assert annotations[f"{prefix}proxy-body-size"] == "8m"  # as nginx/ refuses larger bodies
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] == service["spec"]["ports"][0]["name"]
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    data = resources["ConfigMap"]["orchestra-config"]["data"]
    assert data["ALLOWED_HOSTS"].split(",")[0] == host
    assert data["DJANGO_SETTINGS_MODULE"] == "orchestra.settings.production"
    known = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert set(data) <= known, "only variables the platform reads"
