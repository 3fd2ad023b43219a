#!/usr/bin/env bash
# Every CUDA check in one call on a GPU machine (CI has none): the probe and trainer tests on
# the GPU (TORCH_DEVICE=cuda: statistics against float64 numpy, the BN Figure 1 runs, and no
# host sync inside a step), then the probe-overhead bench at issue 2's two shapes, with
# host-sync counts. Logs and the bench's JSON go to $OUT (default /tmp/cuda-check).
#
#     PYTHONPATH=. bash bench/cuda_check.sh [--profile]
set -uo pipefail
out=${OUT:-/tmp/cuda-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,utilization.gpu --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
TORCH_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider -x \
    tests/normcore/test_probes.py tests/normcore/test_train.py 2>&1 | tee "$out/tests.log" | tail -12
status=${PIPESTATUS[0]}
for shape in "256 4 128" "1024 8 256"; do
    read -r width depth batch <<<"$shape"
    python3 bench/probe_overhead.py --device cuda --width "$width" --depth "$depth" \
        --batch "$batch" --steps 50 --rounds 12 --json "$out/bench-$width-$depth-$batch.json" \
        "$@" 2>&1 | tee -a "$out/bench.log" | grep -v "^---\|^ \|^=\|^Self" || status=1
done
exit "$status"
