// The SDK against the real gateway (go build ./cmd/fastway) and the Go echo
// backend (examples/echo) registered as server 1, over each transport the
// gateway serves clients on.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BufferLimitError,
  type Client,
  ConnectionError,
  type NodeConnectOptions,
  RefusedError,
  type VConn,
  connect as connectNode,
  jsonCodec,
} from "fastway-client/node";
import { CutProxy, Gateway } from "../lib/gateway.js";
import { Rand, within } from "../lib/util.js";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

let gw: Gateway;
before(async () => {
  gw = await Gateway.start(["-ClientMaxConn=8", "-ClientIdleTimeout=1s", "-ClientWSAddr=127.0.0.1:0", "-ClientWSPath=/fastway", "-ClientWSOrigins=https://game.example"]);
});
after(() => gw?.stop());

interface Transport {
  name: string;
  url: (g: Gateway) => string;
  /** the same URL through a proxy at addr */
  via: (addr: string) => string;
}
const transports: Transport[] = [
  { name: "tcp", url: (g) => g.tcpURL, via: (a) => `tcp://${a}` },
  { name: "ws", url: (g) => `ws://${g.wsAddr}/fastway`, via: (a) => `ws://${a}/fastway` },
];

/** connect with the Origin the gateway allows (-ClientWSOrigins), which a browser would send. */
function connect<T = Uint8Array>(url: string, options: NodeConnectOptions<T> = {}): Promise<Client<T>> {
  return connectNode<T>(url, { origin: "https://game.example", ...options });
}

/**
 * Sends count random messages (0 to max bytes) on v while it reads them back,
 * checking each byte. At most window bytes are in flight: the gateway drops a
 * client that leaves more than -ClientSendQueueBytes (1 MiB) unread.
 */
async function echoStream(v: VConn, seed: number, count: number, max: number, window = 512 * 1024): Promise<number> {
  const r = new Rand(seed);
  const msgs = Array.from({ length: count }, (_, i) => r.bytes(i === 1 ? max : i === 0 ? 0 : r.int(max + 1)));
  let sent = 0;
  let inFlight = 0;
  const sendSome = () => {
    while (sent < count && (inFlight === 0 || inFlight + (msgs[sent] as Uint8Array).length <= window)) {
      const m = msgs[sent++] as Uint8Array;
      inFlight += m.length + 8;
      v.send(m);
    }
  };
  sendSome();
  let i = 0;
  let total = 0;
  for await (const m of v) {
    const want = msgs[i] as Uint8Array;
    assert.equal(m.length, want.length, `message ${i}: length`);
    assert.ok(Buffer.from(m).equals(want), `message ${i}: bytes`);
    total += m.length;
    inFlight -= m.length + 8;
    if (++i === count) break;
    sendSome();
  }
  assert.equal(i, count, "every message came back");
  return total;
}

