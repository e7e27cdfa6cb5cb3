// Tensor: a PyTorch-like face over an at::Tensor handle. Methods are thin: each is one call into the
// addon's op table (native/ops.cc) and wraps the result.
import { native, call, OP, type Handle } from './native.ts';
import { track, untrackDisposed, type Disposable } from './scope.ts';
import { SCALAR_TYPE, type DType, type AnyTypedArray, type HostTensor, typedArrayFor, numel as countOf } from './dtype.ts';

const DTYPE_OF_CODE = new Map<number, DType>(Object.entries(SCALAR_TYPE).map(([k, v]) => [v, k as DType]));

export type Scalar = number | boolean;
export type TensorLike = Tensor | number;

export class Tensor implements Disposable {
  #handle: Handle | null;
  #shape: number[] | null = null;

  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  /** The addon handle; throws if this tensor was disposed. */
  get h(): Handle {
    if (this.#handle === null) throw new Error('tensor used after dispose()');
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
    untrackDisposed();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- properties ------------------------------------------------------------------------------
  get shape(): number[] {
    const h = this.h;
    return (this.#shape ??= call(OP.sizes, h) as number[]).slice();
  }
  get ndim(): number {
    return this.shape.length;
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? s.length + dim : dim];
  }
  get numel(): number {
    return countOf(this.shape);
  }
  get dtype(): DType {
    const code = call(OP.dtype, this.h) as number;
    const d = DTYPE_OF_CODE.get(code);
    if (d === undefined) throw new Error(`unsupported scalar type code ${code}`);
    return d;
  }
  get device(): string {
    return call(OP.device, this.h) as string;
  }
  get requiresGrad(): boolean {
    return call(OP.requires_grad, this.h) as boolean;
  }
  get isLeaf(): boolean {
    return call(OP.is_leaf, this.h) as boolean;
  }
  isContiguous(channelsLast = false): boolean {
    return call(OP.is_contiguous, this.h, channelsLast) as boolean;
  }
  strides(): number[] {
    return call(OP.strides, this.h) as number[];
  }
  /** True when both tensors view the same storage. */
  sharesStorageWith(other: Tensor): boolean {
    return call(OP.same_storage, this.h, other.h) as boolean;
  }

  // ---- data out --------------------------------------------------------------------------------
  /** A copy of the values in a typed array of this dtype (row-major). */
  data(): AnyTypedArray {
    const buf = native.toArray(this.h);
    const dt = this.dtype;
    return typedArrayFor(dt, buf, 0, this.numel);
  }
  toFloat32Array(): Float32Array {
    return (this.dtype === 'float32' ? this.data() : withTemp(this.to('float32'), (t) => t.data())) as Float32Array;
  }
  /** Values as plain numbers (int64 converted, fine below 2^53; float16 and bfloat16 widened). */
  toNumbers(): number[] {
    const d = this.dtype === 'float16' || this.dtype === 'bfloat16' ? this.toFloat32Array() : this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  toHost(): HostTensor {
    return { dtype: this.dtype, shape: this.shape, data: this.data() };
  }
  item(): number {
    return call(OP.item, this.h) as number;
  }

  // ---- conversion ------------------------------------------------------------------------------
  to(target: DType | 'cpu' | 'cuda' | `cuda:${number}`): Tensor {
    if (target in SCALAR_TYPE) return wrap(call(OP.to_dtype, this.h, SCALAR_TYPE[target as DType]));
    return wrap(call(OP.to_device, this.h, target));
  }
  float(): Tensor {
    return this.to('float32');
  }
  long(): Tensor {
    return this.to('int64');
  }
  contiguous(channelsLast = false): Tensor {
    return wrap(call(OP.contiguous, this.h, channelsLast));
  }
  clone(): Tensor {
    return wrap(call(OP.clone, this.h));
  }
  detach(): Tensor {
    return wrap(call(OP.detach, this.h));
  }

  // ---- autograd --------------------------------------------------------------------------------
  requiresGrad_(on = true): this {
    call(OP.requires_grad_, this.h, on);
    return this;
  }
  backward(gradient?: Tensor, retainGraph = false): void {
    call(OP.backward, this.h, gradient?.h ?? null, retainGraph);
  }
  /** The accumulated gradient (a new handle each call), or null. */
  get grad(): Tensor | null {
    const g = call(OP.grad, this.h) as Handle | null;
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    call(OP.set_grad, this.h, g?.h ?? null);
  }
  retainGrad(): void {
    call(OP.retain_grad, this.h);
  }

  // ---- element-wise (broadcasting; numbers are scalars) ---------------------------------------
  add(o: TensorLike, alpha = 1): Tensor {
    return typeof o === 'number' ? wrap(call(OP.add_scalar, this.h, o * alpha)) : wrap(call(OP.add, this.h, o.h, alpha));
  }
  sub(o: TensorLike, alpha = 1): Tensor {
    return typeof o === 'number' ? wrap(call(OP.add_scalar, this.h, -o * alpha)) : wrap(call(OP.sub, this.h, o.h, alpha));
  }
  mul(o: TensorLike): Tensor {
    return typeof o === 'number' ? wrap(call(OP.mul_scalar, this.h, o)) : wrap(call(OP.mul, this.h, o.h));
  }
  div(o: TensorLike): Tensor {
    return typeof o === 'number' ? wrap(call(OP.div_scalar, this.h, o)) : wrap(call(OP.div, this.h, o.h));
  }
  /** s - this */
  rsub(s: number): Tensor {
    return wrap(call(OP.rsub_scalar, this.h, s));
  }
  /** s / this */
  rdiv(s: number): Tensor {
    return wrap(call(OP.rdiv_scalar, this.h, s));
  }
  pow(e: TensorLike): Tensor {
    return typeof e === 'number' ? wrap(call(OP.pow_scalar, this.h, e)) : wrap(call(OP.pow, this.h, e.h));
  }
  maximum(o: Tensor): Tensor {
    return wrap(call(OP.maximum, this.h, o.h));
  }
  minimum(o: Tensor): Tensor {
    return wrap(call(OP.minimum, this.h, o.h));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return wrap(call(OP.clamp, this.h, min ?? null, max ?? null));
  }
  clampMin(min: number): Tensor {
    return this.clamp(min, null);
  }
  neg(): Tensor { return unary(OP.neg, this); }
  abs(): Tensor { return unary(OP.abs, this); }
  sign(): Tensor { return unary(OP.sign, this); }
  sqrt(): Tensor { return unary(OP.sqrt, this); }
  rsqrt(): Tensor { return unary(OP.rsqrt, this); }
  reciprocal(): Tensor { return unary(OP.reciprocal, this); }
  exp(): Tensor { return unary(OP.exp, this); }
  log(): Tensor { return unary(OP.log, this); }
  log1p(): Tensor { return unary(OP.log1p, this); }
  tanh(): Tensor { return unary(OP.tanh, this); }
  sigmoid(): Tensor { return unary(OP.sigmoid, this); }
  relu(): Tensor { return unary(OP.relu, this); }
  relu6(): Tensor { return unary(OP.relu6, this); }
  floor(): Tensor { return unary(OP.floor, this); }
  round(): Tensor { return unary(OP.round, this); }
  isfinite(): Tensor { return unary(OP.isfinite, this); }
  logicalNot(): Tensor { return unary(OP.logical_not, this); }
  leakyRelu(slope = 0.01): Tensor {
    return wrap(call(OP.leaky_relu, this.h, slope));
  }
  softplus(beta = 1, threshold = 20): Tensor {
    return wrap(call(OP.softplus, this.h, beta, threshold));
  }

  // ---- comparison ------------------------------------------------------------------------------
  eq(o: TensorLike): Tensor { return compare(this, o, OP.eq, OP.eq_scalar); }
  ne(o: TensorLike): Tensor { return compare(this, o, OP.ne, OP.ne_scalar); }
  lt(o: TensorLike): Tensor { return compare(this, o, OP.lt, OP.lt_scalar); }
  le(o: TensorLike): Tensor { return compare(this, o, OP.le, OP.le_scalar); }
  gt(o: TensorLike): Tensor { return compare(this, o, OP.gt, OP.gt_scalar); }
  ge(o: TensorLike): Tensor { return compare(this, o, OP.ge, OP.ge_scalar); }
  logicalAnd(o: Tensor): Tensor {
    return wrap(call(OP.logical_and, this.h, o.h));
  }
  logicalOr(o: Tensor): Tensor {
    return wrap(call(OP.logical_or, this.h, o.h));
  }
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return call(OP.allclose, this.h, o.h, rtol, atol) as boolean;
  }
  equal(o: Tensor): boolean {
    return call(OP.equal, this.h, o.h) as boolean;
  }
  any(): boolean {
    return withTemp(wrap(call(OP.any, this.h)), (t) => t.item() !== 0);
  }
  all(): boolean {
    return withTemp(wrap(call(OP.all, this.h)), (t) => t.item() !== 0);
  }

  // ---- reductions ------------------------------------------------------------------------------
  sum(dims?: number | number[], keepdim = false): Tensor {
    return wrap(call(OP.sum, this.h, dims ?? null, keepdim));
  }
  mean(dims?: number | number[], keepdim = false): Tensor {
    return wrap(call(OP.mean, this.h, dims ?? null, keepdim));
  }
  /** Max over dims (values only); all elements when dims is omitted. */
  amax(dims?: number | number[], keepdim = false): Tensor {
    return dims === undefined ? wrap(call(OP.max_all, this.h)) : wrap(call(OP.amax, this.h, dims, keepdim));
  }
  amin(dims?: number | number[], keepdim = false): Tensor {
    return dims === undefined ? wrap(call(OP.min_all, this.h)) : wrap(call(OP.amin, this.h, dims, keepdim));
  }
  /** [values, indices] of the max along dim. */
  max(dim: number, keepdim = false): [Tensor, Tensor] {
    return wrapPair(call(OP.max_dim, this.h, dim, keepdim));
  }
  min(dim: number, keepdim = false): [Tensor, Tensor] {
    return wrapPair(call(OP.min_dim, this.h, dim, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrap(call(OP.argmax, this.h, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return wrap(call(OP.argmin, this.h, dim ?? null, keepdim));
  }
  /** p-norm over dims (all when omitted). */
  norm(p = 2, dims?: number | number[], keepdim = false): Tensor {
    return wrap(call(OP.norm, this.h, p, dims ?? [], keepdim));
  }
  var(dims: number | number[], unbiased = true, keepdim = false): Tensor {
    return wrap(call(OP.var, this.h, dims, unbiased, keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return wrap(call(OP.logsumexp, this.h, dims, keepdim));
  }
  cumsum(dim: number): Tensor {
    return wrap(call(OP.cumsum, this.h, dim));
  }
  softmax(dim: number): Tensor {
    return wrap(call(OP.softmax, this.h, dim));
  }
  logSoftmax(dim: number): Tensor {
    return wrap(call(OP.log_softmax, this.h, dim));
  }

  // ---- linear algebra --------------------------------------------------------------------------
  matmul(o: Tensor): Tensor {
    return wrap(call(OP.matmul, this.h, o.h));
  }
  mm(o: Tensor): Tensor {
    return wrap(call(OP.mm, this.h, o.h));
  }
  bmm(o: Tensor): Tensor {
    return wrap(call(OP.bmm, this.h, o.h));
  }
  /** Transpose of a 2-D tensor. */
  t(): Tensor {
    return this.transpose(0, 1);
  }

  // ---- shape and indexing ----------------------------------------------------------------------
  reshape(...shape: number[]): Tensor {
    return wrap(call(OP.reshape, this.h, shape));
  }
  view(...shape: number[]): Tensor {
    return wrap(call(OP.view, this.h, shape));
  }
  permute(...dims: number[]): Tensor {
    return wrap(call(OP.permute, this.h, dims));
  }
  transpose(d0: number, d1: number): Tensor {
    return wrap(call(OP.transpose, this.h, d0, d1));
  }
  flatten(start = 0, end = -1): Tensor {
    return wrap(call(OP.flatten, this.h, start, end));
  }
  squeeze(dim: number): Tensor {
    return wrap(call(OP.squeeze, this.h, dim));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(call(OP.unsqueeze, this.h, dim));
  }
  expand(...shape: number[]): Tensor {
    return wrap(call(OP.expand, this.h, shape));
  }
  repeat(...reps: number[]): Tensor {
    return wrap(call(OP.repeat, this.h, reps));
  }
  /** Python's x[start:end:step] along dim (null = open end). */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return wrap(call(OP.slice, this.h, dim, start, end, step));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(call(OP.narrow, this.h, dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return wrap(call(OP.select, this.h, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(call(OP.index_select, this.h, dim, index.h));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(call(OP.gather, this.h, dim, index.h));
  }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(call(OP.scatter, this.h, dim, index.h, src.h));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(call(OP.masked_fill, this.h, mask.h, value));
  }
  maskedSelect(mask: Tensor): Tensor {
    return wrap(call(OP.masked_select, this.h, mask.h));
  }
  nonzero(): Tensor {
    return wrap(call(OP.nonzero, this.h));
  }
  split(size: number, dim = 0): Tensor[] {
    return (call(OP.split, this.h, size, dim) as Handle[]).map(wrap);
  }
  flip(...dims: number[]): Tensor {
    return wrap(call(OP.flip, this.h, dims));
  }
  /** [values, indices] of the k largest (or smallest) along dim. */
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    return wrapPair(call(OP.topk, this.h, k, dim, largest, sorted));
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return wrapPair(call(OP.sort, this.h, dim, descending));
  }
  /** Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix, from its lower triangle (torch.linalg.eigh). */
  eigh(): [Tensor, Tensor] {
    return wrapPair(call(OP.linalg_eigh, this.h, 'L'));
  }
  argsort(dim = -1, descending = false): Tensor {
    return wrap(call(OP.argsort, this.h, dim, descending));
  }

  // ---- in place (optimizers, buffers) ----------------------------------------------------------
  add_(o: TensorLike, alpha = 1): this {
    if (typeof o === 'number') call(OP.add_scalar_, this.h, o * alpha);
    else call(OP.add_, this.h, o.h, alpha);
    return this;
  }
  mul_(o: TensorLike): this {
    if (typeof o === 'number') call(OP.mul_scalar_, this.h, o);
    else call(OP.mul_, this.h, o.h);
    return this;
  }
  div_(o: TensorLike): this {
    if (typeof o === 'number') call(OP.div_scalar_, this.h, o);
    else call(OP.div_, this.h, o.h);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    call(OP.addcmul_, this.h, a.h, b.h, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    call(OP.addcdiv_, this.h, a.h, b.h, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    call(OP.lerp_, this.h, end.h, weight);
    return this;
  }
  sqrt_(): this {
    call(OP.sqrt_, this.h);
    return this;
  }
  relu_(): this {
    call(OP.relu_, this.h);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    call(OP.clamp_, this.h, min ?? null, max ?? null);
    return this;
  }
  copy_(src: Tensor): this {
    call(OP.copy_, this.h, src.h);
    return this;
  }
  /** Makes this tensor use src's data (any dtype/device), keeping its identity (torch's `p.data = src`). */
  setData_(src: Tensor): this {
    call(OP.set_data, this.h, src.h);
    this.#shape = null;
    return this;
  }
  zero_(): this {
    call(OP.zero_, this.h);
    return this;
  }
  fill_(v: number): this {
    call(OP.fill_, this.h, v);
    return this;
  }
  indexCopy_(dim: number, index: Tensor, src: Tensor): this {
    call(OP.index_copy_, this.h, dim, index.h, src.h);
    return this;
  }

  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype})`;
  }
}

// ---- helpers ---------------------------------------------------------------------------------

export function wrap(h: unknown): Tensor {
  return new Tensor(h as Handle);
}
function wrapPair(r: unknown): [Tensor, Tensor] {
  const [a, b] = r as [Handle, Handle];
  return [new Tensor(a), new Tensor(b)];
}
function unary(op: number, x: Tensor): Tensor {
  return wrap(call(op, x.h));
}
function compare(x: Tensor, o: TensorLike, op: number, opScalar: number): Tensor {
  return typeof o === 'number' ? wrap(call(opScalar, x.h, o)) : wrap(call(op, x.h, o.h));
}
function withTemp<T>(t: Tensor, fn: (t: Tensor) => T): T {
  try {
    return fn(t);
  } finally {
    t.dispose();
  }
}
