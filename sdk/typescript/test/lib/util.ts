// Helpers shared by the tests.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** sdk/typescript/, from build/test/lib/. */
export const pkgDir = fileURLToPath(new URL("../../../", import.meta.url));
/** The repository's root. */
export const repoDir = fileURLToPath(new URL("../../../../../", import.meta.url));

export function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");
}

export function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** The golden vectors of PROTOCOL.md §1, the file the Go and C# tests read. */
export interface Vectors {
  framing: { name: string; kind: string; connID?: number; remoteID?: number; message?: string; hex: string }[];
  framingErrors: { name: string; hex: string; maxPacket?: number; error: "short" | "tooLarge" | "badCommand" | "unknownCmd" }[];
}

export function vectors(): Vectors {
  return JSON.parse(readFileSync(repoDir + "proto/testdata/vectors.json", "utf8")) as Vectors;
}

/** mulberry32: a small seeded generator, for reproducible tests. */
export class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n), n up to 2^32. */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const x = this.u32();
      b[i] = x;
      if (i + 1 < n) b[i + 1] = x >>> 8;
      if (i + 2 < n) b[i + 2] = x >>> 16;
      if (i + 3 < n) b[i + 3] = x >>> 24;
    }
    return b;
  }
}

/** Resolves when cond() is true, polling every few ms; rejects after ms. */
export async function waitFor(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Rejects if p does not settle within ms. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** A queue whose next() waits for an item: null once ended, a rejection after ms. */
export class AsyncQueue<T> {
  private items: T[] = [];
  private waiters: ((v: T | null) => void)[] = [];
  private ended = false;

  get length(): number {
    return this.items.length;
  }

  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }

  /** No more items: waiting and later next() calls get null once the queue is empty. */
  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w(null);
  }

  next(ms: number, what: string): Promise<T | null> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift() as T);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = (v: T | null) => {
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no ${what} within ${ms} ms`));
      }, ms);
      this.waiters.push(w);
    });
  }
}
