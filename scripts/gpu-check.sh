#!/usr/bin/env bash
# labcore's GPU check (`make gpu-check`): one prepared script that runs labcore's CUDA path end to end on a
# machine with one CUDA GPU and this tree, in under 8 minutes, and prints a summary table.
#
#   1. the unit tests (test files whose imports are missing here -- matplotlib, ipywidgets, pytorch-fid,
#      nbval -- are skipped with that reason);
#   2. `labcore train-vqgan` for 300 steps on CUDA in bf16 (the bundled tokenizer's config);
#   3. every checkpoint written on the GPU holds CPU tensors (a plain torch.load on a CPU-only machine works);
#   4. `labcore train --make-tokens` + `labcore train` (emoji64 preset) for 300 steps on CUDA in bf16;
#   5. `labcore inpaint --device cuda` on the whole bundled test set (750 images, cosine, T = 8);
#   6. `labcore train --preset lab` (the course's 768 x 15 model) for 30 steps in bf16 and in fp32: tokens/s.
#
# It runs under whatever `python3` the machine has (e.g. a GPU box with Python 3.12 and torch preinstalled,
# no internet): labcore is used from this tree (PYTHONPATH), nothing is installed. Set PYTHON=... to choose
# another interpreter; outputs go to runs/gpu-check/ (GPU_CHECK_OUT=... to change). Exit status: 0 when
# every step passed, 1 otherwise (every step still runs).
#
# GPU_CHECK_DEVICE=cpu is a dry run of the script itself on a CPU (a few steps each, 8 images, no CUDA
# required): it checks the commands and the skipping logic, its figures mean nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${GPU_CHECK_OUT:-runs/gpu-check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then  # steps: stage 1, stage 2, lab preset; inpaint: the whole test set
    VQ_STEPS=300; TF_STEPS=300; LAB_STEPS=30; LAB_BATCH=(); LIMIT=(); VQ_EXTRA=(--batch-size 128 --precision bf16)
    TF_PRECISION=bf16; DRY=""
else
    VQ_STEPS=3; TF_STEPS=3; LAB_STEPS=1; LAB_BATCH=(--batch-size 4); LIMIT=(--limit 8)
    VQ_EXTRA=(--batch-size 8 --limit 64 --val-limit 16 --precision fp32); TF_PRECISION=fp32; DRY=1  # bf16 is slow on CPUs
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
LABCORE="$PYTHON -m labcore"
rm -rf "$OUT" && mkdir -p "$OUT"
summary=()
failed=0
START=$SECONDS

step() {  # step NAME COMMAND...: run, time, remember the outcome
    local name=$1; shift
    local t0=$SECONDS
    echo; echo "=== $name: $*"
    if "$@" 2>&1 | tee "$OUT/$name.log"; then status=ok; else status=FAILED; failed=1; fi
    summary+=("$(printf '%-22s %-6s %4ds' "$name" "$status" $((SECONDS - t0)))")
}

"$PYTHON" - "$DEVICE" <<'EOF' || { echo "gpu-check: error: no CUDA GPU visible to $PYTHON"; exit 2; }
import sys, torch
if sys.argv[1] != "cuda":
    print(f"dry run on {sys.argv[1]}: python {sys.version.split()[0]}, torch {torch.__version__}"); sys.exit(0)
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}")
EOF

