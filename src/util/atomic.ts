// Atomic file replacement: a reader (or a crash) sees either the old file or the complete new one,
// never a half-written checkpoint. Temp file in the same folder (rename is atomic only within a
// file system), fsync before rename, then fsync the folder so the rename itself is durable.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type FileContents = string | Uint8Array | readonly Uint8Array[];

function chunksOf(data: FileContents): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return data;
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

// Some file systems refuse fsync on a directory; the data are already safe at that point.
async function syncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try { await h.sync(); } finally { await h.close(); }
  } catch { /* best effort */ }
}

/**
 * Runs `write` on a temp file beside `path`, then fsyncs and renames it over `path`: readers see the
 * old file or the complete new one. On any failure (a full disk: ENOSPC) the temp file is removed and
 * the error names `path`.
 */
export async function withAtomicFile(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx', 0o644);
  } catch (err) {
    throw new Error(`cannot write ${path}: ${(err as Error).message}`);
  }
  try {
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (err) {
    if (handle) await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new Error(`cannot write ${path}: ${(err as Error).message}`);
  }
  await syncDir(dirname(path));
}

/** Writes `data` to `path` atomically (temp file + fsync + rename). Chunks avoid concatenating big buffers. */
export async function writeFileAtomic(path: string, data: FileContents): Promise<void> {
  await withAtomicFile(path, async (handle) => {
    for (const chunk of chunksOf(data)) {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
    }
  });
}

/** Synchronous twin of `writeFileAtomic` (for exit handlers and simple scripts). */
export function writeFileAtomicSync(path: string, data: FileContents): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o644);
  } catch (err) {
    throw new Error(`cannot write ${path}: ${(err as Error).message}`);
  }
  try {
    for (const chunk of chunksOf(data)) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) { try { closeSync(fd); } catch { /* already failing */ } }
    try { unlinkSync(tmp); } catch { /* may not exist */ }
    throw new Error(`cannot write ${path}: ${(err as Error).message}`);
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best effort */ }
}
