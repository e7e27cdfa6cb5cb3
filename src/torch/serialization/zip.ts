// Minimal zip archive reader and writer: enough for PyTorch's `torch.save` archives.
// Reading uses the central directory (the authoritative list), supports STORED and DEFLATED
// entries and zip64 sizes/offsets. Writing produces STORED entries whose data start on a 64-byte
// boundary, as PyTorch's own writer does (lets readers map storages in place).
import { crc32, inflateRawSync } from 'node:zlib';
import { availableMemory } from '../host-memory.ts';

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const EOCD_SIG = 0x06054b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipFormatError extends Error {}

/** True when the bytes start like a zip archive (a local file header or an empty archive). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b
    && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/** Reads entries of an archive held in memory. `label` names the file in errors. */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly label: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.readCentralDirectory();
    // What reading every compressed entry would allocate, against the memory there is (within
    // deflate's ratio, a small entry may still declare gigabytes): refused before inflating any.
    let inflated = 0;
    for (const e of this.entries.values()) if (e.method !== 0) inflated += e.size;
    const available = availableMemory();
    if (inflated > available) {
      this.fail(`its compressed entries declare ${(inflated / 2 ** 20).toFixed(0)} MiB in total, more than the ${(available / 2 ** 20).toFixed(0)} MiB of memory available`);
    }
  }

  private fail(msg: string): never {
    throw new ZipFormatError(`${this.label}: ${msg}`);
  }

  private findEocd(): number {
    // The end record is 22 bytes plus a comment of at most 65,535 bytes.
    const min = Math.max(0, this.bytes.length - 22 - 0xffff);
    for (let i = this.bytes.length - 22; i >= min; i--) {
      if (this.view.getUint32(i, true) === EOCD_SIG) return i;
    }
    return this.fail('not a zip archive (no end-of-central-directory record; truncated file?)');
  }

  private readCentralDirectory(): void {
    const v = this.view;
    const eocd = this.findEocd();
    let count = v.getUint16(eocd + 10, true);
    let cdSize = v.getUint32(eocd + 12, true);
    let cdOffset = v.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || v.getUint32(loc, true) !== ZIP64_LOCATOR_SIG) this.fail('zip64 archive without a zip64 locator');
      const z = this.u64(loc + 8);
      if (v.getUint32(z, true) !== ZIP64_EOCD_SIG) this.fail('bad zip64 end-of-central-directory record');
      count = this.u64(z + 32);
      cdSize = this.u64(z + 40);
      cdOffset = this.u64(z + 48);
    }
    if (cdOffset + cdSize > this.bytes.length) this.fail('central directory lies outside the file (truncated?)');
    let p = cdOffset;
    const decoder = new TextDecoder();
    for (let i = 0; i < count; i++) {
      if (p + 46 > this.bytes.length || v.getUint32(p, true) !== CENTRAL_SIG) this.fail(`bad central directory entry #${i}`);
      const flags = v.getUint16(p + 8, true);
      const method = v.getUint16(p + 10, true);
      let compressedSize = v.getUint32(p + 20, true);
      let size = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      let localHeaderOffset = v.getUint32(p + 42, true);
      const name = decoder.decode(this.bytes.subarray(p + 46, p + 46 + nameLen));
      if (flags & 1) this.fail(`entry ${name} is encrypted`);
      // zip64 extended information: only the fields saturated in the fixed header are present, in order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = v.getUint16(e, true);
        const len = v.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) { size = this.u64(q); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = this.u64(q); q += 8; }
          if (localHeaderOffset === 0xffffffff) { localHeaderOffset = this.u64(q); q += 8; }
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p = extraEnd + commentLen;
    }
  }

  private u64(at: number): number {
    const n = this.view.getBigUint64(at, true);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('zip64 value out of range');
    return Number(n);
  }

  /** Entry contents. STORED entries are returned as a view of the archive bytes (no copy). */
  read(name: string): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry) return this.fail(`missing entry ${name}`);
    const v = this.view;
    const h = entry.localHeaderOffset;
    if (h + 30 > this.bytes.length || v.getUint32(h, true) !== LOCAL_SIG) this.fail(`bad local header for ${name}`);
    const start = h + 30 + v.getUint16(h + 26, true) + v.getUint16(h + 28, true);
    const end = start + entry.compressedSize;
    if (end > this.bytes.length) this.fail(`entry ${name} runs past the end of the file (truncated?)`);
    const raw = this.bytes.subarray(start, end);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      // Deflate expands at most ~1032:1: a header claiming more is a lie (a zip bomb) and is refused
      // before inflating; the output is capped at what the header says.
      if (entry.size > raw.length * MAX_DEFLATE_RATIO + 1024) {
        this.fail(`entry ${name} declares ${entry.size} bytes from ${raw.length} compressed ones, more than deflate can produce`);
      }
      let out: Buffer;
      try {
        out = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      } catch (e) {
        return this.fail(`entry ${name} does not inflate to the ${entry.size} bytes its header declares (${(e as Error).message})`);
      }
      if (out.length !== entry.size) this.fail(`entry ${name} inflates to ${out.length} bytes, expected ${entry.size}`);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    return this.fail(`entry ${name} uses unsupported compression method ${entry.method}`);
  }
}

