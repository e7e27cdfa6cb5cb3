// Deterministic release of native tensor memory. V8 does not see libtorch's allocations, so waiting
// for the garbage collector lets resident memory grow; instead every tensor created inside `tidy`
// is freed when it returns, except what it returns or what was `keep`-ed.
// (A native finalizer still frees forgotten handles; it is only a safety net.)

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];
let live = 0;

/** Called by Tensor's constructor and dispose. */
export function track(t: Disposable): void {
  live++;
  stack[stack.length - 1]?.add(t);
}
export function untrackDisposed(): void {
  live--;
}

/** Number of tensors created and not yet disposed (for leak tests and diagnostics). */
export function liveTensors(): number {
  return live;
}

/** Removes t from every open scope, so it outlives them (parameters, buffers, caches). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

/**
 * Runs fn; tensors it creates are disposed when it returns, except those in its result (a tensor, or
 * tensors inside arrays, Maps and plain objects), which move to the enclosing scope. Synchronous only:
 * an async function would let other work create tensors inside this scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error('tidy: fn returned a Promise; tidy scopes are synchronous (dispose explicitly across awaits)');
  }
  const kept = new Set<Disposable>();
  collect(result, kept);
  const parent = stack[stack.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Disposes every tensor found in the arguments (tensors, arrays, Maps, plain objects). */
export function dispose(...values: unknown[]): void {
  const found = new Set<Disposable>();
  for (const v of values) collect(v, found);
  for (const t of found) t.dispose();
}
