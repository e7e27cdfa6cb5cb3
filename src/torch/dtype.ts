// Element types the engine moves between JavaScript and libtorch.
// The numeric codes are c10::ScalarType values; the addon uses them directly.

export type DType = 'uint8' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'bfloat16' | 'float32' | 'float64' | 'bool';

export const SCALAR_TYPE: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7, bool: 11, bfloat16: 15,
};

/** The floating-point dtypes (what Module.to(dtype) casts, what a NaN check looks at). */
export const FLOATING_DTYPES: readonly DType[] = ['float16', 'bfloat16', 'float32', 'float64'];
export const isFloatingPoint = (d: DType): boolean => FLOATING_DTYPES.includes(d);

export type TypedArrayOf<D extends DType> = D extends 'uint8' | 'bool' ? Uint8Array
  : D extends 'int8' ? Int8Array
  : D extends 'int16' ? Int16Array
  : D extends 'int32' ? Int32Array
  : D extends 'int64' ? BigInt64Array
  : D extends 'float16' | 'bfloat16' ? Uint16Array
  : D extends 'float32' ? Float32Array
  : Float64Array;

export type AnyTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint16Array | Float32Array | Float64Array;

// float16 and bfloat16 values travel as their raw 16-bit patterns (bfloat16: the top half of a float32).

/** A tensor's values held in JavaScript memory: what file readers produce and the engine consumes. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: AnyTypedArray;
}

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  uint8: 1, int8: 1, int16: 2, int32: 4, int64: 8, float16: 2, bfloat16: 2, float32: 4, float64: 8, bool: 1,
};

export function typedArrayFor(dtype: DType, buffer: ArrayBuffer, byteOffset: number, length: number): AnyTypedArray {
  switch (dtype) {
    case 'uint8': case 'bool': return new Uint8Array(buffer, byteOffset, length);
    case 'int8': return new Int8Array(buffer, byteOffset, length);
    case 'int16': return new Int16Array(buffer, byteOffset, length);
    case 'int32': return new Int32Array(buffer, byteOffset, length);
    case 'int64': return new BigInt64Array(buffer, byteOffset, length);
    case 'float16': case 'bfloat16': return new Uint16Array(buffer, byteOffset, length);
    case 'float32': return new Float32Array(buffer, byteOffset, length);
    case 'float64': return new Float64Array(buffer, byteOffset, length);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
