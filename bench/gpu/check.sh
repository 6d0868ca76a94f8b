#!/usr/bin/env bash
# One prepared check for a GPU box: device, offline install, GPU tests, CPU-vs-GPU benchmark at
# four scales, the DNN on JAX / PyTorch, report. Every step has a time limit and the whole run a
# budget (default 470 s, under 8 minutes); a step that fails or times out is recorded and the
# next one runs. Without a usable GPU it says so and runs a small CPU-only version.
#
#   usage: bash bench/gpu/check.sh OUTDIR
#
# OUTDIR receives at most six files, no folders (a device runner may bring back only a few):
#   summary.md    steps (status, seconds), environment, key numbers
#   check.log     everything printed
#   report.md     `recsys-fast report` of the benchmark (GPU vs CPU speedup tables)
#   results.json  the benchmark results document (all scales, written after every case)
#   dnn.json      DNN training runs per Keras backend (examples/s, losses, recall@10)
#   bench.tar.gz  the rest: plots, per-step logs, pytest output
#
# Environment (all optional): PYTHON; CHECK_BUDGET_S (470); CHECK_SCALES (100k,1m,10m,25m) and
# CHECK_SCALE_BUDGETS (30,35,45,55 s); CHECK_TOPK_SCALES (1m,10m,25m), CHECK_TOPK_LIMIT (80 s);
# CHECK_DNN_DATA (1m); CHECK_DNN_BACKENDS (jax,torch);
# RECSYS_FAST_WHEELS (a folder of wheels to install offline; see prepare_wheels.sh);
# CHECK_SKIP_INSTALL=1 (do not `pip install -e .`, e.g. on a shared development machine).
set -uo pipefail

OUT="${1:?usage: bash bench/gpu/check.sh OUTDIR}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO" || exit 2
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/recsys-gpu-check.XXXXXX")"
mkdir -p "$WORK/logs" "$WORK/results" "$WORK/report"
PY="${PYTHON:-$(command -v python3 || command -v python)}"  # callers pass their interpreter
BUDGET_S="${CHECK_BUDGET_S:-470}"
RESERVE_S=35  # kept back for the report and packing
START=$SECONDS
LOG="$OUT/check.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX shares the GPU with CuPy
export TF_CPP_MIN_LOG_LEVEL=2
export RECSYS_FAST_DATA="$WORK/data"
export NUMBA_CACHE_DIR="$WORK/numba"
if [ -z "${RECSYS_FAST_SHARED:-}" ] && [ -d "$REPO/../shared/datasets" ]; then
  export RECSYS_FAST_SHARED="$(cd "$REPO/../shared/datasets" && pwd)"
fi

STEPS=()
FUNCS=(pytest_cmd tee_to)
note() { echo; echo "== $(date -u +%H:%M:%S) [$((SECONDS - START))s] $*"; }

# run_step NAME LIMIT_S CMD...: run under `timeout` (cut to the budget left), record the outcome
run_step() {
  local name=$1 want=$2
  shift 2
  local left=$((BUDGET_S - (SECONDS - START) - RESERVE_S))
  local limit=$((want < left ? want : left))
  if ((limit < 10)); then
    note "$name: skipped, check budget spent"
    STEPS+=("| $name | skipped: budget spent | 0 |")
    return 0
  fi
  note "$name (limit ${limit}s)"
  local t0=$SECONDS
  if [ "$(type -t "$1")" = function ]; then  # `timeout` runs programs: hand functions to bash
    timeout -k 10 "$limit" bash -c "$(declare -f "${FUNCS[@]}"); \"\$@\"" _ "$@"
  else
    timeout -k 10 "$limit" "$@"
  fi
  local rc=$?
  local status="ok"
  if ((rc == 124 || rc == 137)); then status="timed out at ${limit}s"
  elif ((rc != 0)); then status="failed (exit $rc)"; fi
  STEPS+=("| $name | $status | $((SECONDS - t0)) |")
  return 0
}

