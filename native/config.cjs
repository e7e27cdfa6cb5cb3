// Prints compiler/linker flags for libtorch, for binding.gyp.
//   default: Debian's libtorch-dev (headers in /usr/include, libraries in the multiarch dir)
//   LIBTORCH=/path/to/libtorch: the official libtorch zip, or a Python torch package's folder
//     (python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))'), which has include/ and lib/.
//   TORCH_CXX11_ABI=0: for libtorch builds with the pre-C++11 ABI (older pip wheels, "pre-cxx11" zips).
const fs = require('node:fs');
const path = require('node:path');
const root = process.env.LIBTORCH;
const what = process.argv[2];
if (what === 'include') {
  const base = root ? path.join(root, 'include') : '/usr/include';
  console.log([base, path.join(base, 'torch/csrc/api/include')].join(' '));
} else if (what === 'libs') {
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  if (root) {
    const lib = path.join(root, 'lib');
    console.log([`-L${lib}`, `-Wl,-rpath,${lib}`, ...libs].join(' '));
  } else {
    console.log(libs.join(' '));
  }
} else if (what === 'defines') {
  // torch.distributed's Gloo process group needs gloo's headers (Debian: libgloo-dev).
  const gloo = fs.existsSync(path.join(root ? path.join(root, 'include') : '/usr/include', 'gloo', 'algorithm.h'));
  console.log([`_GLIBCXX_USE_CXX11_ABI=${process.env.TORCH_CXX11_ABI ?? '1'}`, ...(gloo ? ['USE_C10D_GLOO'] : [])].join(' '));
} else {
  throw new Error(`config.cjs: unknown query '${what}' (include | libs | defines)`);
}
