// Recognising a HostTensor among other values (Maps, arrays, plain objects) of a pickle.
import { BYTES_PER_ELEMENT, type HostTensor } from '../dtype.ts';

const DTYPES = new Set<string>(Object.keys(BYTES_PER_ELEMENT));

export function isHostTensor(x: unknown): x is HostTensor {
  if (typeof x !== 'object' || x === null || x instanceof Map || Array.isArray(x)) return false;
  const t = x as Partial<HostTensor>;
  return typeof t.dtype === 'string' && DTYPES.has(t.dtype) && Array.isArray(t.shape) && ArrayBuffer.isView(t.data);
}
