# Airflow for the production stack, in two targets of one file (docker-compose.yml names the target):
#
#   airflow         the pinned official image plus the project (core + the `airflow` extra: the DAGs' library and
#                   the `sensevoice_triton` connection type), the DAGs and the plugin (the SenseVoice page). Every
#                   Airflow service runs it: api-server, scheduler, dag-processor, triggerer, the daily workers.
#                   No `export` (torch, funasr) and no `serve` extra: workers call Triton over gRPC.
#   release-worker  the same plus the `export` extra (CPU torch, funasr) and the files the release needs (the
#                   export package, the model repository template, the fixture model's golden clips): the Celery
#                   worker of the `releases` queue that runs dags/sensevoice_model_release.py.
#
# Both wrap the image's entrypoint in docker/check-secrets.sh: a container refuses to start while a secret named in
# $SVP_CREDENTIAL_VARS is empty or still the .env.example placeholder.
#
# Build context: the repository root. BuildKit (what `docker compose build` uses) reads the ignore file beside this
# Dockerfile, docker/airflow.Dockerfile.dockerignore, instead of the root .dockerignore ("docker build -f
# myapp.Dockerfile . will first look for an ignore file named myapp.Dockerfile.dockerignore", docker/cli
# docs/reference/commandline/build.md): it lets export/ and the model repository's template files in.

# --- target `airflow` ----------------------------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11 AS airflow

# The data roots live in the object store (docker-compose.yml); each container keeps only its own DuckDB file of
# views under /opt/svp/warehouse (SVP_WAREHOUSE). Group 0 may write, as in the rest of the official image: the
# release worker runs as $AIRFLOW_UID:0 (the owner of the host's model repository).
USER root
RUN mkdir -p /opt/svp/src /opt/svp/warehouse \
 && chown -R airflow:0 /opt/svp \
 && chmod -R g+rwX /opt/svp
COPY --chmod=0755 docker/check-secrets.sh /usr/local/bin/check-secrets.sh
USER airflow

WORKDIR /opt/svp/src
COPY --chown=airflow:0 pyproject.toml README.m[d] ./
COPY --chown=airflow:0 sensevoice_pipeline ./sensevoice_pipeline
# Re-state the image's Airflow version so pip never up- or downgrades it while resolving the project's pins (the
# extra's OpenLineage and HTTP providers and StatsD client replace the image's own versions of them).
RUN pip install --no-cache-dir "apache-airflow==3.3.2" ".[airflow]" \
 && python -c "import numpy, statsd, sensevoice_pipeline.jobs.daily, sensevoice_pipeline.provider.lineage, sensevoice_pipeline.provider.decorators, sensevoice_pipeline.provider.metrics, sensevoice_pipeline.provider.notify, airflow.providers.http.notifications.http; assert numpy.__version__.startswith('1.')"

# DAGs and the plugin are baked into the image so every container, on any host, runs the same code. The plugin
# goes to Airflow's plugins_folder ($AIRFLOW_HOME/plugins, AIRFLOW_HOME=/opt/airflow in the official image); the
# api-server serves its page under /sensevoice/.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
# Fail the build, not the first page view, when the plugin or a DAG cannot be imported with what is installed.
RUN python -c "import sys; sys.path[:0] = ['/opt/airflow/plugins', '/opt/airflow/dags']; import sensevoice_plugin, sensevoice_daily, sensevoice_model_release, sensevoice_alerts"

WORKDIR /opt/airflow
# The official image's entrypoint (dumb-init, then /entrypoint), with the secrets check in between. The command
# (api-server, scheduler, celery worker, ...) is set per service in docker-compose.yml.
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/usr/local/bin/check-secrets.sh", "/entrypoint"]
CMD []

# --- target `release-worker` ---------------------------------------------------------------------------------------
FROM airflow AS release-worker

# torch from PyTorch's CPU index first (the export runs on the CPU; the PyPI wheel is the multi-GB CUDA build), at
# the project's exact pin: pip then takes 2.13.0+cpu as satisfying torch==2.13.0 and fetches nothing bigger.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /opt/svp/src
COPY --chown=airflow:0 export ./export
COPY --chown=airflow:0 model_repository ./model_repository
COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 plugins ./plugins
# --force-reinstall --no-deps: the project is rebuilt now that export/ and model_repository/ are here, so the wheel
# carries the `export` package, the repository template and the fixture model (the canary's default golden set).
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==2.13.0" \
 && pip install --no-cache-dir "apache-airflow==3.3.2" ".[airflow,export]" \
 && pip install --no-cache-dir --no-deps --force-reinstall . \
 && python -c "import torch, funasr, sensevoice_export.pipeline; from sensevoice_pipeline.serving.repository import template_root; from sensevoice_pipeline.releases.golden import DEFAULT_GOLDEN_DIR; template_root(); assert (DEFAULT_GOLDEN_DIR / 'expected.jsonl').is_file(); assert not torch.cuda.is_available()"
WORKDIR /opt/airflow
