# Airflow for the production stack: the pinned official image plus the project (core + the `airflow` extra: the
# DAG's library and the `sensevoice_triton` connection type). No `export` (torch, funasr) and no `serve` extra:
# workers call Triton over gRPC.
#
# Build context: the repository root (see docker-compose.yml); .dockerignore keeps .venv, var/ and caches out.
FROM apache/airflow:3.3.2-python3.11

# The pipeline's data roots (SVP_RAW_ROOT, SVP_LAKE_ROOT) live under /data, a named volume in docker-compose.yml;
# a fresh volume takes the ownership of the image's folder, so the airflow user can write there.
USER root
RUN mkdir -p /opt/svp/src /data/raw /data/lake \
 && chown -R airflow:0 /opt/svp /data
USER airflow

WORKDIR /opt/svp/src
COPY --chown=airflow:0 pyproject.toml README.m[d] ./
COPY --chown=airflow:0 sensevoice_pipeline ./sensevoice_pipeline
# Re-state the image's Airflow version so pip never up- or downgrades it while resolving the project's pins.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" ".[airflow]" \
 && python -c "import numpy, sensevoice_pipeline.jobs.daily, sensevoice_pipeline.provider; assert numpy.__version__.startswith('1.')"

# DAGs are baked into the image so every worker, on any host, runs the same code as the scheduler.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
WORKDIR /opt/airflow
