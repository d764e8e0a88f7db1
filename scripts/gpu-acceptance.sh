#!/usr/bin/env bash
# The GPU acceptance run (issue 15, item 4; docs/gpu-acceptance.md): export fp32 + fp16, parity on the CUDA provider
# against PyTorch on the GPU, encoder throughput by batch size, the production Triton image on the export.
#
#   bash scripts/gpu-acceptance.sh [--model DIR] [--out DIR] [--golden DIR] ...   (one GPU, < 10 minutes)
#   bash scripts/gpu-acceptance.sh --device cpu                                    (what the test suite runs)
#
# Nothing is downloaded while it runs. It needs, installed beforehand:
#   - the project venv with the export extra:      make venv   (or: pip install -e '.[export]')
#   - onnxruntime-gpu instead of onnxruntime (both install the module `onnxruntime`; keep one):
#       pip uninstall -y onnxruntime && pip install onnxruntime-gpu==<the pinned onnxruntime version>
#   - torch 2.13.0 built with CUDA (the Linux wheel on PyPI is; a "+cpu" wheel is not)
#   - an NVIDIA driver (nvidia-smi works)
#   - optional, for the last step: docker with the NVIDIA container toolkit and the image
#     sensevoice-pipeline/triton:0.1.0 (docker compose build triton); without them that step says "skipped: why".
# Exit status: 0 passed, 1 a check failed, 2 something above is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

device=cuda
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --device) device="${args[$((i + 1))]:-}" ;;
    --device=*) device="${args[$i]#--device=}" ;;
  esac
done

if [[ ! -x "$PY" ]]; then
  echo "gpu-acceptance: no project venv at $PY: run 'make venv' first (or set PYTHON=...)" >&2
  exit 2
fi
if [[ "$device" == cuda ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-acceptance: no working NVIDIA driver (nvidia-smi missing or failing); --device cpu runs without one" >&2
    exit 2
  fi
  nvidia-smi -L
fi

# Nothing from a hub: --model must be a local dir (checked), and huggingface_hub stays offline if anything asks it.
export HF_HUB_OFFLINE=1
exec "$PY" "$(dirname "$0")/../tools/gpu_acceptance.py" "$@"
