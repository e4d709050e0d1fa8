// Hostile input: random bytes, and random mutations of valid streams, into
// the frame parser and the WebSocket frame reader, in random chunks. They
// must report a ProtocolError or nothing, never another exception, and
// never allocate past the bound they were given.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError, WSFrameReader, wire } from "fastway-client/node";
import { Rand, concat } from "../lib/util.js";

const { Cmd, FrameParser, encodeCommand, encodeData } = wire;

/** Feeds input in random chunks; returns the error that stopped it, if any. */
function feed(r: Rand, push: (c: Uint8Array) => void, input: Uint8Array): unknown {
  try {
    for (let off = 0; off < input.length; ) {
      const n = 1 + r.int(64);
      push(input.subarray(off, off + n));
      off += n;
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("hostile input", () => {
  it("FrameParser: 3000 random and mutated streams give frames or a ProtocolError, within maxPacket", () => {
    const r = new Rand(11);
    const maxPacket = 4096;
    const valid = concat([
      encodeCommand({ type: Cmd.Accept, connID: 3, remoteID: 1 }),
      encodeData(3, new Uint8Array(100)),
      encodeCommand({ type: Cmd.Ping, connID: 0, remoteID: 0 }),
      encodeData(3, new Uint8Array(2000)),
      encodeCommand({ type: Cmd.Close, connID: 3, remoteID: 0 }),
    ]);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const input = i % 2 === 0 ? r.bytes(1 + r.int(300)) : valid.slice();
      if (i % 2 === 1) for (let k = 0; k < 1 + r.int(4); k++) input[r.int(input.length)] = r.int(256);
      const p = new FrameParser(maxPacket);
      let most = 0;
      const sink = { data: (_: number, m: Uint8Array) => assert.ok(m.length <= maxPacket - 4), command: () => {} };
      const err = feed(r, (c) => {
        p.push(c, sink);
        most = Math.max(most, p.pendingBytes);
      }, input);
      assert.ok(err === undefined || err instanceof ProtocolError, `input ${i}: ${String(err)}`);
      assert.ok(most <= maxPacket + 4, `input ${i}: held ${most} bytes`);
      if (err) errors++;
    }
    assert.ok(errors > 1000, `most random inputs are refused (${errors})`);
  });

  it("WSFrameReader: 3000 random streams give frames or a ProtocolError", () => {
    const r = new Rand(12);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const reader = new WSFrameReader();
      const sink = { binary: () => {}, control: (_: number, p: Uint8Array) => assert.ok(p.length <= 125) };
      const err = feed(r, (c) => reader.push(c, sink), r.bytes(1 + r.int(300)));
      assert.ok(err === undefined || err instanceof ProtocolError, `input ${i}: ${String(err)}`);
      if (err) errors++;
    }
    assert.ok(errors > 1000, `most random inputs are refused (${errors})`);
  });
});
