export { Optimizer, type OptimizerState, type ParamsInput } from './optimizer.ts';
export { SGD, type SGDOptions } from './sgd.ts';
export { Adam, type AdamOptions } from './adam.ts';