/** The largest expansion deflate can achieve (258-byte matches from 2-bit codes), with margin. */
const MAX_DEFLATE_RATIO = 1032;

const ALIGN = 64;
const MAX32 = 0xffffffff;

/**
 * Builds a STORED zip archive as a list of chunks (so large tensors are never concatenated).
 * Archives above 4 GiB (zip64) are not written; callers get a clear error instead.
 */
export class ZipWriter {
  private readonly chunks: Uint8Array[] = [];
  private readonly central: Uint8Array[] = [];
  private offset = 0;
  private count = 0;
  private readonly encoder = new TextEncoder();

  constructor(private readonly label: string) {}

  add(name: string, data: Uint8Array): void {
    const nameBytes = this.encoder.encode(name);
    const headerLen = 30 + nameBytes.length;
    // Pad through an extra field so that the data start on an ALIGN-byte boundary.
    const pad = (ALIGN - ((this.offset + headerLen + 4) % ALIGN)) % ALIGN;
    const extraLen = 4 + pad;
    const crc = crc32(data) >>> 0;
    if (this.offset > MAX32 || data.length > MAX32) {
      throw new Error(`${this.label}: archive would exceed 4 GiB (zip64 writing is not supported)`);
    }
    const local = new Uint8Array(headerLen + extraLen);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, LOCAL_SIG, true);
    lv.setUint16(4, 20, true); // version needed
    lv.setUint16(6, 0x0800, true); // names are UTF-8
    lv.setUint16(8, 0, true); // STORED
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, extraLen, true);
    local.set(nameBytes, 30);
    lv.setUint16(headerLen, 0x4246, true); // private padding field id ("FB")
    lv.setUint16(headerLen + 2, pad, true);

    const cd = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, CENTRAL_SIG, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, this.offset, true);
    cd.set(nameBytes, 46);

    this.chunks.push(local, data);
    this.central.push(cd);
    this.offset += local.length + data.length;
    this.count++;
  }

  /** All chunks of the finished archive, in file order. */
  finish(): Uint8Array[] {
    const cdOffset = this.offset;
    const cdSize = this.central.reduce((s, c) => s + c.length, 0);
    if (cdOffset + cdSize > MAX32 || this.count > 0xffff) {
      throw new Error(`${this.label}: archive would exceed zip limits (4 GiB / 65,535 entries)`);
    }
    const eocd = new Uint8Array(22);
    const ev = new DataView(eocd.buffer);
    ev.setUint32(0, EOCD_SIG, true);
    ev.setUint16(8, this.count, true);
    ev.setUint16(10, this.count, true);
    ev.setUint32(12, cdSize, true);
    ev.setUint32(16, cdOffset, true);
    return [...this.chunks, ...this.central, eocd];
  }
}
