#!/usr/bin/env bash
# The checks that need a CUDA GPU, for a machine that has one and a Python with a CUDA build of
# torch already installed (such a machine may have no network: nothing is downloaded; starkit's
# other dependencies must be importable). CI has no GPU, so these run where one is lent:
#
#   bash scripts/gpu_check.sh OUT_DIR [STEP...]
#
# Steps (default: all, in this order): env, cuda-tests, speed, quality-probe, suite, ablation.
#   env            GPU, driver, torch and CUDA versions
#   cuda-tests     tests/test_cuda.py (their measured errors printed)
#   speed          bench/train_speed.py --compare --loader-check at the paper's 128 px config
#                                                   -> OUT_DIR/train_speed_compare_cuda.json
#   quality-probe  bench/quality.py --profile gpu, shortened: times the GPU profile's stages
#                                                   -> OUT_DIR/quality-probe/quality.{json,png}
#   suite          the whole test suite with CUDA visible
#   ablation       bench/train_speed.py --ablation (each switch alone on top of naive)
#                                                   -> OUT_DIR/train_speed_ablation_cuda.json
# Everything printed also goes to OUT_DIR/log.txt. PYTHON picks the interpreter (default
# python3); STEP_TIMEOUT bounds each step (seconds, default 900).
set -uo pipefail
out=${1:?usage: bash scripts/gpu_check.sh OUT_DIR [STEP...]}
shift
all_steps="env cuda-tests speed quality-probe suite ablation"
steps=${*:-$all_steps}
for step in $steps; do  # refuse a misspelt step before installing or running anything
    case " $all_steps " in
        *" $step "*) ;;
        *) echo "unknown step '$step'; choose from: $all_steps" >&2; exit 2 ;;
    esac
done
py=${PYTHON:-python3}
limit=${STEP_TIMEOUT:-900}
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONUNBUFFERED=1

# starkit and its two dataset plugins, editable, without resolving dependencies (torch stays the
# machine's own build; the pins in pyproject.toml are for CPU installs from PyPI).
$py -m pip install -q --no-deps --no-build-isolation --no-index \
    -e . -e plugins/starkit-celeba -e plugins/starkit-rafd || exit 1

log=$out/log.txt
run() {  # run NAME COMMAND...: time-bounded, logged, never stops the other steps
    local name=$1; shift
    echo "== $name: $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}
xdist=$($py -c 'import xdist' 2>/dev/null && echo "-n 8")

for step in $steps; do
    case $step in
        env)
            run env bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; \
                $py -c 'import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"cuDNN\", torch.backends.cudnn.version(), torch.cuda.get_device_name(0), \"bf16\", torch.cuda.is_bf16_supported())'; nproc" ;;
        cuda-tests)
            run cuda-tests $py -m pytest -q -rA -s -p no:cacheprovider tests/test_cuda.py ;;
        speed)
            run speed $py bench/train_speed.py --compare --loader-check --workers 4 --iters 20 --repeats 5 \
                --warmup 3 --out "$out/train_speed_compare_cuda.json" ;;
        quality-probe)
            run quality-probe $py bench/quality.py --profile gpu --set iters=500 --set classifier_iters=200 \
                --work "${TMPDIR:-/tmp}/starkit-quality-probe" --results "$out/quality-probe" ;;
        suite)
            run suite $py -m pytest -q -p no:cacheprovider $xdist ;;
        ablation)
            run ablation $py bench/train_speed.py --ablation --workers 4 --iters 10 --repeats 3 --warmup 3 \
                --out "$out/train_speed_ablation_cuda.json" ;;
    esac
done
