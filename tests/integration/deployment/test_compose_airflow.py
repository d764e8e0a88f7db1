"""Airflow in the production-shaped stack: scalable workers, the pipeline's settings (object store, the catalog's
Postgres, Triton), the init's migration and Triton connection, the bucket; one Airflow image carrying the plugin and
the DAGs with everything they import; the release worker on its own queue, alone writing the model repository, and
the DAGs parsed by Airflow with the compose environment. The compose file and the Dockerfiles are parsed by
tests/support/compose.py and tests/support/dockerfile.py; the fixtures `compose`, `services` and `pyproject` are
tests/integration/deployment/conftest.py's. No Docker engine is needed."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.compose import (
    AIRFLOW_DEFAULT_QUEUE,
    AIRFLOW_LONG_RUNNING,
    MODEL_REPOSITORY,
    PROMETHEUS_CONFIG,
    RELEASE_WORKER,
    ROOT,
    STATSD_MAPPING,
    args_of,
    env_example,
    env_of,
    interpolate,
    real_values,
    script_of,
    triton_ports,
    volumes_of,
)
from tests.support.dockerfile import (
    build_target,
    built_dockerfile,
    copy_instructions,
    is_pinned,
    pip_installs,
    stage_instructions,
)

# --- Airflow -----------------------------------------------------------------------------------------------------


def test_worker_can_be_scaled(services):
    worker = services["airflow-worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, f"airflow-worker sets {fixed}: `--scale airflow-worker=N` would clash"
    assert args_of(worker["command"]) == ["celery", "worker"]


def test_airflow_services_get_the_pipeline_settings(services):
    """Every Airflow service reads the data roots from the object store and the lake's catalog from the stack's
    Postgres (no disk shared between workers: they may run on other hosts); its warehouse file is its own."""
    grpc = triton_ports(services["triton"])["grpc"]
    for name in AIRFLOW_LONG_RUNNING | {"airflow-init", RELEASE_WORKER}:
        svc = services[name]
        env = env_of(svc)
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT", "SVP_WAREHOUSE", "SVP_TRITON_URL", "SVP_CATALOG"):
            assert env.get(key), f"{name}: {key} not set"
        for key in ("SVP_RAW_ROOT", "SVP_LAKE_ROOT"):
            assert env[key].startswith("s3://${SVP_S3_BUCKET}/"), (
                f"{name}: {key}={env[key]} is not in the bucket"
            )
        catalog = urlsplit(env["SVP_CATALOG"])
        assert (catalog.scheme, catalog.hostname, catalog.path) == (
            "postgresql",
            "postgres",
            "/${SVP_CATALOG_DB}",
        )
        assert not any(
            v["type"] == "volume" and env["SVP_WAREHOUSE"].startswith(v["target"]) for v in volumes_of(svc)
        ), f"{name}: the warehouse file is on a shared volume"
        assert env["SVP_TRITON_URL"] == f"triton:{grpc}"
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname in services


def test_airflow_sends_its_metrics_to_the_statsd_exporter_that_prometheus_scrapes(services):
    """Every Airflow container sends StatsD (the daily job's own metrics among Airflow's) to statsd-exporter, on the
    port it listens on, with the mapping the docs' queries rely on; Prometheus scrapes the exporter on a network
    the two share, and Airflow starts after it (a StatsD client resolves its host once)."""
    exporter, prom = services["statsd-exporter"], services["prometheus"]
    assert exporter["image"].startswith("prom/statsd-exporter:v") and is_pinned(exporter["image"])
    args = dict(a.split("=", 1) for a in args_of(exporter["command"]))
    udp_port = args["--statsd.listen-udp"].rsplit(":", 1)[1]
    web_port = args["--web.listen-address"].rsplit(":", 1)[1]
    mount = next(v for v in volumes_of(exporter) if v["target"] == args["--statsd.mapping-config"])
    assert (
        mount["type"] == "bind"
        and mount["read_only"]
        and (ROOT / mount["source"]).resolve() == STATSD_MAPPING
    )
    for name in AIRFLOW_LONG_RUNNING | {RELEASE_WORKER}:
        env = env_of(services[name])
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "true", name
        assert (env["AIRFLOW__METRICS__STATSD_HOST"], env["AIRFLOW__METRICS__STATSD_PORT"]) == (
            "statsd-exporter",
            udp_port,
        ), name
        assert env["AIRFLOW__METRICS__STATSD_PREFIX"] == "airflow", (
            name
        )  # the mapping matches airflow.sensevoice.*
        assert services[name]["depends_on"]["statsd-exporter"]["condition"] == "service_healthy", name
    assert all(
        m["match"].startswith("airflow.") for m in yaml.safe_load(STATSD_MAPPING.read_text())["mappings"]
    )
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "airflow"]
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"statsd-exporter:{web_port}"]
    assert set(prom["networks"]) & set(exporter["networks"]), "Prometheus cannot reach statsd-exporter"
    assert "default" in exporter["networks"], "the Airflow containers cannot reach statsd-exporter"
    assert "statsd-exporter" in prom["depends_on"]


def test_postgres_creates_the_lake_catalogs_own_database_and_role(services):
    svc = services["postgres"]
    mounts = {v["target"]: v for v in volumes_of(svc)}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert init["read_only"] and (ROOT / init["source"]).is_dir()
    script = (ROOT / init["source"] / "10-lake-catalog.sh").read_text()
    assert "CREATE DATABASE" in script and "CREATE ROLE" in script
    assert {"SVP_CATALOG_DB", "SVP_CATALOG_USER", "SVP_CATALOG_PASSWORD"} <= set(env_of(svc))
    assert "SVP_CATALOG_PASSWORD" in env_of(svc)["SVP_CREDENTIAL_VARS"].split()


def test_init_migrates_and_creates_the_triton_connection(services):
    from sensevoice_pipeline.provider import get_provider_info
    from sensevoice_pipeline.settings import Settings

    script = script_of(services["airflow-init"])
    assert re.search(r"\bairflow db migrate\b", script), "airflow-init does not migrate the database"
    conn_id = Settings.triton_conn_id  # the Connection every task looks up by default
    m = re.search(
        rf'airflow connections add {re.escape(conn_id)}\s+--conn-json\s+"((?:[^"\\]|\\.)+)"', script
    )
    assert m, f"airflow-init does not create the {conn_id} connection"
    conn = json.loads(
        m.group(1).replace('\\"', '"').replace("$${SVP_TRITON_HOSTS}", env_example()["SVP_TRITON_HOSTS"])
    )
    conn_types = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    assert conn["conn_type"] in conn_types, conn
    assert conn["host"] == "triton" and conn["host"] in services
    assert conn["port"] == triton_ports(services["triton"])["grpc"]


def test_minio_init_creates_the_bucket_with_the_pinned_client(services):
    svc = services["minio-init"]
    assert svc["image"].startswith("minio/mc:") and is_pinned(svc["image"])
    script = script_of(svc)
    assert re.search(r"mc mb --ignore-existing \S*SVP_S3_BUCKET", script), script
    assert "http://minio:9000" in script


# --- one Airflow image: the plugin and what the DAGs import -------------------------------------------------------


def test_the_airflow_image_carries_the_plugin_and_the_dags(compose, services):
    from sensevoice_pipeline.resources import DAGS_DIR, PLUGINS_DIR

    common = compose["x-airflow-common"]
    dockerfile, target = built_dockerfile(common), build_target(common)
    instructions = stage_instructions(dockerfile, target)
    airflow_home = (
        "/opt/airflow"  # the official image's AIRFLOW_HOME; plugins_folder defaults to $AIRFLOW_HOME/plugins
    )
    assert not any(instr == "ENV" and "AIRFLOW_HOME" in rest for instr, rest in instructions)
    for name in AIRFLOW_LONG_RUNNING | {RELEASE_WORKER, "airflow-init"}:
        env = env_of(services[name])
        assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in env and "AIRFLOW__CORE__DAGS_FOLDER" not in env, name
    copies = {
        c["dest"].rstrip("/"): c["sources"]
        for c in copy_instructions(dockerfile, instructions)
        if not c["from"]
    }
    assert copies.get(f"{airflow_home}/plugins") == [f"{PLUGINS_DIR.relative_to(ROOT)}/"], copies
    assert copies.get(f"{airflow_home}/dags") == [f"{DAGS_DIR.relative_to(ROOT)}/"], copies
    assert list(PLUGINS_DIR.glob("*.py")), "nothing to copy in plugins/"
    # the build imports the plugin and both DAGs, so a missing dependency fails the build, not the first page view
    runs = " ".join(rest for instr, rest in instructions if instr == "RUN")
    for module in [p.stem for p in PLUGINS_DIR.glob("*.py")] + [p.stem for p in DAGS_DIR.glob("*.py")]:
        assert re.search(rf"import [\w, ]*\b{module}\b", runs), f"the image build does not import {module}"
    assert services["airflow-apiserver"]["image"] == common["image"], (
        "the api-server serves the page: same image"
    )


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (where a heavy optional import would break the DAG's parse or the page)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _requirement_closure(dist_name: str, extras: set[str]) -> set[str]:
    """Normalised names of ``dist_name`` (with ``extras``) and every distribution it requires, as installed here."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(dist_name, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_what_the_dags_and_the_plugin_import_is_in_the_airflow_image(compose):
    """Every module the DAGs and the plugin import at module level (following the project's own modules) comes from
    the stdlib, the project, or a distribution in the dependency closure of what the image installs: the core and the
    `airflow` extra. A DAG that imported torch at the top would fail here, as it would fail in the image."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    instructions = stage_instructions(
        built_dockerfile(compose["x-airflow-common"]), build_target(compose["x-airflow-common"])
    )
    extras = {
        e
        for cmd in pip_installs(instructions)
        for m in re.finditer(r"\.\[([^\]]*)\]", cmd)
        for e in m.group(1).split(",")
    }
    assert extras == {"airflow"}, extras
    closure = _requirement_closure("sensevoice-pipeline", extras)
    providers = metadata.packages_distributions()
    todo = list((ROOT / "dags").glob("*.py")) + list((ROOT / "plugins").glob("*.py"))
    seen, outside = set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _module_imports(path):
            top = name.split(".")[0]
            if top == "sensevoice_pipeline":
                parts = name.split(".")
                for n in range(len(parts), 1, -1):
                    base = ROOT.joinpath(*parts[:n])
                    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                        if candidate.is_file():
                            todo.append(candidate)
                continue
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            dists = {canonicalize_name(d) for d in providers.get(top, [])}
            if not dists & closure:
                outside.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    assert len(seen) > 10, "the import walk did not follow the project's modules"
    assert not outside, f"imported but not installed in the Airflow image (core + airflow extra): {outside}"


# --- the release worker ------------------------------------------------------------------------------------------


def test_the_release_worker_consumes_its_own_queue_and_alone_writes_the_model_repository(compose, services):
    worker, triton = services[RELEASE_WORKER], services["triton"]
    args = args_of(worker["command"])
    assert args[:2] == ["celery", "worker"]
    queues = args[args.index("--queues") + 1].split(",")
    queue = env_of(compose["x-airflow-common"])["SVP_RELEASE_QUEUE"]
    assert queues == [queue] and queue != AIRFLOW_DEFAULT_QUEUE, (queues, queue)
    assert args[args.index("--concurrency") + 1] == "1", "one release at a time (an export needs ~4.5 GB)"
    assert "--queues" not in args_of(services["airflow-worker"]["command"]), (
        "daily workers serve the default queue"
    )
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, fixed

    repo_in_triton = next(
        a.split("=", 1)[1] for a in args_of(triton["command"]) if a.startswith("--model-repository=")
    )

    def repository_mounts(name):
        return [
            v
            for v in volumes_of(services[name])
            if v["type"] == "bind" and (ROOT / v["source"]).resolve() == MODEL_REPOSITORY.resolve()
        ]

    (rw,) = repository_mounts(RELEASE_WORKER)
    assert not rw["read_only"], "the release worker writes versions: read-write"
    assert rw["target"] == env_of(worker)["SVP_MODEL_REPOSITORY"] == repo_in_triton, (
        "the same path in both containers (the release code hands paths to Triton's load API)"
    )
    (ro,) = repository_mounts("triton")
    assert ro["read_only"]
    for name in services:
        for mount in repository_mounts(name):
            assert mount["read_only"] or name == RELEASE_WORKER, (
                f"{name} mounts the model repository read-write"
            )
    assert repository_mounts("airflow-apiserver"), (
        "the page shows model versions: the api-server needs the repository"
    )
    # runs as the owner of the host folder, group 0 (the official image's convention for arbitrary uids)
    assert re.fullmatch(r"\$\{AIRFLOW_UID[^}]*\}:0", worker["user"]), worker.get("user")
    assert "triton" in worker["depends_on"], "stage/canary/promote talk to Triton"


RELEASE_QUEUES_SCRIPT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=DAGS)
assert not bag.import_errors, bag.import_errors
print("QUEUES", json.dumps({d: sorted({t.queue for t in bag.dags[d].tasks})
                            for d in ("sensevoice_model_release", "sensevoice_daily")}))
"""


