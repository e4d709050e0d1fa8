// The client against a scripted gateway on loopback TCP: dialing, accepting,
// closing, keep-alive, the byte bounds, the codec and reconnect.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BufferLimitError,
  ClosedError,
  CodecError,
  ConnectionError,
  PingTimeoutError,
  ProtocolError,
  RefusedError,
  type NodeConnectOptions,
  TimeoutError,
  connect,
  jsonCodec,
  wire,
} from "fastway-client/node";
import { FakeGateway } from "../lib/fakegw.js";
import { toHex, waitFor, within } from "../lib/util.js";

const { Cmd } = wire;
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

let gw: FakeGateway;
before(async () => {
  gw = await FakeGateway.start();
});
after(() => gw.close());

/** A client over TCP to the fake gateway, and the gateway's side of it. */
async function pair<T = Uint8Array>(options: NodeConnectOptions<T> = {}) {
  const [client, peer] = await Promise.all([connect<T>(gw.url, { pingInterval: 0, ...options }), gw.accept()]);
  return { client, peer };
}

describe("dial", () => {
  it("sends Dial, resolves on Accept, carries data both ways", async () => {
    const { client, peer } = await pair();
    const dialing = client.dial(1);
    const f = await peer.next();
    assert.equal(toHex((f as { msg: Uint8Array }).msg), "0001000000", "Dial(1) after ConnID 0");
    peer.cmd(Cmd.Accept, 9527, 1);
    const v = await dialing;
    assert.equal(v.id, 9527);
    assert.equal(v.remoteID, 1);
    v.send(bytes("Hello"));
    const d = await peer.next();
    assert.equal(d?.connID, 9527);
    assert.equal(text(d?.msg as Uint8Array), "Hello");
    peer.data(9527, "world");
    assert.equal(text((await v.receive()) as Uint8Array), "world");
    client.close();
    assert.equal(await client.closed, undefined);
  });

  it("matches pipelined replies first in first out; Refuse rejects with RefusedError", async () => {
    const { client, peer } = await pair();
    const a = client.dial(1);
    const b = client.dial(2);
    const c = client.dial(1);
    for (const want of [1, 2, 1]) assert.equal((await peer.nextCmd()).remoteID, want);
    peer.send(
      wire.encodeCommand({ type: Cmd.Accept, connID: 7, remoteID: 1 }),
      wire.encodeCommand({ type: Cmd.Refuse, connID: 0, remoteID: 2 }),
      wire.encodeCommand({ type: Cmd.Accept, connID: 8, remoteID: 1 }),
    );
    assert.equal((await a).id, 7);
    await assert.rejects(b, (err: unknown) => err instanceof RefusedError && err.remoteID === 2);
    assert.equal((await c).id, 8);
    client.close();
  });

  it("rejects with ClosedError when the client closes first, TimeoutError after its timeout", async () => {
    const { client, peer } = await pair();
    const t = client.dial(1, { timeout: 30 });
    await assert.rejects(t, TimeoutError);
    // The late Accept of the abandoned dial is answered with Close.
    await peer.nextCmd();
    const d = client.dial(3);
    await peer.nextCmd();
    peer.cmd(Cmd.Accept, 40, 1);
    const close = await peer.nextCmd();
    assert.deepEqual(close, { type: Cmd.Close, connID: 40, remoteID: 0 });
    client.close();
    await assert.rejects(d, ClosedError);
    await assert.rejects(client.dial(1), ClosedError);
  });

  it("closes the client on a reply without a pending dial (ProtocolError)", async () => {
    const { client, peer } = await pair();
    const v = client.dial(5);
    await peer.nextCmd();
    peer.cmd(Cmd.Accept, 3, 5);
    const vc = await v;
    peer.data(3, "before");
    peer.cmd(Cmd.Accept, 4, 5);
    const err = await client.closed;
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(err.message, /Accept without a pending Dial/);
    // The virtual connection keeps what came before, then throws the reason.
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of vc) got.push(text(m));
      })(),
      ProtocolError,
    );
    assert.deepEqual(got, ["before"]);
    assert.throws(() => vc.send(bytes("x")), ClosedError);
    await peer.closed;
  });
});

