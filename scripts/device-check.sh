#!/bin/bash
# The GPU check, one command on a machine with an NVIDIA GPU and PyTorch, and nothing else assumed (no
# network, no node): node and the npm packages come in .device/bundle.tar.xz (scripts/device-bundle.sh,
# carried by the device tool). It builds the addon against that machine's PyTorch libtorch (g++, no
# node-gyp: node-gyp would download node's headers), runs the CUDA tests (test/gpu: a training step
# and extraction on cuda equal to the CPU's, bf16 autocast on CUDA) and parity tests against PyTorch
# on the CPU with this libtorch, then `vgl bench model --device cuda` against PyTorch on the same GPU in
# fp32 and bf16. Everything it learns goes to $OUT (default device-out/): the log, nvidia-smi, the
# build log, the test output, the benchmarks as JSON. Within 10 minutes; each step has its own limit,
# and a failed step is written down and the next one still runs.
#   usage (device tool): scripts/device-bundle.sh here, then run "scripts/device-check.sh" with carry [".device"]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-check.log") 2>&1
start=$(date +%s)
step() { echo "== $(( $(date +%s) - start )) s: $*"; }
status=0
fail() { echo "FAILED: $*"; status=1; }

step "unpacking node and the npm packages"
[ -f .device/bundle.tar.xz ] || { echo "no .device/bundle.tar.xz: run scripts/device-bundle.sh where node is, and carry .device"; exit 2; }
mkdir -p .device/root && tar -C .device/root -xJf .device/bundle.tar.xz || exit 2
export PATH="$PWD/.device/root/bin:$PATH"
[ -e node_modules ] || ln -s "$PWD/.device/root/node_modules" node_modules
node --version

step "the machine"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "(no nvidia-smi)"
head -15 "$OUT/nvidia-smi.txt"
PY=${VGL_REFERENCE_PYTHON:-$(command -v python3)}
export VGL_REFERENCE_PYTHON="$PY"
read -r TORCH_DIR TORCH_VERSION CUDA_VERSION ABI < <("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__), torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI))') \
  || { echo "python3 cannot import torch"; exit 2; }
# VGL_LIBTORCH: another libtorch folder (include/, lib/) than the Python package's (a dry run without a GPU).
TORCH_DIR=${VGL_LIBTORCH:-$TORCH_DIR}
echo "PyTorch $TORCH_VERSION (CUDA $CUDA_VERSION, C++11 ABI $ABI); building against $TORCH_DIR"
"$PY" -c 'import torch; print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'

step "building the addon against $TORCH_DIR"
export LIBTORCH="$TORCH_DIR" TORCH_CXX11_ABI="$ABI"
build() {
  local defines
  defines=$(cd native && node config.cjs defines | tr ' ' '\n' | sed 's/^/-D/' | tr '\n' ' ')
  mkdir -p native/build/Release
  # shellcheck disable=SC2046
  g++ -shared -fPIC -std=c++17 -O2 -fexceptions -frtti -Wno-deprecated-declarations -Wno-unused-parameter \
    -DNAPI_CPP_EXCEPTIONS -DNAPI_VERSION=8 $defines \
    -I.device/root/include/node -I"$(node -p "require('node-addon-api').include_dir")" $(cd native && node config.cjs include | tr ' ' '\n' | sed 's/^/-I/' | tr '\n' ' ') \
    native/addon.cc native/ops.cc native/distributed.cc -o native/build/Release/vgl_torch.node $(cd native && node config.cjs libs)
}
if ! timeout 300 bash -c "$(declare -f build); build" > "$OUT/build.log" 2>&1; then
  echo "the build with torch.distributed (Gloo) failed (tail of build.log below); building without it"
  tail -20 "$OUT/build.log"
  VGL_NO_GLOO=1 timeout 240 bash -c "$(declare -f build); build" > "$OUT/build-no-gloo.log" 2>&1 || { tail -30 "$OUT/build-no-gloo.log"; fail "the addon does not build against PyTorch $TORCH_VERSION"; exit 1; }
fi
node --import tsx -e "import('./src/torch/index.ts').then((t) => console.log('vgl sees: libtorch', t.torchVersion, '| cuda', t.cudaAvailable(), t.cudaDeviceCount(), 'device(s)'))" || fail "the addon does not load"
node bin/vgl.js doctor > "$OUT/doctor.txt" 2>&1 || true

step "CUDA tests (test/gpu) and parity tests on the CPU with this libtorch"
timeout 180 node --import tsx --test --test-reporter=tap test/gpu/cuda.test.ts > "$OUT/test-gpu.tap" 2>&1 || fail "test/gpu"
grep -E '^(not )?ok|^# (pass|fail|skipped)' "$OUT/test-gpu.tap"
VGL_DEVICE=cpu timeout 150 node --import tsx --test --test-reporter=tap test/models/resnet.test.ts test/models/aggregation.test.ts test/train/losses.test.ts > "$OUT/test-parity.tap" 2>&1 || fail "parity tests"
grep -E '^# (pass|fail|skipped)' "$OUT/test-parity.tap"

step "vgl bench model on cuda against PyTorch on the same GPU"
for precision in fp32 bf16; do
  timeout 120 node bin/vgl.js bench model --device cuda --precision "$precision" --iters 10 --json > "$OUT/bench-model-cuda-$precision.json" 2> "$OUT/bench-model-cuda-$precision.err" \
    && node -e "const r=require('./$OUT/bench-model-cuda-$precision.json'); console.log('$precision', JSON.stringify({train_ms: r.train_ms, ref_train_ms: r.reference.train_ms, ref_train_bf16_ms: r.reference.train_bf16_ms, extract_ms: r.extract_ms_per_image, ref_extract_ms: r.reference.extract_optimised_ms_per_image, ratio: r.ratio}))" \
    || { tail -5 "$OUT/bench-model-cuda-$precision.err"; fail "bench model $precision"; }
done
step "done (status $status)"
exit $status