# pytest without the project's addopts (pytest-benchmark may be missing on the box)
pytest_cmd() { "$PY" -m pytest -o addopts="" -ra -q -p no:cacheprovider --continue-on-collection-errors "$@"; }
tee_to() {
  local f=$1
  shift
  "$@" 2>&1 | tee "$f"
  return "${PIPESTATUS[0]}"
}

# -- 1. device -----------------------------------------------------------------------------
note "device"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm,power.limit \
    --format=csv || true
else
  echo "nvidia-smi: not found"
fi
"$PY" - > "$WORK/device.json" <<'EOF'
import json
from recsys_fast.backend import device_info, gpu_available
info = device_info()
if gpu_available() and not info.get("simulated"):
    import cupy as cp
    p = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    info.update(sm_count=p["multiProcessorCount"], compute_capability=f"{p['major']}.{p['minor']}")
print(json.dumps(info))
EOF
cat "$WORK/device.json"
# 1: a real GPU; 2: the simulated one (RECSYS_FAST_SIMULATE_GPU=1, for testing this script)
HAS_GPU=$("$PY" -c "import json,sys; d = json.load(open(sys.argv[1]))
print(2 if d.get('simulated') else 1 if d.get('gpu') else 0)" "$WORK/device.json" 2> /dev/null \
  || echo 0)
if [ "$HAS_GPU" = 2 ]; then
  echo "SIMULATED GPU (numpy under the GPU code paths): small scales, CPU timings"
  SCALES="${CHECK_SCALES:-100k}"
  SCALE_BUDGETS="${CHECK_SCALE_BUDGETS:-60}"
  DNN_DATA="${CHECK_DNN_DATA:-tiny}"
  TOPK_SCALES="${CHECK_TOPK_SCALES:-tiny,100k}"
elif [ "$HAS_GPU" = 1 ]; then
  SCALES="${CHECK_SCALES:-100k,1m,10m,25m}"
  SCALE_BUDGETS="${CHECK_SCALE_BUDGETS:-30,35,45,55}"
  DNN_DATA="${CHECK_DNN_DATA:-1m}"
  TOPK_SCALES="${CHECK_TOPK_SCALES:-1m,10m,25m}"
else
  echo "NO USABLE GPU: $("$PY" -c "from recsys_fast.backend import gpu_unavailable_reason as r; print(r())")"
  echo "running the CPU-only version: scale 100k, DNN on tiny data, GPU tests skipped"
  SCALES="${CHECK_SCALES:-100k}"
  SCALE_BUDGETS="${CHECK_SCALE_BUDGETS:-40}"
  DNN_DATA="${CHECK_DNN_DATA:-tiny}"
fi
HARNESS_LIMIT=$(($(echo "$SCALE_BUDGETS" | tr ',' '\n' | awk '{s += $1} END {print int(s)}') + 40))

# -- 2. offline install ----------------------------------------------------------------------
install_offline() {
  local dir
  for dir in "${RECSYS_FAST_WHEELS:-}" bench/gpu/wheels shared/wheels; do
    if [ -n "$dir" ] && compgen -G "$dir/*.whl" > /dev/null; then
      # only distributions not installed at all: never replace the box's own versions
      # (JAX and jaxlib pin ml_dtypes, for one)
      local missing
      missing="$("$PY" -c 'import importlib.metadata as md, pathlib, sys
for w in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    try:
        md.version(w.name.split("-")[0])
    except md.PackageNotFoundError:
        print(w)' "$dir")"
      if [ -n "$missing" ]; then
        echo "installing carried wheels from $dir:" $missing
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-index --no-deps $missing || true
      else
        echo "carried wheels in $dir: all already installed"
      fi
      break
    fi
  done
  # the project itself, without touching dependencies (no network); PYTHONPATH covers a failure
  if [ "${CHECK_SKIP_INSTALL:-0}" = 1 ]; then
    echo "CHECK_SKIP_INSTALL=1: not installing; using PYTHONPATH=$REPO"
  else
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
      || echo "editable install failed; using PYTHONPATH=$REPO"
  fi
  "$PY" - <<'EOF' | tee "$WORK/env.txt"
import importlib.metadata as md, importlib.util
names = ["numpy", "scipy", "pandas", "sklearn", "numba", "cupy", "jax", "jaxlib", "torch",
         "keras", "tensorflow", "implicit", "sparse_dot_topn", "matplotlib", "psutil",
         "threadpoolctl", "tqdm", "pytest", "hypothesis", "pytest_benchmark", "recsys_fast"]
dists = md.packages_distributions()  # metadata only: importing TF or CuPy here is slow
for n in names:
    if importlib.util.find_spec(n) is None:
        print(f"{n:18s} MISSING")
        continue
    found = [f"{d} {md.version(d)}" for d in dists.get(n, [])]
    print(f"{n:18s} {', '.join(found) or 'found (no metadata)'}")
EOF
}
FUNCS=(pytest_cmd tee_to install_offline)
export PY WORK REPO
run_step "install (offline)" 90 install_offline

# -- 3. GPU tests (kernels: GPU == CPU) -----------------------------------------------------------
run_step "pytest -m 'gpu and not slow'" 90 \
  tee_to "$WORK/logs/pytest_gpu.txt" pytest_cmd -m "gpu and not slow" tests

# -- 4. benchmark: CPU and GPU cases per scale, soft budget per scale ---------------------------
run_step "benchmark $SCALES" "$HARNESS_LIMIT" \
  tee_to "$WORK/logs/bench.txt" "$PY" bench/gpu/run_gpu_cases.py --quick --scales "$SCALES" \
  --budgets "$SCALE_BUDGETS" --out "$WORK/results"

# -- 4b. cosine_topk strategy by strategy on the GPU (sets the auto rule; see the script) -------
if [ "$HAS_GPU" != 0 ]; then
  run_step "cosine_topk GPU strategies" "${CHECK_TOPK_LIMIT:-80}" \
    tee_to "$WORK/logs/topk_strategies.txt" "$PY" bench/gpu/topk_strategies.py \
    "$WORK/results/topk_strategies.json" --scales "$TOPK_SCALES" \
    --budget "$((${CHECK_TOPK_LIMIT:-80} - 15))"
fi

# -- 5. the DNN on JAX / PyTorch (TensorFlow hidden), examples/s -------------------------------
for kb in $(echo "${CHECK_DNN_BACKENDS:-jax,torch}" | tr ',' ' '); do
  if ! "$PY" -c "import $kb" 2> /dev/null; then
    note "dnn $kb: skipped, $kb not installed"
    STEPS+=("| dnn $kb $DNN_DATA | skipped: $kb not installed | 0 |")
    continue
  fi
  limit=75
  [ "$kb" = torch ] && limit=50
  run_step "dnn $kb $DNN_DATA" "$limit" \
    "$PY" -m recsys_fast.dnn.portable --keras-backend "$kb" --hide-tensorflow train \
    --data "$DNN_DATA" --epochs 4 --batch-size 256 --boundaries 48,144,464 \
    --out "$WORK/dnn_$kb.json"
done

# -- 6. backend-neutral DNN tests on JAX (CPU subprocesses + the GPU forward/training test) -----
if "$PY" -c "import jax" 2> /dev/null; then
  run_step "pytest DNN on KERAS_BACKEND=jax" 60 \
    tee_to "$WORK/logs/pytest_dnn_jax.txt" env KERAS_BACKEND=jax \
    "$PY" -m pytest -o addopts="" -ra -q -p no:cacheprovider -k "not torch" \
    tests/test_dnn_backends.py tests/test_gpu.py::test_dnn_on_gpu_equals_cpu_and_trains
else
  note "pytest DNN on KERAS_BACKEND=jax: skipped, jax not installed"
  STEPS+=("| pytest DNN on KERAS_BACKEND=jax | skipped: jax not installed | 0 |")
fi

# -- 7. report and packing (uses the reserve) ------------------------------------------------
RESERVE_S=0
RESULTS_JSON="$(find "$WORK/results" -name '*.json' ! -name 'topk_strategies.json' | sort | tail -1)"
if [ -n "$RESULTS_JSON" ]; then
  cp "$RESULTS_JSON" "$OUT/results.json" && chmod 644 "$OUT/results.json"
  run_step "report" 40 "$PY" -m recsys_fast report "$RESULTS_JSON" --out "$WORK/report"
  [ -f "$WORK/report/README.md" ] && cp "$WORK/report/README.md" "$OUT/report.md" \
    && chmod 644 "$OUT/report.md"
else
  STEPS+=("| report | skipped: no results file | 0 |")
fi

"$PY" - "$WORK" "$OUT/dnn.json" > "$WORK/dnn_summary.md" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {p.stem[4:]: json.loads(p.read_text()) for p in sorted(work.glob("dnn_*.json"))}
out.write_text(json.dumps(runs, indent=1) + "\n")
print("| keras backend | device | data | examples/s (steady) | first epoch ex/s | loss first -> last | recall@10 |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name, r in runs.items():
    rec = r.get("recall", {}).get("recall@10")
    print(f"| {name} | {r.get('device')} {r.get('device_name', '')} | {r.get('data')} "
          f"| {r['examples_per_s']:,.0f} | {r['first_epoch_examples_per_s']:,.0f} "
          f"| {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f} | {rec:.3f} |")
EOF

{
  echo "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  if git rev-parse --short HEAD > /dev/null 2>&1; then
    echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2> /dev/null || echo ' + local changes')"
  else
    echo "- commit: unknown (not a git checkout)"
  fi
  echo "- device: $(cat "$WORK/device.json")"
  echo "- total: $((SECONDS - START)) s of a ${BUDGET_S} s budget"
  echo
  echo "| step | status | seconds |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${STEPS[@]}"
  echo
  echo "## Tests"
  for f in "$WORK"/logs/pytest_*.txt; do
    [ -f "$f" ] || continue
    line="$(grep -E '(passed|failed|error|skipped|no tests ran)' "$f" | tail -1)"
    echo "- $(basename "$f" .txt): ${line:-no summary line (timed out or crashed: see check.log)}"
  done
  echo
  echo "## cosine_topk on the GPU by strategy (host in, host out; median s)"
  echo
  "$PY" - "$WORK/results/topk_strategies.json" <<'EOF' 2> /dev/null || echo "(no strategy study)"
import json, sys
d = json.load(open(sys.argv[1]))
print("| scale | strategy | ran | median s | verdict |")
print("| --- | --- | --- | --- | --- |")
for r in d["runs"]:
    t = f"{r['median_s']:.3f}" if "median_s" in r else r.get("skipped") or r.get("error", "")
    print(f"| {r['scale']} | {r['strategy']} | {r.get('ran', '')} | {t} | {r.get('verdict', '')} |")
EOF
  echo
  echo "## DNN (TensorFlow hidden; steady = median of epochs 2..4)"
  echo
  cat "$WORK/dnn_summary.md"
  echo
  echo "## Environment"
  echo
  echo '```'
  cat "$WORK/env.txt" 2> /dev/null
  echo '```'
} > "$OUT/summary.md"

cp "$WORK"/dnn_*.json "$WORK/device.json" "$WORK/logs/" 2> /dev/null
tar -czf "$OUT/bench.tar.gz" -C "$WORK" logs results report 2> /dev/null
note "done in $((SECONDS - START)) s; files in $OUT:"
ls -la "$OUT"
cat "$OUT/summary.md"
rm -rf "$WORK"
# non-zero when a step failed or timed out (the files above are complete either way)
printf '%s\n' "${STEPS[@]}" | grep -qE '\| (failed|timed out)' && exit 1
exit 0
