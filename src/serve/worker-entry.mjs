// The inference worker's entry: worker threads do not inherit the main thread's TypeScript loader,
// so register tsx here, then run the worker written in TypeScript.
import { register } from 'tsx/esm/api';
register();
await import('./worker.ts');
