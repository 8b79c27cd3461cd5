#!/usr/bin/env bash
# One call on a GPU machine (CUDA build of torch already installed, no network): training speed
# against the DataLoader peer on CUDA, then Burda et al.'s schedule (VAE, then IWAE k=50), resumable
# across calls; everything it produces goes to $OUT (results.json, the benchmark logs, the runs'
# metrics and checkpoints). See benchmarks/README.md, "GPU run".
#
#   bash benchmarks/gpu_run.sh                        # on the GPU machine, from the repository root
#   DEVICE=cpu SPEED_N=500 SPEED_EPOCHS=1 SPEED_REPEATS=1 BURDA_EPOCHS=5 BURDA_LIMIT=200 \
#     EVAL_K=10 EVAL_N=50 IWAE_K=5 OUT=/tmp/gpu_rehearsal bash benchmarks/gpu_run.sh   # CPU rehearsal
#
# Carried along (never committed; benchmarks/gpu_carry/ is git-ignored):
#   $GPU_CARRY/wheels/*.whl              pure-Python wheels of what the GPU machine's Python lacks
#                                         (tqdm, threadpoolctl, ...): installed into .gpu_site/ (PYTHONPATH)
#   $GPU_CARRY/data/binarized_mnist.npz  binarized MNIST (a copy of ../shared/data)
#   $GPU_CARRY/runs/                     optional: the runs of an earlier call, to resume them
# Environment (defaults in brackets):
#   PYTHON [python3]  DEVICE [cuda]  OUT [$OUT or runs/gpu]  GPU_CARRY [benchmarks/gpu_carry]
#   SPEED_N [50000] SPEED_EPOCHS [3] SPEED_REPEATS [3] (0 skips) SPEED_COMPILE_MODE [reduce-overhead] (0 skips)
#   BURDA_EPOCHS [3280] BURDA_BATCH [20] BURDA_LIMIT [all 50,000] EVAL_K [5000] EVAL_N [all 10,000]
#   IWAE_K [50] (0 skips the IWAE run)   BURDA_SECONDS [420]: wall-clock budget of the training runs
#   in this call, shared by both runs (they stop at an epoch boundary and resume on the next call)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-$ROOT/runs/gpu}"
GPU_CARRY="${GPU_CARRY:-$ROOT/benchmarks/gpu_carry}"
SPEED_N="${SPEED_N:-50000}"; SPEED_EPOCHS="${SPEED_EPOCHS:-3}"; SPEED_REPEATS="${SPEED_REPEATS:-3}"
SPEED_COMPILE_MODE="${SPEED_COMPILE_MODE:-reduce-overhead}"
BURDA_EPOCHS="${BURDA_EPOCHS:-3280}"; BURDA_BATCH="${BURDA_BATCH:-20}"; BURDA_LIMIT="${BURDA_LIMIT:-}"
EVAL_K="${EVAL_K:-5000}"; EVAL_N="${EVAL_N:-}"; IWAE_K="${IWAE_K:-50}"; BURDA_SECONDS="${BURDA_SECONDS:-420}"
mkdir -p "$OUT"
LOG="$OUT/gpu_run.log"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
START=$(date +%s)