describe("accept", () => {
  it("returns the virtual connections a server opened, and onaccept takes them too", async () => {
    const { client, peer } = await pair();
    peer.cmd(Cmd.Connect, 70, 1);
    peer.data(70, "hello 70");
    const v = await client.accept({ timeout: 5000 });
    assert.equal(v.id, 70);
    assert.equal(v.remoteID, 1);
    assert.equal(text((await v.receive()) as Uint8Array), "hello 70");
    const seen: number[] = [];
    client.onaccept = (v) => {
      seen.push(v.id);
      v.send(bytes("hi")); // it may send at once
    };
    peer.cmd(Cmd.Connect, 71, 2);
    const f = await peer.next();
    assert.equal(f?.connID, 71);
    assert.deepEqual(seen, [71]);
    client.onaccept = null;
    await assert.rejects(client.accept({ timeout: 20 }), TimeoutError);
    client.close();
    await assert.rejects(client.accept(), ClosedError);
  });

  it("answers a Connect past acceptBacklog with Close", async () => {
    const { client, peer } = await pair({ acceptBacklog: 2 });
    for (const id of [1, 2, 3]) peer.cmd(Cmd.Connect, id, 9);
    assert.deepEqual(await peer.nextCmd(), { type: Cmd.Close, connID: 3, remoteID: 0 });
    assert.equal((await client.accept()).id, 1);
    assert.equal((await client.accept()).id, 2);
    client.close();
  });
});

describe("close", () => {
  it("a remote Close ends iteration after the queued messages; a local one sends Close", async () => {
    const { client, peer } = await pair();
    peer.cmd(Cmd.Connect, 5, 1);
    peer.cmd(Cmd.Connect, 6, 1);
    const [a, b] = [await client.accept(), await client.accept()];
    peer.data(5, "one");
    peer.data(5, "two");
    peer.cmd(Cmd.Close, 5);
    const got: string[] = [];
    for await (const m of a) got.push(text(m));
    assert.deepEqual(got, ["one", "two"]);
    assert.equal(await a.closed, undefined);
    assert.throws(() => a.send(bytes("x")), ClosedError);
    b.send(bytes("last"));
    b.close();
    b.close();
    assert.equal((await peer.next())?.connID, 6, "data first");
    assert.deepEqual(await peer.nextCmd(), { type: Cmd.Close, connID: 6, remoteID: 0 });
    peer.data(6, "late"); // dropped
    assert.equal(await b.receive(), undefined);
    client.close();
    await peer.closed;
    assert.equal(peer.queued, 0, "one Close only");
  });

  it("a lost connection closes every virtual connection with ConnectionError", async () => {
    const { client, peer } = await pair();
    peer.cmd(Cmd.Connect, 5, 1);
    const v = await client.accept();
    peer.sock.destroy();
    const err = await v.closed;
    assert.ok(err instanceof ConnectionError, String(err));
    assert.ok((await client.closed) instanceof ConnectionError);
    assert.equal(client.state, "closed");
  });
});

describe("keep-alive", () => {
  it("sends Pings while idle and stays up while the gateway answers", async () => {
    const { client, peer } = await pair({ pingInterval: 30, pingTimeout: 200 });
    for (let i = 0; i < 5; i++) {
      assert.equal((await peer.nextCmd()).type, Cmd.Ping);
      peer.cmd(Cmd.Ping);
    }
    assert.equal(client.state, "open");
    client.close();
  });

  it("closes with PingTimeoutError when nothing comes back, unless onPingTimeout keeps it", async () => {
    let calls = 0;
    const { client, peer } = await pair({ pingInterval: 20, pingTimeout: 60, onPingTimeout: () => ++calls < 3 });
    const started = Date.now();
    const err = await within(client.closed, 3000, "ping timeout");
    assert.ok(err instanceof PingTimeoutError, String(err));
    assert.equal(calls, 3);
    assert.ok(Date.now() - started >= 150, "three timeouts of 60 ms");
    await peer.closed;
  });
});

