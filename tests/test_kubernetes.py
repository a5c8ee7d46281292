"""No cluster runs here, so check what can be checked without one: deploy/kubernetes renders as kustomize
would (its resources, namespace, labels and images), every object validates against the Kubernetes
schemas, and what the manifests name exists: modules, settings, probe paths, ports, the queue KEDA
watches, and the objects they point at."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.main import create_app
from stt_common.queue import TRANSCRIBE_QUEUE
from stt_common.settings import REPO_ROOT, Settings
from tests.test_containers import copied

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"  # a release every current managed Kubernetes offers
IMAGES = {"stt-api": "Dockerfile.api", "stt-worker": "Dockerfile.worker"}


def render() -> list[dict[str, Any]]:
    """What `kubectl kustomize deploy/kubernetes` makes of these files (they use only resources,
    namespace, labels and images)."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
    objects = [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((DEPLOY / name).read_text())
        if doc is not None
    ]
    labels = {k: v for entry in kustomization["labels"] for k, v in entry["pairs"].items()}
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    for obj in objects:
        if obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = kustomization["namespace"]
        obj["metadata"].setdefault("labels", {}).update(labels)
        for container in containers(obj):
            assert container["image"] in images, container["image"]
            container["original_image"] = container["image"]
    return objects


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if obj["kind"] in ("Deployment", "Job") else {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


OBJECTS = render()


def by(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def without_our_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_our_keys(v) for k, v in obj.items() if k != "original_image"}
    if isinstance(obj, list):
        return [without_our_keys(v) for v in obj]
    return obj


@pytest.mark.parametrize(
    "obj",
    [o for o in OBJECTS if o["apiVersion"] != "keda.sh/v1alpha1"],
    ids=lambda o: f"{o['kind']}/{o['metadata']['name']}",
)
def test_every_object_validates_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(without_our_keys(obj), KUBERNETES_VERSION, strict=True)


# KEDA's ScaledObject is a custom resource, outside the Kubernetes schemas: the part of its CRD this file
# uses, as KEDA documents it (keda.sh/docs, "Scaling Deployments" and the Redis Lists scaler).
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "redis"},
                            "metadata": {
                                "type": "object",
                                "required": ["listName", "listLength"],
                                "additionalProperties": {"type": "string"},
                                "propertyNames": {
                                    "enum": [
                                        "address",
                                        "addressFromEnv",
                                        "host",
                                        "port",
                                        "databaseIndex",
                                        "listName",
                                        "listLength",
                                        "activationListLength",
                                        "enableTLS",
                                    ]
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_keda_scales_the_worker_on_the_queue_it_consumes() -> None:
    scaled = by("ScaledObject", "stt-worker")
    jsonschema.validate(scaled, SCALED_OBJECT)
    worker = by("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in worker["spec"]  # KEDA owns the count
    (trigger,) = scaled["spec"]["triggers"]
    (container,) = containers(worker)
    command = container["command"]
    assert command[command.index("-Q") + 1] == trigger["metadata"]["listName"] == TRANSCRIBE_QUEUE
    redis = urlsplit(by("ConfigMap", "stt-settings")["data"]["STT_REDIS_URL"])
    assert trigger["metadata"]["address"] == f"{redis.hostname}:{redis.port}"
    assert trigger["metadata"]["databaseIndex"] == redis.path.strip("/")
    assert scaled["spec"]["minReplicaCount"] == 0  # scale to zero
    assert by("ConfigMap", "stt-settings")["data"]["STT_READY_REQUIRES_WORKER"] == "false"  # so the api takes jobs
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 600
    assert scaled["spec"]["cooldownPeriod"] >= grace


def test_settings_are_real_and_the_hosts_share_only_database_redis_and_bucket() -> None:
    fields = {f"STT_{name.upper()}" for name in Settings.model_fields}
    config = by("ConfigMap", "stt-settings")["data"]
    secret = by("Secret", "stt-secrets")["stringData"]
    for key in [*config, *secret]:
        assert key in fields or key.startswith("AWS_") or key == "FLOWER_BASIC_AUTH", key
    Settings(_env_file=None, **{k[4:].lower(): v for k, v in {**config, **secret}.items() if k.startswith("STT_")})
    assert config["STT_STORAGE_URL"].startswith("s3://")
    assert secret["STT_DATABASE_URL"].startswith("postgresql")
    for obj in OBJECTS:
        volumes = obj.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
        assert all("emptyDir" in v for v in volumes), obj["metadata"]["name"]  # no shared disk anywhere
        for container in containers(obj):
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            assert refs == {"stt-settings", "stt-secrets"}


def python_module(command: list[str]) -> str | None:
    if command[:2] == ["python", "-m"]:
        return command[2]
    if command[0] == "celery":
        return command[command.index("-A") + 1]
    if command[:2] == ["sh", "-c"]:
        return python_module(command[2].split())
    return None


@pytest.mark.parametrize(
    "container",
    [c for o in OBJECTS for c in containers(o)],
    ids=lambda c: c["name"],
)
def test_every_command_runs_a_module_its_image_holds(container: dict[str, Any]) -> None:
    image_files = copied(IMAGES[container["original_image"]])
    commands = [container["command"]]
    commands += [
        p["exec"]["command"]
        for p in (container.get("livenessProbe"), container.get("readinessProbe"))
        if p and "exec" in p
    ]
    for command in commands:
        module = python_module(command)
        assert module is not None, command
        assert module.split(".")[0] in image_files, (module, image_files)
        assert importlib.util.find_spec(module) is not None, module
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_probes_and_ports_name_what_the_api_serves() -> None:
    api = by("Deployment", "stt-api")
    container = containers(api)[-1]
    command = container["command"]
    port = int(command[command.index("--port") + 1])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    routes = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert by("Service", "stt-api")["spec"]["ports"][0]["targetPort"] == "http"
    assert by("HorizontalPodAutoscaler", "stt-api")["spec"]["scaleTargetRef"]["name"] == "stt-api"
    init = api["spec"]["template"]["spec"]["initContainers"][0]
    assert "--no-upgrade" in init["command"]  # api pods wait; only the Job migrates
    migrate = containers(by("Job", "stt-migrate"))[0]
    assert "--no-upgrade" not in migrate["command"]


def test_selectors_match_their_pods() -> None:
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in OBJECTS if o["kind"] == "Deployment"
    }
    for obj in OBJECTS:
        selector = obj["spec"].get("selector") if obj["kind"] in ("Service", "PodDisruptionBudget") else None
        if selector is None:
            continue
        wanted = selector.get("matchLabels", selector)
        assert any(wanted.items() <= labels.items() for labels in pods.values()), obj["metadata"]["name"]
    for name, deployment in ((o["metadata"]["name"], o) for o in OBJECTS if o["kind"] == "Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pods[name].items()


def test_the_beat_runs_once() -> None:
    webhooks = by("Deployment", "stt-webhooks")
    assert webhooks["spec"]["replicas"] == 1
    assert webhooks["spec"]["strategy"] == {"type": "Recreate"}  # the old pod stops before the new one starts
    command = containers(webhooks)[0]["command"]
    assert "-B" in command
    assert not any("-B" in c["command"] for o in OBJECTS if o is not webhooks for c in containers(o))


def test_the_docs_point_at_these_files() -> None:
    deploy_doc = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in deploy_doc
    for path in re.findall(r"deploy/kubernetes/[\w.-]+", deploy_doc):
        assert Path(REPO_ROOT / path).exists(), path
