"""Triton in the production-shaped stack: a GPU reserved, the model repository mounted read-only, both models loaded
explicitly with production configs, a readiness healthcheck; Prometheus scraping it with the shipped config, the
documented queries and the dashboard's using metric names a real local Triton exports; the TensorRT timing cache
volume; its control plane locked with a key only the release worker holds (issue 28). The release worker's write /
Triton's read-only load, for real: tests/integration/releases/test_release_worker.py. The compose file and the
Dockerfiles are parsed by tests/support/compose.py and tests/support/dockerfile.py; the fixtures `compose`,
`services` and `pyproject` are tests/integration/deployment/conftest.py's. No Docker engine is needed."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
import yaml

from tests.support.compose import (
    DEPLOYMENT_DOC,
    GRAFANA_DASHBOARD,
    MODEL_REPOSITORY,
    PROMETHEUS_CONFIG,
    RELEASE_WORKER,
    ROOT,
    TRITON_MODELS,
    args_of,
    env_example,
    env_of,
    triton_ports,
    volumes_of,
)
from tests.support.dockerfile import (
    is_pinned,
)

# --- Triton ------------------------------------------------------------------------------------------------------


def test_triton_reserves_a_gpu(services):
    devices = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices


def test_triton_mounts_the_model_repository_read_only(services):
    svc = services["triton"]
    args = args_of(svc["command"])
    repo = [a.split("=", 1)[1] for a in args if a.startswith("--model-repository=")]
    assert len(repo) == 1, f"triton: one --model-repository=... expected in {args}"
    mounts = [v for v in volumes_of(svc) if v["target"].rstrip("/") == repo[0].rstrip("/")]
    assert mounts, f"nothing is mounted at {repo[0]}"
    mount = mounts[0]
    assert mount["type"] == "bind" and (ROOT / mount["source"]).resolve() == MODEL_REPOSITORY.resolve(), mount
    assert mount["read_only"], "the model repository must be mounted read-only"


def test_triton_loads_both_models_explicitly_with_production_configs(services):
    args = args_of(services["triton"]["command"])
    assert args[0] == "tritonserver"
    assert "--model-control-mode=explicit" in args, args
    loaded = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
    assert loaded == TRITON_MODELS, loaded
    for model in loaded:
        config = MODEL_REPOSITORY / model / "config.pbtxt"
        assert config.is_file(), f"--load-model={model}: no {config}"
        assert re.search(rf'^name:\s*"{re.escape(model)}"', config.read_text(), re.M), (
            f"{config}: name differs"
        )
    assert not any(a.startswith("--model-config-name") for a in args), "production serves config.pbtxt"
    assert "KIND_GPU" in (MODEL_REPOSITORY / "sensevoice_encoder" / "config.pbtxt").read_text()


def test_triton_healthcheck_asks_readiness(services):
    svc = services["triton"]
    test = " ".join(args_of(svc["healthcheck"]["test"]))
    assert f"localhost:{triton_ports(svc)['http']}/v2/health/ready" in test, test


# --- Triton metrics: Prometheus, queries, dashboard ---------------------------------------------------------------


def test_prometheus_scrapes_triton_with_the_shipped_config(services):
    prom, triton = services["prometheus"], services["triton"]
    assert prom["image"].startswith("prom/prometheus:v") and is_pinned(prom["image"])
    args = args_of(prom["command"])
    config_path = next(a.split("=", 1)[1] for a in args if a.startswith("--config.file="))
    mount = next(v for v in volumes_of(prom) if v["target"] == config_path)
    assert (
        mount["type"] == "bind"
        and mount["read_only"]
        and (ROOT / mount["source"]).resolve() == PROMETHEUS_CONFIG
    )
    storage = next(a.split("=", 1)[1] for a in args if a.startswith("--storage.tsdb.path="))
    assert any(v["type"] == "volume" and v["target"] == storage for v in volumes_of(prom)), (
        "TSDB not on a volume"
    )
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "triton"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"triton:{triton_ports(triton)['metrics']}"], targets
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "triton" in prom["depends_on"]


def promql_of_dashboard() -> list[str]:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def promql_of_docs() -> list[str]:
    """The `...` cells of the queries tables in docs/deployment.md that use a Triton metric or one of the daily
    pipeline's (sensevoice_daily_*, through statsd-exporter: tests/integration/airflow/test_metrics.py)."""
    return [
        q
        for q in re.findall(r"`([^`\n]*\b(?:nv|sensevoice_daily)_\w+[^`\n]*)`", DEPLOYMENT_DOC.read_text())
        if "(" in q or " " not in q
    ]


