// Differential tests: a long random stream, cut into random chunks, through
// the production parser (FrameParser) and through the whole client (a
// Client over a scripted transport), against the plain reference parser fed
// the stream whole.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Transport, type VConn, connectWith, wire } from "fastway-client";
import { type Event, referenceParse } from "../lib/reference.js";
import { Rand, concat, toHex } from "../lib/util.js";

const { Cmd, encodeCommand, encodeData } = wire;
const maxPacket = 64 * 1024;

/** A random stream of frames: data of every size class up to maxPacket, and each command. */
function randomStream(r: Rand, frames: number, connIDs: number[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < frames; i++) {
    const k = r.int(100);
    if (k < 10) {
      const types = [Cmd.Accept, Cmd.Connect, Cmd.Refuse, Cmd.Close, Cmd.Ping, Cmd.Dial] as const;
      const type = types[r.int(types.length)] as wire.CmdType;
      parts.push(encodeCommand({ type, connID: r.u32(), remoteID: r.u32() }));
      continue;
    }
    const size = k < 60 ? r.int(16) : k < 90 ? r.int(2048) : k < 98 ? r.int(20000) : maxPacket - 4 - r.int(2);
    parts.push(encodeData(connIDs[r.int(connIDs.length)] as number, r.bytes(size)));
  }
  return concat(parts);
}

/** Cuts stream into chunks by one of several strategies. */
function chunk(r: Rand, stream: Uint8Array, strategy: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < stream.length) {
    let n: number;
    switch (strategy) {
      case 0:
        n = 1 + r.int(7); // inside headers
        break;
      case 1:
        n = 1 + r.int(300);
        break;
      case 2:
        n = 1 + r.int(2 * maxPacket); // many frames per chunk, and frames over several
        break;
      default:
        n = r.int(4) === 0 ? 1 + r.int(9) : 1 + r.int(70000); // a mix
    }
    // A fresh buffer per chunk, as a socket gives them, with bytes around it.
    const buf = new Uint8Array(n + 2);
    buf.set(stream.subarray(off, off + n), 1);
    out.push(buf.subarray(1, 1 + Math.min(n, stream.length - off)));
    off += n;
  }
  return out;
}

/** Runs FrameParser over chunks; returns its events in the reference's form. */
function production(chunks: Uint8Array[]): Event[] {
  const p = new wire.FrameParser(maxPacket);
  const out: Event[] = [];
  const sink: wire.FrameSink = {
    data: (id, m) => out.push(`data ${id} ${toHex(m)}`),
    command: (c) => out.push(`cmd ${c.type} ${c.connID} ${c.remoteID}`),
  };
  try {
    for (const c of chunks) p.push(c, sink);
  } catch (err) {
    out.push(`error ${kind(String(err))}`);
  }
  return out;
}

function kind(msg: string): string {
  if (/< 4/.test(msg)) return "short";
  if (/MaxPacket/.test(msg)) return "tooLarge";
  if (/unknown command/.test(msg)) return "unknownCmd";
  return "badCommand";
}

/** Compares event lists, reporting the first difference rather than two huge arrays. */
function same(got: Event[], want: Event[], what: string): void {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      assert.fail(`${what}: event ${i} differs:\n got ${got[i]?.slice(0, 120)}\nwant ${want[i]?.slice(0, 120)}`);
    }
  }
  assert.equal(got.length, want.length, `${what}: event count`);
}

