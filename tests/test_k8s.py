"""Fast checks of the Kubernetes manifests in `deploy/k8s/` (no cluster): the kustomization lists
every manifest, Services select Deployments, probes, resources, Secret and ConfigMap references,
the HPA and ServiceMonitors, the replicas component, and the ConfigMap's env through the image's
entry point into valid `ponder serve` flags. `tests/test_deploy.py` checks the rest of `deploy/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_deploy import DEPLOY, _run_entrypoint, _serve_parser, _yaml_docs, entrypoint_variables

K8S = DEPLOY / "k8s"


def test_configmap_env_gives_valid_flags(tmp_path: Path) -> None:
    config = next(d for d in _k8s_docs() if d["kind"] == "ConfigMap")["data"]
    assert set(config) <= entrypoint_variables()
    argv = _run_entrypoint(tmp_path, config)
    urls = config["PONDER_ENGINE_URLS"].split()
    assert argv[argv.index("--engine-url") + 1] == urls[0]
    _, unknown = _serve_parser().parse_known_args(argv)
    assert unknown == []  # every flag the entry point writes is one `ponder serve` knows


def _k8s_docs() -> list[dict[str, Any]]:
    kustomization = _yaml_docs(K8S / "kustomization.yaml")[0]
    return [d for name in kustomization["resources"] for d in _yaml_docs(K8S / name)]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _k8s_docs() if d["kind"] == kind}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _yaml_docs(K8S / "kustomization.yaml")[0]
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files and kustomization["namespace"] == "ponder"
    kinds = [d["kind"] for d in _k8s_docs()]
    for kind in ("Namespace", "ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                 "ServiceMonitor"):
        assert kind in kinds
    for doc in _k8s_docs():
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "ponder", doc["metadata"]["name"]


def test_services_select_deployments() -> None:
    deployments = _by_kind("Deployment")
    for d in deployments.values():
        assert _matches(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
    for name, svc in _by_kind("Service").items():
        targets = [d for d in deployments.values()
                   if _matches(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} Deployments"
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"]), name
    assert _by_kind("Service")["vllm"]["spec"]["clusterIP"] == "None"  # headless: one address per replica


def test_references_probes_and_resources() -> None:
    config_maps, secrets = _by_kind("ConfigMap"), _by_kind("Secret")
    for name, d in _by_kind("Deployment").items():
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]
            for source in c.get("envFrom", ()):
                assert source["configMapRef"]["name"] in config_maps
            for var in c.get("env", ()):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]].get("stringData", secrets[ref["name"]].get("data", {}))
        for c in pod["containers"]:
            ports = {p["name"] for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                assert get["path"] == "/health" and get["port"] in ports, f"{name}/{c['name']} {probe}"
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    ponder = _by_kind("Deployment")["ponder"]["spec"]["template"]["spec"]["containers"][0]
    key = next(v for v in ponder["env"] if v["name"] == "PONDER_API_KEY")
    assert key["valueFrom"]["secretKeyRef"]["name"] == "ponder-api-key"
    vllm = _by_kind("Deployment")["vllm"]["spec"]["template"]["spec"]["containers"][0]
    assert vllm["image"].startswith("vllm/vllm-openai:v") and vllm["resources"]["requests"]["nvidia.com/gpu"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == vllm["resources"]["requests"]["nvidia.com/gpu"]
    url = _by_kind("ConfigMap")["ponder-config"]["data"]["PONDER_ENGINE_URLS"]
    assert url == "dns+http://vllm.ponder.svc.cluster.local:8000"  # every address of the headless Service


def test_hpa_and_service_monitors() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")["ponder"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ponder"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    services = _by_kind("Service")
    monitors = _by_kind("ServiceMonitor")
    assert monitors["ponder"]["apiVersion"] == "monitoring.coreos.com/v1"
    for name, monitor in monitors.items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services.values() if _matches(wanted, s["metadata"]["labels"])]
        assert [s["metadata"]["name"] for s in selected] == [name]
        ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        assert all(e["port"] in ports and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])


def test_replicas_component_sets_only_known_variables() -> None:
    for path in (K8S / "replicas").glob("*.yaml"):
        for doc in _yaml_docs(path):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                assert doc["metadata"]["name"] in _by_kind("ConfigMap")
                assert set(doc["data"]) <= entrypoint_variables()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (optional)")
def test_kustomize_builds(tmp_path: Path) -> None:
    def build(folder: Path) -> list[dict[str, Any]]:
        result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]

    assert len(build(K8S)) == len(_k8s_docs())
    overlay = tmp_path / "overlay"  # the base plus the replicas component, as its comment says to use it
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": [os.path.relpath(K8S, overlay)], "components": [os.path.relpath(K8S / "replicas", overlay)]}))
    docs = {(d["kind"], d["metadata"]["name"]): d for d in build(overlay)}
    assert docs["Deployment", "vllm"]["spec"]["replicas"] >= 2 and ("PodDisruptionBudget", "vllm") in docs
