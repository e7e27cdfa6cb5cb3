// Prints compiler/linker flags for libtorch, for binding.gyp.
//   default: Debian's libtorch-dev (headers in /usr/include, libraries in the multiarch dir)
//   LIBTORCH=/path/to/libtorch: the official libtorch zip, or a Python torch package's folder
//     (python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))'), which has include/ and lib/.
//   TORCH_CXX11_ABI=0: for libtorch builds with the pre-C++11 ABI (older pip wheels, "pre-cxx11" zips).
//   A libtorch with libtorch_cuda.so is linked with it kept (--no-as-needed), so CUDA is there at run time.
const fs = require('node:fs');
const path = require('node:path');
const root = process.env.LIBTORCH;
const what = process.argv[2];
if (what === 'include') {
  const base = root ? path.join(root, 'include') : '/usr/include';
  console.log([base, path.join(base, 'torch/csrc/api/include')].join(' '));
} else if (what === 'libs') {
  const lib = root ? path.join(root, 'lib') : ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].find((d) => fs.existsSync(path.join(d, 'libtorch_cpu.so'))) ?? '/usr/lib';
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  // A CUDA libtorch: nothing in the addon calls into libtorch_cuda by name (its kernels register
  // themselves when it loads), so an --as-needed linker would drop it and CUDA would not be there.
  if (fs.existsSync(path.join(lib, 'libtorch_cuda.so'))) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
  console.log([...(root ? [`-L${lib}`, `-Wl,-rpath,${lib}`] : []), ...libs].join(' '));
} else if (what === 'defines') {
  // torch.distributed's Gloo process group needs gloo's headers (Debian: libgloo-dev).
  // VGL_NO_GLOO=1 builds without it (the device check's fallback where c10d's headers do not compile).
  const gloo = process.env.VGL_NO_GLOO !== '1' && fs.existsSync(path.join(root ? path.join(root, 'include') : '/usr/include', 'gloo', 'algorithm.h'));
  console.log([`_GLIBCXX_USE_CXX11_ABI=${process.env.TORCH_CXX11_ABI ?? '1'}`, ...(gloo ? ['USE_C10D_GLOO'] : [])].join(' '));
} else {
  throw new Error(`config.cjs: unknown query '${what}' (include | libs | defines)`);
}
