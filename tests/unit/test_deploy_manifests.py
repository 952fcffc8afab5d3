"""deploy/: every manifest is valid against the Kubernetes schemas (offline), and says what SPEC §10 asks.

kubernetes-validate ships the schemas of each Kubernetes release inside the package, so this runs with no
network. Strict mode refuses unknown fields, so a misspelt `readinesProbe` fails here, not in a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.core.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables the pod defines only to build others from (`$(POD_IP)`), read by no one else.
HELPERS = {"POD_IP", "REDIS_PASSWORD"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [
                (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc) for doc in documents(path)
            ]
    return found


def only(kind: str) -> dict[str, Any]:
    matching = [
        doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == "tiktok-sessions"
    ]
    assert len(matching) == 1, f"one {kind} named tiktok-sessions"
    return matching[0]


def service_container() -> dict[str, Any]:
    containers = only("StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert [container["name"] for container in containers] == ["service"]
    return containers[0]


def environment() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in service_container()["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name, manifest", manifests(), ids=[name for name, _ in manifests()])
def test_each_manifest_is_valid_against_the_kubernetes_schema(
    name: str, manifest: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    """What the test above relies on: strict validation fails on a field Kubernetes does not know."""
    broken = only("StatefulSet")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_deploys_every_manifest_but_the_example_secret() -> None:
    (kustomization,) = documents(DEPLOY / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert all((DEPLOY / name).is_file() for name in listed)
    assert sorted(listed) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if "kustomization" not in p.name and "example" not in p.name
    )


def test_the_service_is_probed_on_ready_and_health() -> None:
    container = service_container()
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert port_names == {"http": 5681}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert environment()["PORT"]["value"] == "5681" and environment()["HOST"]["value"] == "0.0.0.0"


def test_instance_url_is_the_pods_own_address_from_the_downward_api() -> None:
    env = environment()
    names = list(env)
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["INSTANCE_URL"]["value"] == "http://$(POD_IP):5681"
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert names.index("POD_IP") < names.index("INSTANCE_URL")


def test_secrets_come_from_the_secret_whose_shape_the_example_shows() -> None:
    env = environment()
    (example,) = documents(DEPLOY / "secret.example.yaml")
    for name in ("API_KEYS", "REDIS_PASSWORD"):
        assert env[name]["valueFrom"] == {
            "secretKeyRef": {"name": example["metadata"]["name"], "key": name}
        }, f"{name} is read from the Secret"
        assert name in example["stringData"]
    assert "value" not in env["API_KEYS"]


def test_redis_url_names_the_redis_service_and_its_port() -> None:
    env = environment()
    names = list(env)
    match = re.fullmatch(r"redis://:\$\(REDIS_PASSWORD\)@([a-z0-9-]+):(\d+)/0", env["REDIS_URL"]["value"])
    assert match, env["REDIS_URL"]["value"]
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
    services = {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "Service"}
    redis_service = services[match.group(1)]
    assert [port["port"] for port in redis_service["spec"]["ports"]] == [int(match.group(2))]
    (redis,) = [doc for _, doc in manifests() if doc["kind"] == "Deployment"]
    assert (
        redis_service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    )


def test_every_variable_the_pod_sets_is_a_setting_of_the_service() -> None:
    unknown = set(environment()) - SETTINGS - HELPERS
    assert unknown == set(), f"not read by app.core.config.Settings: {unknown}"
    assert {"REDIS_URL", "INSTANCE_URL", "CLUSTER_MAX_SESSIONS", "REGISTRY_TTL", "API_KEYS"} <= set(
        environment()
    )


def test_user_data_lives_on_a_volume_of_each_pods_own() -> None:
    statefulset = only("StatefulSet")
    mounts = {mount["name"]: mount["mountPath"] for mount in service_container()["volumeMounts"]}
    claims = [claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]]
    assert claims == ["user-data"]
    assert mounts["user-data"] == environment()["USER_DATA_DIR"]["value"]


def test_the_client_service_selects_the_service_pods() -> None:
    statefulset = only("StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    client_service = only("Service")
    assert client_service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in client_service["spec"]["ports"]] == ["http"]
    assert statefulset["spec"]["serviceName"] in {doc["metadata"]["name"] for _, doc in manifests()}