describe("byte bounds", () => {
  const small = { maxPacket: 1024, maxUnreadBytes: 4096, maxClientUnreadBytes: 4096 + 1024 + 4 + 1000, maxUnsentBytes: 1024 + 4 };

  it("closes a virtual connection past maxUnreadBytes, keeps what it had, spares its siblings", async () => {
    const { client, peer } = await pair(small);
    peer.cmd(Cmd.Connect, 1, 1);
    peer.cmd(Cmd.Connect, 2, 1);
    const [a, b] = [await client.accept(), await client.accept()];
    for (let i = 0; i < 5; i++) peer.data(1, new Uint8Array(1000).fill(i));
    assert.deepEqual(await peer.nextCmd(), { type: Cmd.Close, connID: 1, remoteID: 0 });
    const err = await a.closed;
    assert.ok(err instanceof BufferLimitError && err.bound === "vconnUnread" && err.limit === 4096 && err.size === 5000, String(err));
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const m of a) assert.equal(m[0], n++);
      })(),
      BufferLimitError,
    );
    assert.equal(n, 4, "the four messages that fitted");
    assert.equal(client.stats().unreadBytes, 0);
    peer.data(2, "still here");
    assert.equal(text((await b.receive()) as Uint8Array), "still here");
    client.close();
  });

  it("closes the client past maxClientUnreadBytes", async () => {
    const { client, peer } = await pair(small);
    for (const id of [1, 2]) peer.cmd(Cmd.Connect, id, 1);
    const [a] = [await client.accept(), await client.accept()];
    for (let i = 0; i < 3; i++) peer.data(1, new Uint8Array(1000));
    for (let i = 0; i < 4; i++) peer.data(2, new Uint8Array(1000));
    const err = await client.closed;
    assert.ok(err instanceof BufferLimitError && err.bound === "clientUnread", String(err));
    assert.ok(err.size > err.limit);
    assert.ok((await a.closed) instanceof BufferLimitError);
    // What was held is let go, so that a reconnect does not start over the bound.
    assert.equal(client.stats().unreadBytes, 0);
    await assert.rejects(a.receive(), BufferLimitError);
  });

  it("throws BufferLimitError past maxUnsentBytes; sendAsync waits for room and keeps the order", async () => {
    const { client, peer } = await pair({ maxUnsentBytes: 1 << 20 });
    peer.cmd(Cmd.Connect, 1, 1);
    const v = await client.accept();
    peer.sock.pause(); // the gateway stops reading: the kernel's buffers fill, then ours
    const msg = new Uint8Array(64 * 1024);
    let sent = 0;
    let err: unknown;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        msg.fill(sent & 0xff);
        v.send(msg);
        sent++;
      } catch (e) {
        err = e;
        break;
      }
      if (sent % 8 === 0) await new Promise((r) => setImmediate(r)); // let the socket write
    }
    assert.ok(err instanceof BufferLimitError && err.bound === "unsent", String(err));
    assert.ok(err.size > 1 << 20 && err.limit === 1 << 20);
    assert.ok(client.stats().unsentBytes <= 1 << 20);
    msg.fill(sent & 0xff);
    const waiting = v.sendAsync(msg);
    assert.throws(() => v.send(msg), BufferLimitError, "send does not jump the queue");
    peer.sock.resume();
    await within(waiting, 10_000, "sendAsync");
    sent++;
    for (let i = 0; i < sent; i++) {
      const f = await peer.next();
      assert.equal(f?.msg.length, msg.length);
      assert.equal(f?.msg[0], i & 0xff, `message ${i} in order`);
    }
    client.close();
  });

  it("sendAsync keeps a copy while it waits; closing its vconn rejects it at once", async () => {
    const { client, peer } = await pair({ maxUnsentBytes: 1 << 20 });
    peer.cmd(Cmd.Connect, 1, 1);
    peer.cmd(Cmd.Connect, 2, 1);
    const [a, b] = [await client.accept(), await client.accept()];
    peer.sock.pause();
    const chunk = new Uint8Array(64 * 1024);
    for (let i = 0; ; i++) {
      try {
        b.send(chunk);
      } catch (err) {
        assert.ok(err instanceof BufferLimitError);
        break;
      }
      if (i % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    const first = a.sendAsync(new Uint8Array(64 * 1024)); // does not fit: waits
    const mine = new Uint8Array(1000).fill(0x11);
    const second = b.sendAsync(mine);
    mine.fill(0xee); // reused at once, as after send
    a.close();
    await assert.rejects(first, ClosedError);
    peer.sock.resume();
    await within(second, 10_000, "sendAsync");
    for (;;) {
      const f = await peer.next();
      if (f?.connID === 2 && f.msg.length === 1000) {
        assert.ok(f.msg.every((x) => x === 0x11), "what was given, not what the buffer became");
        break;
      }
    }
    client.close();
  });

  it("refuses a message over maxPacket", async () => {
    const { client, peer } = await pair({ maxPacket: 1024, maxUnreadBytes: 1020, maxClientUnreadBytes: 4096 });
    peer.cmd(Cmd.Connect, 1, 1);
    const v = await client.accept();
    v.send(new Uint8Array(1020));
    assert.throws(() => v.send(new Uint8Array(1021)), /1021-byte message, maxPacket 1024/);
    assert.equal((await peer.next())?.msg.length, 1020);
    peer.send(wire.encodeData(1, new Uint8Array(1021)));
    assert.ok((await client.closed) instanceof ProtocolError);
  });

  it("checks the options", async () => {
    await assert.rejects(connect(gw.url, { maxPacket: 2 << 20 }), /maxUnreadBytes must hold one largest message/);
    await assert.rejects(connect(gw.url, { maxUnsentBytes: 10 }), /maxUnsentBytes/);
  });
});

