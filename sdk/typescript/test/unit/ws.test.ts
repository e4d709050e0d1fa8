// The Node WebSocket client (RFC 6455) against a test server: the handshake,
// masking, fragmentation, control frames between fragments, the closing
// handshake both ways, and what it refuses.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConnectionError, ProtocolError, TimeoutError, WSFrameReader, connect, wire } from "fastway-client/node";
import { Rand, concat, toHex } from "../lib/util.js";
import { WSServer, serverFrame } from "../lib/wsserver.js";

const { Cmd, encodeCommand, encodeData } = wire;
const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

let srv: WSServer;
before(async () => {
  srv = await WSServer.start();
});
after(() => srv.close());

async function pair(options: Parameters<typeof connect>[1] = {}) {
  const [client, peer] = await Promise.all([connect(srv.url, { pingInterval: 0, origin: "https://game.example", ...options }), srv.accept()]);
  return { client, peer };
}

describe("Node WebSocket client", () => {
  it("upgrades with the fastway subprotocol and masks every frame", async () => {
    const { client, peer } = await pair();
    const h = peer.request.headers;
    assert.equal(peer.request.url, "/game");
    assert.equal(h["sec-websocket-protocol"], "fastway");
    assert.equal(h["sec-websocket-version"], "13");
    assert.equal(h.origin, "https://game.example");
    assert.match(String(h.host), /^127\.0\.0\.1:\d+$/);
    const dialing = client.dial(1);
    const f = await peer.next();
    assert.ok(f && f.masked && f.fin && f.opcode === OP.binary);
    assert.equal(toHex(f.payload), "090000000000000000" + "01000000");
    // Accept in three fragments, a Ping between them, then data split across messages.
    const accept = encodeCommand({ type: Cmd.Accept, connID: 9527, remoteID: 1 });
    peer.send(
      serverFrame(OP.binary, accept.subarray(0, 3), false),
      serverFrame(OP.ping, new Uint8Array([1, 2, 3])),
      serverFrame(OP.cont, accept.subarray(3, 10), false),
      serverFrame(OP.cont, accept.subarray(10), true),
    );
    const pong = await peer.next();
    assert.ok(pong && pong.masked && pong.opcode === OP.pong);
    assert.equal(toHex(pong.payload), "010203");
    const v = await dialing;
    assert.equal(v.id, 9527);
    const two = concat([encodeData(9527, new TextEncoder().encode("Hello")), encodeData(9527, new Uint8Array(70000).fill(7))]);
    peer.binary(two.subarray(0, 11));
    peer.binary(two.subarray(11));
    assert.equal(new TextDecoder().decode((await v.receive()) as Uint8Array), "Hello");
    assert.equal(((await v.receive()) as Uint8Array).length, 70000);
    // A large message from the client: 64-bit length, masked.
    v.send(new Uint8Array(100_000).fill(9));
    const big = await peer.next();
    assert.ok(big && big.masked && big.payload.length === 100_008 && big.payload[100_007] === 9);
    client.close();
    const close = await peer.next();
    assert.ok(close && close.opcode === OP.close && close.masked);
    assert.equal(toHex(close.payload), "03e8", "1000, normal closure");
    peer.send(serverFrame(OP.close, close.payload));
    peer.sock.end();
    await peer.closed;
    assert.equal(await client.closed, undefined);
  });

  it("answers the server's close, and reports the close to the client", async () => {
    const { client, peer } = await pair();
    peer.send(serverFrame(OP.close, new Uint8Array([0x03, 0xe9]))); // 1001 going away
    const reply = await peer.next();
    assert.ok(reply && reply.opcode === OP.close);
    assert.equal(toHex(reply.payload), "03e9");
    peer.sock.end();
    const err = await client.closed;
    assert.ok(err instanceof ConnectionError, String(err));
    assert.match(err.message, /the gateway closed the connection/);
  });

  it("closes on a text message with 1003, a masked server frame with 1002", async () => {
    for (const [frame, code, why] of [
      [serverFrame(OP.text, new TextEncoder().encode("hi")), "03eb", /text WebSocket message/],
      [serverFrame(OP.binary, new Uint8Array(4), true, new Uint8Array([1, 2, 3, 4])), "03ea", /masked WebSocket frame/],
      [serverFrame(OP.cont, new Uint8Array(4)), "03ea", /continuation without a message/],
      [serverFrame(OP.ping, new Uint8Array(126)), "03ea", /long WebSocket control frame/],
      [serverFrame(0x3, new Uint8Array(1)), "03ea", /opcode 3/],
    ] as const) {
      const { client, peer } = await pair();
      peer.send(frame);
      const close = await peer.next();
      assert.ok(close && close.opcode === OP.close, "a close frame");
      assert.equal(toHex(close.payload).slice(0, 4), code);
      peer.sock.end();
      const err = await client.closed;
      assert.ok(err instanceof ProtocolError, String(err));
      assert.match(err.message, why);
    }
  });

  it("stops answering Pings once Pongs back up unread, instead of growing its buffer", async () => {
    const { client, peer } = await pair();
    peer.sock.pause(); // the server stops reading
    const ping = serverFrame(OP.ping, new Uint8Array(125));
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => ping));
    let most = 0;
    for (let i = 0; i < 80; i++) {
      // 80,000 Pings: 10.5 MB of Pongs if all were answered.
      await new Promise<void>((resolve) => peer.sock.write(burst, () => resolve()));
      most = Math.max(most, client.stats().unsentBytes);
    }
    assert.ok(most > 0 && most <= 256 * 1024 + 131, `at most the Pong backlog unsent, saw ${most}`);
    assert.equal(client.state, "open");
    client.close();
    peer.sock.destroy();
  });

  it("refuses a bad upgrade response, and times out on none", async () => {
    srv.respond = () => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    await assert.rejects(connect(srv.url), (err: unknown) => err instanceof ConnectionError && /403 Forbidden/.test(err.message));
    srv.respond = () => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\n";
    await assert.rejects(connect(srv.url), (err: unknown) => err instanceof ProtocolError && /Sec-WebSocket-Accept/.test(err.message));
    srv.respond = () => "";
    const started = Date.now();
    await assert.rejects(connect(srv.url, { timeout: 100 }), TimeoutError);
    assert.ok(Date.now() - started < 2000);
    srv.respond = null;
  });
});