# 1. unit tests: a test file is skipped when it needs a package this machine lacks (the reason is printed)
tests=()
for f in ${GPU_CHECK_TESTS:-tests/test_*.py}; do  # GPU_CHECK_TESTS="tests/test_a.py ...": a subset
    missing=$("$PYTHON" - "$f" <<'EOF'
import importlib.util, re, sys
text = open(sys.argv[1]).read()
optional = {"matplotlib": "matplotlib", "ipywidgets": "ipywidgets", "pytorch_fid": "pytorch-fid", "nbval": "nbval",
            "labcore.viz": "matplotlib", "labcore.fid": "pytorch-fid", "labcore.experiment": "pytorch-fid",
            "labcore.demo": "pytorch-fid", "playwright": "playwright"}
need = {pkg for mod, pkg in optional.items() if re.search(rf"\b{re.escape(mod)}\b|from labcore import .*\b{mod.split('.')[-1]}\b", text)}
def installed(package):
    try:
        return importlib.util.find_spec(package.replace("-", "_")) is not None
    except (ImportError, ValueError):
        return False
print(" ".join(sorted(p for p in need if not installed(p))))
EOF
)
    if [ -n "$missing" ]; then echo "skip $f: needs $missing (not installed for $PYTHON)"; else tests+=("$f"); fi
done
step unit-tests "$PYTHON" -m pytest -o addopts="" -p no:cacheprovider -p no:nbval -q -ra "${tests[@]}"

# 2. stage 1 on CUDA, bf16 (checks that the codebook init and dead-code restarts stay on the GPU)
step train-vqgan $LABCORE train-vqgan --run-dir "$OUT/vqgan" --config data/checkpoints/vqgan_emoji64.yml \
    --steps $VQ_STEPS --lr 1e-3 --warmup-steps 50 --eval-every 150 --save-every 100 --device "$DEVICE" --no-progress \
    "${VQ_EXTRA[@]}"

# 3. stage 2 on CUDA, bf16: tokens with the bundled tokenizer, then 300 steps of the emoji64 preset
if [ -n "$DRY" ]; then  # dry run: tokens of 64 images, made by the library function
    step make-tokens "$PYTHON" -c "from labcore.training import make_tokens; make_tokens('$OUT/tokens.pt', limit=64, progress=False)"
else
    step make-tokens $LABCORE train --make-tokens --tokens "$OUT/tokens.pt" --device "$DEVICE" --no-progress
fi
step train-emoji64 $LABCORE train --run-dir "$OUT/emoji64" --tokens "$OUT/tokens.pt" --max-steps $TF_STEPS \
    --save-every 100 --precision $TF_PRECISION --device "$DEVICE" --no-progress

# 4. every checkpoint written above holds CPU tensors only
step cpu-checkpoints "$PYTHON" - "$OUT" <<'EOF'
import sys
from pathlib import Path
import torch

def devices(obj, found):
    if isinstance(obj, torch.Tensor):
        found.add(obj.device.type)
    elif isinstance(obj, dict):
        for v in obj.values():
            devices(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            devices(v, found)
    return found

files = sorted(Path(sys.argv[1]).rglob("*.pt"))
bad = {str(f): sorted(d) for f in files if (d := devices(torch.load(f, weights_only=True), set())) - {"cpu"}}
print(f"{len(files)} checkpoints written on the GPU; with non-CPU tensors: {bad or 'none'}")
sys.exit(1 if bad or not files else 0)
EOF

# 5. inpainting of the whole bundled test set on CUDA
step inpaint $LABCORE inpaint --device "$DEVICE" -o "$OUT/inpaint" --schedule cosine --total-iter 8 "${LIMIT[@]}"

# 6. the course-size transformer, 30 steps each in bf16 and fp32 (tokens/s in the last line of each)
for precision in bf16 fp32; do
    step "lab-$precision" $LABCORE train --preset lab --run-dir "$OUT/lab_$precision" --tokens "$OUT/tokens.pt" \
        --max-steps $LAB_STEPS "${LAB_BATCH[@]}" --precision "$precision" --device "$DEVICE" --no-progress
done

echo; echo "=== gpu-check summary ($((SECONDS - START)) s in all)"
printf '%s\n' "${summary[@]}"
for precision in bf16 fp32; do
    echo "lab preset, $precision: $(grep -o '[0-9.]* tokens/s' "$OUT/lab-$precision.log" | tail -1)"
done
grep -h "images/s" "$OUT/inpaint.log" | tail -1
exit $failed
