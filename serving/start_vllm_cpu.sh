#!/usr/bin/env bash
# Serve an exported jdlens model folder (a plain HF *ForSequenceClassification folder) with vLLM on CPU.
#
#   serving/start_vllm_cpu.sh MODEL_DIR [PORT]      (PORT default 8001; runs in the foreground)
#
# The model is served as a pooling/classify model under the name MODEL_DIR (GET /v1/models shows it);
# POST /classify with "use_activation": false returns the 8 raw logits, which jdlens splits itself
# (softmax over roles, sigmoid over flags) because vLLM would apply one activation to all 8.
#
# Env:
#   VLLM_VENV                  venv from serving/setup_vllm_cpu.sh (default: <repo>/.venv-vllm)
#   VLLM_HOST                  bind address (default 127.0.0.1: vLLM's API has no auth)
#   VLLM_CPU_OMP_THREADS_BIND  CPU cores for the engine (default 0-1)
#   VLLM_MAX_MODEL_LEN         max tokens per input (default 512)
#   VLLM_EXTRA_ARGS            extra api_server flags, word-split
#   VLLM_SCRATCH_BASE          short dir for the throwaway TMPDIR/VLLM_CACHE_ROOT (default /tmp)
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 MODEL_DIR [PORT]" >&2
  exit 2
fi
MODEL_DIR="$1"
PORT="${2:-8001}"
if [[ ! -f "$MODEL_DIR/config.json" ]]; then
  echo "$MODEL_DIR has no config.json: not an exported HF model folder" >&2
  exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "no vLLM venv at $VENV: run serving/setup_vllm_cpu.sh first" >&2
  exit 2
fi

# Throwaway temp/cache dirs: vLLM writes compile caches and IPC sockets there, and a stale cache from
# another model or version should never be picked up. Removed when the server exits.
# Deliberately NOT under the caller's TMPDIR: vLLM's ZMQ IPC sockets live in TMPDIR and a Unix socket
# path may be at most 107 bytes, so a deep TMPDIR (pytest's, for one) makes startup fail.
SCRATCH_BASE="${VLLM_SCRATCH_BASE:-/tmp}"
SCRATCH="$(mktemp -d "$SCRATCH_BASE/jdlv.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/t" "$SCRATCH/c"

export TMPDIR="$SCRATCH/t"
export VLLM_CACHE_ROOT="$SCRATCH/c"
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-1}"
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1

# shellcheck disable=SC2086
# Not exec'd: the EXIT trap must run to remove the scratch dir. Forward TERM/INT to the server.
"$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
  --model "$MODEL_DIR" \
  --host "${VLLM_HOST:-127.0.0.1}" \
  --port "$PORT" \
  --runner pooling \
  --convert classify \
  --dtype float32 \
  --max-model-len "${VLLM_MAX_MODEL_LEN:-512}" \
  --enforce-eager \
  --gpu-memory-utilization 0.3 \
  ${VLLM_EXTRA_ARGS:-} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
set +e
wait "$pid"
rc=$?
# A trapped TERM interrupts the first wait; wait again for the server to actually exit.
if kill -0 "$pid" 2>/dev/null; then
  wait "$pid"
  rc=$?
fi
exit "$rc"
