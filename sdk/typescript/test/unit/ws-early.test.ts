// Frames the gateway sends right behind its handshake response, in the same
// TCP read (a proxy coalescing them, a client whose event loop was busy):
// the Node WebSocket client hands them on like any later frame.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as net from "node:net";
import { describe, it } from "node:test";
import { connect, wire } from "fastway-client/node";
import { within } from "../lib/util.js";
import { serverFrame } from "../lib/wsserver.js";

const { Cmd, encodeCommand, encodeData } = wire;

/** A server that answers the upgrade and sends after in the same write. */
async function server(after: Uint8Array): Promise<{ url: string; close: () => Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on("error", () => {});
    let req = "";
    const onData = (d: Buffer) => {
      req += d.toString("latin1");
      if (!req.includes("\r\n\r\n")) return;
      s.off("data", onData);
      const key = /sec-websocket-key:\s*(\S+)/i.exec(req)?.[1] ?? "";
      const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      const head = Buffer.from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: fastway\r\n\r\n`,
      );
      s.write(Buffer.concat([head, after]));
      s.resume(); // read and drop what the client sends
    };
    s.on("data", onData);
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${(srv.address() as net.AddressInfo).port}/`,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

describe("Node WebSocket client: frames behind the 101", () => {
  it("delivers a Connect and data sent in the same write as the handshake response", async () => {
    const stream = Buffer.concat([encodeCommand({ type: Cmd.Connect, connID: 5, remoteID: 1 }), encodeData(5, new TextEncoder().encode("hello"))]);
    const srv = await server(serverFrame(0x2, stream));
    try {
      const client = await connect(srv.url, { pingInterval: 0, timeout: 3000 });
      try {
        const v = await within(client.accept(), 2000, "the Connect sent with the 101");
        assert.equal(v.id, 5);
        assert.equal(new TextDecoder().decode((await within(v.receive(), 2000, "the data sent with the 101")) as Uint8Array), "hello");
      } finally {
        client.close();
        await client.closed;
      }
    } finally {
      await srv.close();
    }
  });

  it("sees a Close frame sent in the same write as the handshake response", async () => {
    const body = Buffer.from([0x03, 0xf3]); // 1011
    const srv = await server(serverFrame(0x8, body));
    try {
      const client = await connect(srv.url, { pingInterval: 0, timeout: 3000 });
      const err = await within(client.closed, 3000, "the Close sent with the 101");
      assert.match(String(err?.message), /code 1011/);
    } finally {
      await srv.close();
    }
  });
});