for (const tr of transports) {
  describe(`over ${tr.name}`, () => {
    let client: Client;
    before(async () => {
      client = await connect(tr.url(gw), { timeout: 5000 });
    });
    after(() => client?.close());

    it("dials the echo server and gets every message back byte for byte, on two virtual connections at once", async () => {
      const [a, b] = await Promise.all([client.dial(1), client.dial(1)]);
      assert.notEqual(a.id, b.id);
      const started = performance.now();
      const totals = await within(Promise.all([echoStream(a, 1, 300, 64 * 1024), echoStream(b, 2, 300, 64 * 1024)]), 60_000, "echo");
      const ms = performance.now() - started;
      const mb = (2 * (totals[0] + totals[1])) / 1e6;
      console.log(`${tr.name}: 600 messages of 0-64 KiB echoed, ${mb.toFixed(1)} MB both ways in ${ms.toFixed(0)} ms`);
      a.close();
      b.close();
    });

    it("echoes the largest message the gateway takes (MaxPacket 512 KiB)", async () => {
      const v = await client.dial(1);
      const big = new Rand(5).bytes(512 * 1024 - 4);
      v.send(big);
      const got = (await within(v.receive(), 10_000, "echo")) as Uint8Array;
      assert.ok(Buffer.from(got).equals(big));
      v.close();
    });

    it("is refused a server that is not there, and past -ClientMaxConn", async () => {
      await assert.rejects(client.dial(99), (err: unknown) => err instanceof RefusedError && err.remoteID === 99);
      const c = await connect(tr.url(gw));
      try {
        const open = await Promise.all(Array.from({ length: 8 }, () => c.dial(1)));
        await assert.rejects(c.dial(1), RefusedError);
        (open[0] as VConn).close();
        await (open[0] as VConn).closed;
        // The gateway frees the slot once it has our Close: a dial after it may still race it.
        await within(
          (async () => {
            for (;;) {
              try {
                return await c.dial(1);
              } catch (err) {
                if (!(err instanceof RefusedError)) throw err;
              }
            }
          })(),
          5000,
          "a slot after Close",
        );
      } finally {
        c.close();
      }
    });

    it("accepts the virtual connection the server dials back, and both echo", async () => {
      const v = await client.dial(1);
      v.send(bytes("!dialback"));
      const back = await within(client.accept(), 5000, "dial back");
      assert.equal(back.remoteID, 1);
      assert.equal(text((await back.receive()) as Uint8Array), `hello ${back.id}`);
      assert.equal(text((await v.receive()) as Uint8Array), `dialed ${back.id}`);
      back.send(bytes("on the way back"));
      assert.equal(text((await back.receive()) as Uint8Array), "on the way back");
      v.send(bytes("and here"));
      assert.equal(text((await v.receive()) as Uint8Array), "and here");
      v.close();
      back.close();
    });

    it("sees a virtual connection the server closes end, after what it sent", async () => {
      const v = await client.dial(1);
      v.send(bytes("one"));
      v.send(bytes("!close"));
      const got: string[] = [];
      for await (const m of v) got.push(text(m));
      assert.deepEqual(got, ["one"]);
      assert.equal(await v.closed, undefined);
      assert.equal(client.state, "open");
    });

    it("carries JSON through the codec", async () => {
      const c = await connect<{ n: number; s: string }>(tr.url(gw), { codec: jsonCodec() });
      try {
        const v = await c.dial(1);
        v.send({ n: 1, s: "héllo" });
        assert.deepEqual(await v.receive(), { n: 1, s: "héllo" });
      } finally {
        c.close();
      }
    });

    it("closes a virtual connection whose unread bytes pass maxUnreadBytes; its sibling and the client carry on", async () => {
      const c = await connect(tr.url(gw), { maxUnreadBytes: 512 * 1024 });
      try {
        const [slow, fast] = await Promise.all([c.dial(1), c.dial(1)]);
        for (let i = 0; i < 16; i++) slow.send(new Uint8Array(40 * 1024));
        const err = await within(slow.closed, 5000, "overflow");
        assert.ok(err instanceof BufferLimitError && err.bound === "vconnUnread", String(err));
        fast.send(bytes("still"));
        assert.equal(text((await fast.receive()) as Uint8Array), "still");
        assert.equal(c.state, "open");
      } finally {
        c.close();
      }
    });

    it("keeps an idle connection past -ClientIdleTimeout (1 s) with Pings; without them the gateway closes it", async () => {
      const [pinging, silent] = await Promise.all([connect(tr.url(gw), { pingInterval: 250 }), connect(tr.url(gw), { pingInterval: 0 })]);
      try {
        const err = await within(silent.closed, 5000, "the idle timeout");
        assert.ok(err instanceof ConnectionError, String(err));
        // The silent one went after 1 s; the pinging one, as idle, outlives it by another 1.5 s.
        const outlived = await Promise.race([pinging.closed, new Promise<"open">((r) => setTimeout(() => r("open"), 1500))]);
        assert.equal(outlived, "open");
        const v = await pinging.dial(1);
        v.send(bytes("awake"));
        assert.equal(text((await v.receive()) as Uint8Array), "awake");
      } finally {
        pinging.close();
        silent.close();
      }
    });

    it("reconnects after the connection is cut; the application dials again", async () => {
      const proxy = await CutProxy.start(tr.url(gw).replace(/^[a-z]+:\/\/([^/]+).*$/, "$1"));
      const c = await connect(tr.via(proxy.addr), { reconnect: { initialDelay: 20, maxDelay: 200 } });
      try {
        const v = await c.dial(1);
        let redialed: Promise<VConn> | undefined;
        c.onreconnect = () => {
          redialed = c.dial(1);
        };
        const reconnected = new Promise<void>((resolve) => {
          const prev = c.onreconnect;
          c.onreconnect = () => {
            prev?.();
            resolve();
          };
        });
        proxy.cut();
        assert.ok((await v.closed) instanceof ConnectionError);
        await within(reconnected, 5000, "reconnect");
        const w = await (redialed as Promise<VConn>);
        w.send(bytes("again"));
        assert.equal(text((await w.receive()) as Uint8Array), "again");
        assert.equal(c.stats().reconnects, 1);
        assert.equal(proxy.connections, 2);
      } finally {
        c.close();
        await proxy.close();
      }
    });
  });
}
