/** One bit per block: which blocks of an artifact the device holds (fsynced) on disk. */
export class BlockBitmap {
  readonly bits: Uint8Array;
  private held = 0;

  constructor(
    readonly total: number,
    bits?: Uint8Array,
  ) {
    this.bits = new Uint8Array(Math.ceil(total / 8));
    if (bits && bits.length === this.bits.length) {
      this.bits.set(bits);
      for (let i = 0; i < total; i++) if (this.has(i)) this.held++;
    }
  }

  has(index: number): boolean {
    return (this.bits[index >> 3] & (1 << (index & 7))) !== 0;
  }

  set(index: number): boolean {
    if (this.has(index)) return false;
    this.bits[index >> 3] |= 1 << (index & 7);
    this.held++;
    return true;
  }

  get count(): number {
    return this.held;
  }

  get complete(): boolean {
    return this.held === this.total;
  }

  /** Indices not held, ascending. */
  *missing(): Generator<number> {
    for (let i = 0; i < this.total; i++) if (!this.has(i)) yield i;
  }

  toBase64(): string {
    return Buffer.from(this.bits).toString('base64');
  }

  static fromBase64(total: number, text: string): BlockBitmap {
    return new BlockBitmap(total, Buffer.from(text, 'base64'));
  }
}