def test_documented_queries_cover_queue_compute_rate_and_failures_per_model_and_version():
    docs, dashboard = promql_of_docs(), promql_of_dashboard()
    assert set(dashboard) <= set(docs), (
        f"dashboard queries missing from docs/deployment.md: {set(dashboard) - set(docs)}"
    )
    text = " ".join(docs)
    docs = [q for q in docs if "nv_" in q]  # Triton's; the pipeline's carry no model label
    for metric in (
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_success",
        "nv_inference_request_failure",
    ):
        assert metric in text, metric
    for query in docs:
        if query.startswith("sum by (model, version)") or "by (model, version)" in query:
            continue
        assert query.startswith(("nv_gpu_", "sum by (model)")) or "(" not in query, f"not per model: {query}"


@pytest.mark.triton
def test_the_queries_use_metric_names_a_real_triton_exports(triton):
    """Every metric a documented query uses, read from the local Triton's /metrics (Triton 2.51, the NGC 24.10
    release): per model and version. GPU metrics only exist on a GPU host and are left out here."""
    from sensevoice_pipeline.serving.client import transcribe_sync
    from tests.support.audio import synthetic_clip

    transcribe_sync([synthetic_clip(1.0, seed=1)], "en", url=triton.grpc_url)
    with urllib.request.urlopen(f"http://{triton.host}:{triton.metrics_port}/metrics", timeout=10) as resp:
        exported = resp.read().decode()
    used = {m for q in promql_of_docs() + promql_of_dashboard() for m in re.findall(r"\bnv_\w+", q)}
    for metric in sorted(used):
        if metric.startswith(("nv_gpu_", "nv_energy_")):
            continue
        lines = [line for line in exported.splitlines() if line.startswith(metric + "{")]
        assert lines, f"{metric} is not exported by Triton"
        if metric != "nv_inference_pending_request_count":
            assert any('model="sensevoice"' in line and 'version="1"' in line for line in lines), lines[:3]


# --- the TensorRT cache volume and the docs -----------------------------------------------------------------------


def test_triton_has_a_writable_volume_where_the_tensorrt_variant_keeps_its_timing_cache(services):
    text = (MODEL_REPOSITORY / "sensevoice_encoder" / "configs" / "tensorrt.pbtxt").read_text()
    (cache_path,) = re.findall(r'key: "trt_timing_cache_path" value: "([^"]+)"', text)
    mounts = [v for v in volumes_of(services["triton"]) if v["target"] == cache_path]
    assert len(mounts) == 1 and mounts[0]["type"] == "volume" and not mounts[0]["read_only"], mounts
    assert cache_path in DEPLOYMENT_DOC.read_text()


def test_docs_cover_the_release_worker_the_bind_switch_secrets_and_prometheus(services):
    text = DEPLOYMENT_DOC.read_text()
    for needed in (
        RELEASE_WORKER,
        "SVP_RELEASE_QUEUE",
        "AIRFLOW_BIND",
        "AIRFLOW_UID",
        "check-secrets.sh",
        "SVP_CREDENTIAL_VARS",
        "prometheus",
        "deploy/grafana/sensevoice-triton.json",
        "/trt-cache",
        "compose-spec",
    ):
        assert needed in text, f"docs/deployment.md does not mention {needed!r}"
    for name in services:
        assert f"`{name}`" in text, f"docs/deployment.md does not list the service {name}"


# --- Triton's control plane (issue 28) ----------------------------------------------------------------------------


def test_triton_locks_its_control_plane_with_the_key_only_the_release_worker_holds(services):
    from sensevoice_pipeline.serving.admin import KEY_ENV, restricted_api_args

    triton = services["triton"]
    assert set(restricted_api_args("${SVP_TRITON_ADMIN_KEY}")) <= set(args_of(triton["command"]))
    assert KEY_ENV in env_of(triton)["SVP_CREDENTIAL_VARS"].split()
    holders = {name for name, svc in services.items() if KEY_ENV in env_of(svc)}
    assert holders == {"triton", RELEASE_WORKER}, holders
    assert KEY_ENV in env_of(services[RELEASE_WORKER])["SVP_CREDENTIAL_VARS"].split()
    assert env_example()[KEY_ENV].startswith("change-me")  # check-secrets.sh refuses it until replaced


def test_only_what_sends_triton_requests_joins_its_network(compose, services):
    def networks(svc: dict) -> set[str]:
        value = svc.get("networks") or ["default"]
        return set(value) if isinstance(value, list) else set(value)

    assert networks(services["triton"]) == {"serving"}
    on_serving = {name for name, svc in services.items() if "serving" in networks(svc)}
    assert on_serving == {"triton", "prometheus", "airflow-worker", RELEASE_WORKER, "airflow-apiserver"}, (
        on_serving
    )
    assert {"default", "serving"} <= set(compose["networks"])