describe("WSFrameReader", () => {
  it("gives the same binary stream and control frames however the input is cut", () => {
    const r = new Rand(3);
    const frames: Uint8Array[] = [];
    const stream: Uint8Array[] = [];
    const controls: string[] = [];
    for (let i = 0; i < 300; i++) {
      // A message of 1 to 4 fragments, with control frames between fragments.
      const parts = 1 + r.int(4);
      for (let j = 0; j < parts; j++) {
        const k = r.int(10);
        const p = r.bytes(k < 6 ? r.int(126) : k < 9 ? 126 + r.int(3000) : 65536 + r.int(1000));
        stream.push(p);
        frames.push(serverFrame(j === 0 ? OP.binary : OP.cont, p, j === parts - 1));
        if (r.int(4) === 0) {
          const c = r.bytes(r.int(126));
          const op = r.int(2) === 0 ? OP.ping : OP.pong;
          controls.push(`${op} ${toHex(c)}`);
          frames.push(serverFrame(op, c));
        }
      }
    }
    const all = concat(frames);
    const want = Buffer.from(concat(stream));
    for (const max of [1, 3, 200, 100_000]) {
      const got: Uint8Array[] = [];
      const gotControls: string[] = [];
      const reader = new WSFrameReader();
      const sink = { binary: (b: Uint8Array) => got.push(b.slice()), control: (op: number, p: Uint8Array) => gotControls.push(`${op} ${toHex(p)}`) };
      const input = max === 1 ? all.subarray(0, 100_000) : all;
      for (let off = 0; off < input.length; ) {
        const n = 1 + r.int(max);
        reader.push(input.subarray(off, off + n), sink);
        off += n;
      }
      if (max === 1) {
        const g = Buffer.from(concat(got));
        assert.ok(g.length > 50_000 && g.equals(want.subarray(0, g.length)), "a prefix of the stream, byte by byte");
      } else {
        assert.ok(Buffer.from(concat(got)).equals(want), `chunks up to ${max}`);
        assert.deepEqual(gotControls, controls);
      }
    }
  });
});