describe("FrameParser against the reference, random chunks", () => {
  for (let seed = 1; seed <= 4; seed++) {
    it(`seed ${seed}: 3000 frames, four chunkings`, () => {
      const r = new Rand(seed);
      const stream = randomStream(r, 3000, [1, 2, 9527, 0xffffffff]);
      const want = referenceParse(stream, maxPacket);
      assert.ok(want.length > 0 && !want.some((e) => e.startsWith("error")));
      for (let strategy = 0; strategy < 4; strategy++) {
        // Byte-sized chunks over the first part only: the whole stream is ~10 MB.
        const s = strategy === 0 ? stream.subarray(0, 200_000) : stream;
        const w = strategy === 0 ? referenceParse(s, maxPacket) : want;
        same(production(chunk(r, s, strategy)), w, `seed ${seed} strategy ${strategy}`);
      }
    });
  }

  it("finds a malformed frame at the same point as the reference", () => {
    const r = new Rand(99);
    const bad = ["03000000 00000000", "01000100 00000000", "04000000 00000000", "0a000000 00000000 00 01000000 00", "05000000 00000000 06"];
    for (const b of bad) {
      const stream = concat([randomStream(r, 300, [5, 6]), Buffer.from(b.replace(/ /g, ""), "hex"), randomStream(r, 10, [5])]);
      const want = referenceParse(stream, maxPacket);
      assert.match(want.at(-1) as string, /^error /);
      for (let strategy = 1; strategy < 4; strategy++) {
        same(production(chunk(r, stream, strategy)), want, `bad frame ${b}, strategy ${strategy}`);
      }
    }
  });
});

/** A transport fed by the test; what the client writes is kept. */
class ScriptedTransport implements Transport {
  readonly drainEvents = false;
  readonly label = "scripted";
  bufferedAmount = 0;
  written: Uint8Array[] = [];
  closed = false;
  ondata: (chunk: Uint8Array) => void = () => {};
  ondrain: () => void = () => {};
  onclose: (err: Error | undefined) => void = () => {};
  write(data: Uint8Array): void {
    this.written.push(data);
  }
  close(): void {
    this.closed = true;
  }
}

describe("Client read path against the reference, random chunks", () => {
  it("delivers every message of every virtual connection in order", async () => {
    const r = new Rand(7);
    const t = new ScriptedTransport();
    const client = await connectWith<Uint8Array>(async () => t, "scripted", { maxPacket, pingInterval: 0, maxUnreadBytes: 64 << 20, maxClientUnreadBytes: 256 << 20 });
    // Three dials accepted as ConnIDs 11, 12, 13; then a long stream of data on them, Pings among it.
    const dials = [client.dial(1), client.dial(1), client.dial(2)];
    t.ondata(concat([11, 12].map((id) => encodeCommand({ type: Cmd.Accept, connID: id, remoteID: 1 }))));
    t.ondata(encodeCommand({ type: Cmd.Accept, connID: 13, remoteID: 2 }));
    const vconns = await Promise.all(dials);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      if (r.int(20) === 0) {
        parts.push(encodeCommand({ type: Cmd.Ping, connID: 0, remoteID: 0 }));
        continue;
      }
      const k = r.int(10);
      const size = k < 6 ? r.int(16) : k < 9 ? r.int(3000) : r.int(maxPacket - 4);
      parts.push(encodeData(11 + r.int(3), r.bytes(size)));
    }
    const stream = concat(parts);
    const want = referenceParse(stream, maxPacket).filter((e) => e.startsWith("data"));
    // Half the vconns read by iteration, one by onmessage: both paths.
    const got: Event[] = [];
    (vconns[2] as VConn).onmessage = (m) => got.push(`data 13 ${toHex(m)}`);
    const readers = vconns.slice(0, 2).map(async (v) => {
      for await (const m of v) got.push(`data ${v.id} ${toHex(m)}`);
    });
    for (const c of chunk(r, stream, 3)) t.ondata(c);
    assert.equal(client.stats().unreadBytes >= 0, true);
    t.ondata(concat([11, 12, 13].map((id) => encodeCommand({ type: Cmd.Close, connID: id, remoteID: 0 }))));
    await Promise.all(readers);
    for (const id of [11, 12, 13]) {
      same(
        got.filter((e) => e.startsWith(`data ${id} `)),
        want.filter((e) => e.startsWith(`data ${id} `)),
        `vconn ${id}`,
      );
    }
    assert.equal(client.stats().unreadBytes, 0, "every byte read is released");
    client.close();
    assert.equal(t.closed, true);
  });
});
