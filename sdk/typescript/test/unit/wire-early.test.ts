// A bad Length is an error as soon as its 4 bytes are in, not once 8 header
// bytes are: a frame of Length 0 to 3 is shorter than a header, and when it
// is the last thing the gateway sent, waiting for the rest would hang.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError, connect, wire } from "fastway-client/node";
import { FakeGateway } from "../lib/fakegw.js";
import { within } from "../lib/util.js";

const sink = { data: () => {}, command: () => {} };

describe("FrameParser: a bad Length at its fourth byte", () => {
  for (const [name, bytes] of [
    ["Length 3 and its 3 bytes", [3, 0, 0, 0, 9, 9, 9]],
    ["Length 0", [0, 0, 0, 0]],
    ["Length over MaxPacket", [0xff, 0xff, 0xff, 0xff]],
  ] as const) {
    it(name, () => {
      const p = new wire.FrameParser(1024);
      assert.throws(() => p.push(new Uint8Array(bytes), sink), ProtocolError);
    });
    it(name + ", a byte at a time", () => {
      const p = new wire.FrameParser(1024);
      assert.doesNotThrow(() => p.push(new Uint8Array(bytes.slice(0, 3)), sink));
      assert.throws(() => p.push(new Uint8Array([bytes[3]]), sink), ProtocolError);
    });
  }

  it("closes the client with ProtocolError when a Length 3 frame is the last thing sent", async () => {
    const gw = await FakeGateway.start();
    try {
      const [client, peer] = await Promise.all([connect(gw.url, { pingInterval: 0, timeout: 3000 }), gw.accept()]);
      peer.sock.write(new Uint8Array([3, 0, 0, 0, 0, 0, 0]));
      const err = await within(client.closed, 2000, "the client closed");
      assert.ok(err instanceof ProtocolError, String(err));
    } finally {
      await gw.close();
    }
  });
});