@pytest.mark.airflow
@pytest.mark.timeout(180)
def test_the_release_dags_tasks_go_to_the_release_workers_queue(tmp_path, compose, services):
    """The DAGs parsed by Airflow with the compose stack's environment: every release task on the queue only the
    release worker consumes, every daily task on the default queue the daily workers serve."""
    from sensevoice_pipeline.demo.local_airflow import LocalAirflow

    stack_env = interpolate(env_of(compose["x-airflow-common"]), real_values())
    airflow = LocalAirflow(home=tmp_path / "airflow-home")
    env = airflow.env({k: stack_env[k] for k in ("SVP_RELEASE_QUEUE", "SVP_TRITON_POOL")})
    script = RELEASE_QUEUES_SCRIPT.replace("DAGS", repr(str(airflow.dags_folder)))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    queues = json.loads(
        next(line for line in out.stdout.splitlines() if line.startswith("QUEUES ")).split(" ", 1)[1]
    )
    worker_args = args_of(services[RELEASE_WORKER]["command"])
    assert queues["sensevoice_model_release"] == [worker_args[worker_args.index("--queues") + 1]]
    assert queues["sensevoice_daily"] == [AIRFLOW_DEFAULT_QUEUE]


def test_the_release_dag_keeps_a_default_queue_without_the_environment(monkeypatch):
    """Without SVP_RELEASE_QUEUE (a laptop, `airflow dags test`) the DAG still parses, with the default queue name."""
    monkeypatch.delenv("SVP_RELEASE_QUEUE", raising=False)
    source = (ROOT / "dags" / "sensevoice_model_release.py").read_text()
    tree = ast.parse(source)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "release_queue" in funcs and re.search(r'"queue":\s*release_queue\(\)', source)
    namespace: dict = {"os": os}
    for node in tree.body:  # the constants and the function alone: no Airflow import needed
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id.isupper() for t in node.targets
        ):
            exec(compile(ast.Module([node], []), "dag", "exec"), namespace)
    exec(compile(ast.Module([funcs["release_queue"]], []), "dag", "exec"), namespace)
    assert namespace["release_queue"]() == "releases"
    monkeypatch.setenv("SVP_RELEASE_QUEUE", "gpu-releases")
    assert namespace["release_queue"]() == "gpu-releases"
