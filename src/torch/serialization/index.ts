// Weights file I/O in TypeScript (no addon): PyTorch .pth read/write, TF.js layers weights.
export { PyCallable, unpickle, UnpicklingError, type PickleValue, type UnpickleOptions } from './pickle.ts';
export { isHostTensor } from './host-tensor.ts';
export { loadPth, loadPthBytes, type LoadPthOptions } from './pth.ts';
export { encodePth, savePth, tuple, type SaveValue } from './pth-save.ts';
export { findStateDict, readStateDict, STATE_DICT_KEYS } from './state-dict.ts';
export { loadTfjsLayersModel, type TfjsLayersModel } from './tfjs.ts';
export { halfArrayToFloat32, halfToFloat } from './half.ts';
