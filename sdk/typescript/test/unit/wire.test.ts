// The codec against the golden byte vectors of PROTOCOL.md §1
// (proto/testdata/vectors.json, which the Go and C# tests read too).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError, wire } from "fastway-client";
import { hex, toHex, vectors } from "../lib/util.js";

const { Cmd, FrameParser, decodeCommand, encodeCommand, encodeData } = wire;

const kinds: Record<string, wire.CmdType> = {
  Dial: Cmd.Dial,
  Accept: Cmd.Accept,
  Connect: Cmd.Connect,
  Refuse: Cmd.Refuse,
  Close: Cmd.Close,
  Ping: Cmd.Ping,
};

/** Parses bytes whole with a fresh parser; returns what it found. */
function parseAll(bytes: Uint8Array, maxPacket?: number): { data: [number, string][]; cmds: wire.Command[] } {
  const p = new FrameParser(maxPacket);
  const data: [number, string][] = [];
  const cmds: wire.Command[] = [];
  p.push(bytes, { data: (id, m) => data.push([id, toHex(m)]), command: (c) => cmds.push(c) });
  return { data, cmds };
}

describe("golden vectors (PROTOCOL.md §1)", () => {
  const v = vectors();
  assert.ok(v.framing.length >= 11, "vectors.json has the framing vectors");

  for (const f of v.framing) {
    it(`encodes and decodes: ${f.name}`, () => {
      const bytes = hex(f.hex);
      if (f.kind === "data") {
        assert.equal(toHex(encodeData(f.connID as number, hex(f.message as string))), toHex(bytes));
        assert.deepEqual(parseAll(bytes), { data: [[f.connID, f.message]], cmds: [] });
        return;
      }
      const type = kinds[f.kind];
      assert.notEqual(type, undefined, f.kind);
      const cmd: wire.Command = { type: type as wire.CmdType, connID: f.connID ?? 0, remoteID: f.remoteID ?? 0 };
      assert.equal(toHex(encodeCommand(cmd)), toHex(bytes));
      assert.equal(wire.commandSize(cmd.type), bytes.length);
      assert.deepEqual(decodeCommand(bytes.subarray(8)), cmd);
      assert.deepEqual(parseAll(bytes), { data: [], cmds: [cmd] });
    });
  }

  it("parses all the vectors as one stream, and byte by byte", () => {
    const all = Buffer.concat(v.framing.map((f) => hex(f.hex)));
    const whole = parseAll(all);
    assert.equal(whole.data.length + whole.cmds.length, v.framing.length);
    const p = new FrameParser();
    const data: [number, string][] = [];
    const cmds: wire.Command[] = [];
    for (const b of all) {
      p.push(Uint8Array.of(b), { data: (id, m) => data.push([id, toHex(m)]), command: (c) => cmds.push(c) });
    }
    assert.deepEqual({ data, cmds }, whole);
  });

  for (const f of v.framingErrors) {
    it(`refuses: ${f.name} (${f.error})`, () => {
      const pattern = {
        short: /Length \d+ < 4/,
        tooLarge: /> MaxPacket/,
        badCommand: /command (without a type byte|\d+ has \d+ bytes)/,
        unknownCmd: /unknown command type/,
      }[f.error];
      const bytes = hex(f.hex);
      assert.throws(() => parseAll(bytes, f.maxPacket), (err: unknown) => err instanceof ProtocolError && pattern.test(err.message));
      // And once failed, the parser refuses more input.
      const p = new FrameParser(f.maxPacket);
      const sink = { data: () => {}, command: () => {} };
      assert.throws(() => p.push(bytes, sink), ProtocolError);
      assert.throws(() => p.push(hex("05000000 00000000 05"), sink), ProtocolError);
    });
  }

  it("checks Length against maxPacket before allocating, and accepts exactly maxPacket", () => {
    const p = new FrameParser(100);
    const got: number[] = [];
    const sink = { data: (_: number, m: Uint8Array) => got.push(m.length), command: () => {} };
    const frame = encodeData(1, new Uint8Array(96)); // Length 100
    p.push(frame.subarray(0, 8), sink);
    assert.equal(p.pendingBytes, 104, "a buffer of the frame's size, once its header is in");
    p.push(frame.subarray(8), sink);
    assert.deepEqual(got, [96]);
    assert.equal(p.pendingBytes, 0);
    assert.throws(() => p.push(hex("65000000 01000000"), sink), /Length 101 > MaxPacket 100/);
  });

  it("hands out data as copies that do not pin the chunk", () => {
    const chunk = new Uint8Array(Buffer.concat([encodeData(7, hex("aabb")), encodeData(8, hex("cc"))]));
    const msgs: Uint8Array[] = [];
    new FrameParser().push(chunk, { data: (_, m) => msgs.push(m), command: () => {} });
    assert.equal(msgs.length, 2);
    for (const m of msgs) {
      assert.notEqual(m.buffer, chunk.buffer);
      assert.equal(m.buffer.byteLength, m.length);
    }
  });
});
