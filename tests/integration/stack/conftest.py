"""The production stack (tests/support/stack.py) started once for the stack test's module: PostgreSQL, Redis, moto,
two `svp serve` Tritons and the Airflow services as processes; stopped at the module's end."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_pipeline.lake.storage import S3Options
from sensevoice_pipeline.serving.server import free_port
from tests.support.compose import env_of, interpolate, load_compose, real_values
from tests.support.s3 import create_buckets, moto_s3_server
from tests.support.services import postgres_server, redis_server
from tests.support.stack import (
    DAYS,
    WORKERS,
    Stack,
    healthy,
    init_postgres,
    run_init,
    stop_groups,
    wait_for,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fixture_repository):
    folder = tmp_path_factory.mktemp("stack")
    repository = Path(shutil.copytree(fixture_repository, folder / "model_repository"))
    grpc_ports = [free_port(), free_port()]
    values = real_values()
    values.update(
        SVP_TRITON_HOSTS=",".join(f"127.0.0.1:{p}" for p in grpc_ports),
        SVP_TRITON_POOL_SLOTS="1",
        SVP_DAILY_START_DATE=DAYS[0],
        AIRFLOW_WORKER_CONCURRENCY="4",
        SVP_CHECKPOINTS_DIR=str(folder),
    )
    compose = interpolate(load_compose(), values)
    with contextlib.ExitStack() as running:
        postgres = running.enter_context(postgres_server())
        redis_port = running.enter_context(redis_server(values["REDIS_PASSWORD"]))
        s3_url = running.enter_context(moto_s3_server())
        create_buckets(
            s3_url, values["SVP_S3_ACCESS_KEY"], values["SVP_S3_SECRET_KEY"], values["SVP_S3_BUCKET"]
        )
        hosts = {
            "postgres:5432": f"127.0.0.1:{postgres.port}",
            "redis:6379": f"127.0.0.1:{redis_port}",
            "http://minio:9000": s3_url,
            "triton:8001": f"127.0.0.1:{grpc_ports[0]}",
        }
        init_postgres(postgres, compose)
        s3 = S3Options(
            endpoint_url=s3_url,
            access_key=values["SVP_S3_ACCESS_KEY"],
            secret_key=values["SVP_S3_SECRET_KEY"],
            region="us-east-1",
        )
        stack = Stack(folder, values, compose, postgres, hosts, s3, repository, api_port=free_port())
        stack.hosts["airflow-apiserver:8080"] = f"127.0.0.1:{stack.api_port}"
        running.callback(lambda: stop_groups([*stack.processes.values(), *(t for _, _, t in stack.tritons)]))
        for grpc in grpc_ports:
            http = free_port()
            # the compose file's Triton environment: its admin key (its control plane is locked with it)
            triton_env = {**os.environ, **env_of(compose["services"]["triton"])}
            triton_env.pop("SVP_CREDENTIAL_VARS")
            triton = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sensevoice_pipeline.ui.cli",
                    "serve",
                    "--repository",
                    str(repository),
                    "--grpc-port",
                    str(grpc),
                    "--http-port",
                    str(http),
                    "--metrics-port",
                    str(free_port()),
                ],
                start_new_session=True,
                env=triton_env,
                stdout=open(folder / f"triton-{grpc}.log", "w"),
                stderr=subprocess.STDOUT,
            )
            stack.tritons.append((f"127.0.0.1:{grpc}", http, triton))
        run_init(stack)
        stack.start("airflow-apiserver", "airflow-apiserver")
        stack.start("airflow-scheduler", "airflow-scheduler")
        stack.start("airflow-dag-processor", "airflow-dag-processor")
        stack.start("airflow-triggerer", "airflow-triggerer")
        for name in WORKERS:
            stack.start(name, "airflow-worker", "--celery-hostname", f"{name}@%h")
        stack.start("release-worker", "airflow-release-worker", "--celery-hostname", "release-worker@%h")
        wait_for(
            "both Tritons",
            lambda: all(
                "Triton ready" in (folder / f"triton-{g.rsplit(':', 1)[1]}.log").read_text()
                for g, _, _ in stack.tritons
            ),
            180,
            stack,
        )
        wait_for("the api-server", lambda: healthy(stack), 240, stack, every_s=2)
        wait_for(
            "both DAGs parsed",
            lambda: (
                len(
                    stack.metadata(
                        "SELECT dag_id FROM dag WHERE dag_id IN ('sensevoice_daily', 'sensevoice_model_release')"
                    )
                )
                == 2
            ),
            240,
            stack,
            every_s=2,
        )
        wait_for(
            "three Celery workers",
            lambda: all(" ready." in stack.log(n) for n in (*WORKERS, "release-worker")),
            240,
            stack,
            every_s=2,
        )
        yield stack
