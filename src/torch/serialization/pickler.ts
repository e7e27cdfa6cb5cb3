// Protocol-2 pickle writer: the opcode emitters that `savePth` drives. Protocol 2 is what
// `torch.save` itself writes, so every torch version (and Python's pickle) reads the result.
// (No `bytes` emitter: Python 3 bytes in protocol 2 need `_codecs.encode`; nothing here saves them.)

export class Pickler {
  private buf = new Uint8Array(1024);
  private len = 0;
  private readonly encoder = new TextEncoder();

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  private raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  private u32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer).setUint32(this.len, v, true);
    this.len += 4;
  }

  proto(): void { this.byte(0x80); this.byte(2); }
  stop(): void { this.byte(0x2e); }
  mark(): void { this.byte(0x28); }
  none(): void { this.byte(0x4e); }
  bool(v: boolean): void { this.byte(v ? 0x88 : 0x89); }

  int(v: bigint): void {
    if (v >= 0n && v < 256n) { this.byte(0x4b); this.byte(Number(v)); return; }
    if (v >= 0n && v < 65536n) { this.byte(0x4d); this.byte(Number(v) & 0xff); this.byte(Number(v) >> 8); return; }
    if (v >= -(2n ** 31n) && v < 2n ** 31n) {
      this.byte(0x4a);
      this.ensure(4);
      new DataView(this.buf.buffer).setInt32(this.len, Number(v), true);
      this.len += 4;
      return;
    }
    // LONG1: minimal little-endian two's complement.
    const out: number[] = [];
    let x = v;
    for (;;) {
      out.push(Number(x & 0xffn));
      x >>= 8n;
      const signBit = (out[out.length - 1]! & 0x80) !== 0;
      if ((x === 0n && !signBit) || (x === -1n && signBit)) break;
    }
    if (out.length > 255) throw new Error(`integer ${v} too large to pickle`);
    this.byte(0x8a);
    this.byte(out.length);
    this.raw(Uint8Array.from(out));
  }

  float(v: number): void {
    this.byte(0x47);
    this.ensure(8);
    new DataView(this.buf.buffer).setFloat64(this.len, v, false);
    this.len += 8;
  }

  str(s: string): void {
    const b = this.encoder.encode(s);
    this.byte(0x58);
    this.u32(b.length);
    this.raw(b);
  }

  /** A module-level name (class or function) by reference. */
  global(module: string, name: string): void {
    if (/[\n]/.test(module + name)) throw new Error(`bad global name ${module}.${name}`);
    this.byte(0x63);
    this.raw(this.encoder.encode(`${module}\n${name}\n`));
  }

  emptyTuple(): void { this.byte(0x29); }
  tuple(): void { this.byte(0x74); } // items since the last MARK
  emptyList(): void { this.byte(0x5d); }
  appends(): void { this.byte(0x65); }
  emptyDict(): void { this.byte(0x7d); }
  setitems(): void { this.byte(0x75); }
  reduce(): void { this.byte(0x52); }
  binpersid(): void { this.byte(0x51); }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}
