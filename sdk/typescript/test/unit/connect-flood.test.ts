// A gateway that floods Connects past acceptBacklog and reads nothing: each
// extra Connect is answered with Close, and those answers must not grow the
// send buffer past maxUnsentBytes; the client closes with BufferLimitError.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BufferLimitError, connect, wire } from "fastway-client/node";
import { FakeGateway } from "../lib/fakegw.js";

const { Cmd, encodeCommand } = wire;

describe("Connect flood from a gateway that does not read", () => {
  it("closes the client at maxUnsentBytes instead of queuing Closes without end", async () => {
    const gw = await FakeGateway.start();
    try {
      const maxUnsentBytes = 64 << 10;
      const [client, peer] = await Promise.all([
        connect(gw.url, { pingInterval: 0, timeout: 3000, acceptBacklog: 0, maxPacket: 1024, maxUnsentBytes }),
        gw.accept(),
      ]);
      peer.sock.pause(); // read none of the client's Closes
      let closed: Error | undefined | null = null;
      client.closed.then((e) => (closed = e));
      let id = 1;
      const end = Date.now() + 10_000;
      // Up to 4 M Connects (68 MB), 50,000 a write; the kernel's socket
      // buffers take a few MB of Closes before the client's own grow.
      while (closed === null && id < 4_000_000 && Date.now() < end) {
        const parts: Uint8Array[] = [];
        for (let i = 0; i < 50_000; i++) parts.push(encodeCommand({ type: Cmd.Connect, connID: id++, remoteID: 1 }));
        await new Promise<void>((resolve) => peer.sock.write(Buffer.concat(parts), () => resolve()));
        await new Promise((r) => setTimeout(r, 5));
        assert.ok(client.stats().unsentBytes <= maxUnsentBytes, `unsent ${client.stats().unsentBytes}`);
      }
      const err = await client.closed;
      assert.ok(err instanceof BufferLimitError, String(err));
      assert.equal(err.bound, "unsent");
    } finally {
      await gw.close();
    }
  });
});