# 1. pure-Python wheels for whatever this Python cannot import, into a private folder (no network)
SITE="$ROOT/.gpu_site"
mkdir -p "$SITE"
SITE="$(cd "$SITE" && pwd)"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$GPU_CARRY/wheels/*.whl" > /dev/null; then
  for wheel in "$GPU_CARRY"/wheels/*.whl; do
    name="$(basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_')"
    if [ -n "${GPU_FORCE_INSTALL:-}" ] || ! "$PYTHON" -c "import $name" 2>/dev/null; then
      log "installing $(basename "$wheel") into $SITE"
      "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "$wheel" >> "$LOG" 2>&1 \
        || "$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
             "$wheel" "$SITE" \
        || log "could not install $(basename "$wheel")"   # a pure-Python wheel is importable unzipped
    fi
  done
fi
for module in numpy torch tqdm; do
  "$PYTHON" -c "import $module" 2>/dev/null || log "missing Python module: $module (bring its wheel)"
done

# 2. binarized MNIST from the carried copy
if [ -f "$GPU_CARRY/data/binarized_mnist.npz" ]; then
  export VAE_FROM_SCRATCH_DATA="$GPU_CARRY/data"
fi
export VAE_FROM_SCRATCH_DEVICE="$DEVICE"
"$PYTHON" - <<EOF 2>&1 | tee -a "$LOG"
import torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
from vae_from_scratch import data
print("MNIST train:", data.load_binarized_mnist("train").shape)
EOF

# 3. training speed against the DataLoader peer (eager, then compiled: CUDA graphs where they help)
if [ "$SPEED_REPEATS" != "0" ]; then
log "training speed, eager"
"$PYTHON" benchmarks/bench_training_speed.py --device "$DEVICE" --n "$SPEED_N" --epochs "$SPEED_EPOCHS" \
  --repeats "$SPEED_REPEATS" --json "$OUT/speed_eager.json" 2>&1 | tee -a "$LOG" "$OUT/speed_eager.txt"
if [ "$SPEED_COMPILE_MODE" != "0" ]; then
  log "training speed, with torch.compile (mode $SPEED_COMPILE_MODE)"
  "$PYTHON" benchmarks/bench_training_speed.py --device "$DEVICE" --n "$SPEED_N" --epochs "$SPEED_EPOCHS" \
    --repeats "$SPEED_REPEATS" --peers one --compile --compile-mode "$SPEED_COMPILE_MODE" \
    --json "$OUT/speed_compiled.json" 2>&1 | tee -a "$LOG" "$OUT/speed_compiled.txt"
fi
fi

# 4. Burda et al.'s schedule: VAE, then IWAE k=50; resumable (runs come back in $OUT/runs)
mkdir -p "$OUT/runs"
if [ -d "$GPU_CARRY/runs" ]; then
  cp -rn "$GPU_CARRY/runs/." "$OUT/runs/" 2>/dev/null || true
fi
train_run() {  # name, then extra arguments
  local name="$1"; shift
  local run="$OUT/runs/$name" left=$(( BURDA_SECONDS - ($(date +%s) - TRAIN_START) ))
  local args=(train --dataset mnist --arch burda --schedule burda --epochs "$BURDA_EPOCHS"
              --batch-size "$BURDA_BATCH" --device "$DEVICE" --out "$run" --eval-k "$EVAL_K" --no-progress "$@")
  [ -n "$BURDA_LIMIT" ] && args+=(--limit "$BURDA_LIMIT")
  [ -n "$EVAL_N" ] && args+=(--eval-n "$EVAL_N")
  [ -f "$run/checkpoint.pt" ] && args+=(--resume)
  if [ "$left" -le 5 ]; then log "$name: no time left in this call"; return; fi
  log "$name: python -m vae_from_scratch ${args[*]}  (at most ${left}s in this call)"
  timeout --signal=TERM "$left" "$PYTHON" -m vae_from_scratch "${args[@]}" 2>&1 | tee -a "$LOG" "$run.log"
  local code=${PIPESTATUS[0]}
  [ "$code" = 124 ] && log "$name: stopped at the time budget; run this script again to resume"
}
TRAIN_START=$(date +%s)
train_run vae_burda
[ "$IWAE_K" != "0" ] && train_run "iwae_k${IWAE_K}_burda" --objective iwae --k "$IWAE_K"

# 5. results.json: environment, speed ratios, progress and test NLL of the runs
"$PYTHON" - "$OUT" "$START" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys, time, platform
from pathlib import Path
import torch
out, start = Path(sys.argv[1]), float(sys.argv[2])
res = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
       "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor(),
       "wall_seconds": round(time.time() - start, 1), "speed": {}, "runs": {},
       "published": {"vae": 88.71, "iwae_k50": 87.10,
                     "source": "Burda, Grosse & Salakhutdinov (2016), appendix D, k=5000"}}
for name in ("speed_eager", "speed_compiled"):
    if (out / f"{name}.json").is_file():
        res["speed"][name] = json.loads((out / f"{name}.json").read_text())
for metrics in sorted((out / "runs").glob("*/metrics.json")):
    m = json.loads(metrics.read_text())
    epochs = m.get("epochs", [])
    res["runs"][metrics.parent.name] = {
        "status": m.get("status"), "epochs_done": len(epochs), "epochs_planned": m["config"]["epochs"],
        "last_epoch": epochs[-1] if epochs else None,
        "train_seconds": round(sum(e.get("seconds", 0) for e in epochs), 1),
        "evaluation": m.get("evaluation"), "command": m["config"].get("extra", {}).get("command")}
(out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
print("wrote", out / "results.json")
EOF
log "done in $(( $(date +%s) - START )) s"
