// The engine's public face: `import * as torch from '../torch/index.ts'`.
export { Tensor, type TensorLike } from './tensor.ts';
export * from './factory.ts';
export { tidy, keep, dispose, liveTensors } from './scope.ts';
export * as F from './functional.ts';
export * as nn from './nn/index.ts';
export * as optim from './optim/index.ts';
export * as distributed from './distributed.ts';
export { loadStateDict, stateDictToHost, describeLoadProblems, type LoadReport } from './state-dict.ts';
export type { DType, HostTensor } from './dtype.ts';
export { ThreadAdapter, adaptiveThreadsRequested, type ThreadAdapterOptions } from './threads.ts';
export { availableMemory } from './host-memory.ts';
export { PRECISIONS, bf16Support, resolvePrecision, describePrecision, withPrecision, inFloat32, atLeastFloat32,
  type Precision, type PrecisionOption, type ResolvedPrecision, type Workload } from './precision.ts';