describe("codec", () => {
  it("JSON both ways; a message that does not decode closes its virtual connection", async () => {
    type Msg = { op: string; n: number };
    const { client, peer } = await pair<Msg>({ codec: jsonCodec<Msg>() });
    peer.cmd(Cmd.Connect, 1, 1);
    const v = await client.accept();
    v.send({ op: "move", n: 3 });
    assert.equal(text((await peer.next())?.msg as Uint8Array), '{"op":"move","n":3}');
    peer.data(1, '{"op":"hit","n":7}');
    assert.deepEqual(await v.receive(), { op: "hit", n: 7 });
    assert.throws(() => v.send(undefined as unknown as Msg), CodecError);
    peer.data(1, "{not json");
    await assert.rejects(v.receive(), CodecError);
    assert.deepEqual(await peer.nextCmd(), { type: Cmd.Close, connID: 1, remoteID: 0 });
    assert.ok((await v.closed) instanceof CodecError);
    client.close();
  });
});

describe("reconnect", () => {
  it("reconnects with backoff; old virtual connections close; dial waits for the new connection", async () => {
    const events: string[] = [];
    const { client, peer } = await pair({ reconnect: { initialDelay: 20, maxDelay: 100 } });
    client.onreconnecting = (i) => events.push(`reconnecting ${i.attempt} ${i.error.name}`);
    client.onreconnect = () => events.push("reconnect");
    peer.cmd(Cmd.Connect, 5, 1);
    const old = await client.accept();
    peer.sock.destroy();
    assert.ok((await old.closed) instanceof ConnectionError);
    assert.equal(client.state, "reconnecting");
    const dialing = client.dial(1, { timeout: 5000 });
    const peer2 = await gw.accept();
    assert.equal((await peer2.nextCmd()).type, Cmd.Dial);
    peer2.cmd(Cmd.Accept, 6, 1);
    assert.equal((await dialing).id, 6);
    assert.equal(client.state, "open");
    assert.deepEqual(events, ["reconnecting 1 ConnectionError", "reconnect"]);
    assert.equal(client.stats().reconnects, 1);
    client.close();
    assert.equal(await client.closed, undefined);
  });

  it("gives up after maxAttempts with the last error", async () => {
    const lone = await FakeGateway.start();
    const url = lone.url;
    const client = await connect(url, { pingInterval: 0, reconnect: { initialDelay: 5, maxDelay: 10, maxAttempts: 3 } });
    const attempts: number[] = [];
    client.onreconnecting = (i) => attempts.push(i.attempt);
    await lone.close(); // the connection goes, and nothing listens any more
    const err = await within(client.closed, 5000, "giving up");
    assert.ok(err instanceof ConnectionError, String(err));
    assert.match(err.message, /ECONNREFUSED/);
    assert.deepEqual(attempts, [1, 2, 3]);
  });
});

describe("connect", () => {
  it("rejects with ConnectionError when nothing listens, and on bad targets", async () => {
    const lone = await FakeGateway.start();
    const url = lone.url;
    await lone.close();
    await assert.rejects(connect(url), (err: unknown) => err instanceof ConnectionError && /ECONNREFUSED/.test(err.message));
    await assert.rejects(connect("http://x:1"), /unknown scheme/);
    await assert.rejects(connect("nonsense"), /not a URL/);
  });

  it("leaves no timer or socket behind once closed", async () => {
    const count = () => {
      const r = process.getActiveResourcesInfo();
      return { timers: r.filter((x) => x === "Timeout").length, sockets: r.filter((x) => x === "TCPSocketWrap").length };
    };
    const before = count();
    const { client, peer } = await pair({ pingInterval: 10, reconnect: true });
    // Timers of every kind: keep-alive, a dial and an accept with timeouts, a sendAsync waiting.
    const dialing = client.dial(1, { timeout: 60_000 });
    const accepting = client.accept({ timeout: 60_000 });
    assert.ok(count().timers > before.timers);
    client.close();
    await assert.rejects(dialing, ClosedError);
    await assert.rejects(accepting, ClosedError);
    await peer.closed;
    await waitFor(() => count().timers <= before.timers && count().sockets <= before.sockets, 5000, "resources released");
  });
});
