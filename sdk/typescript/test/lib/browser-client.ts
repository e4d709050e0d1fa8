// A client on the browser entry alone ("fastway-client", the platform's
// WebSocket), run by test/integration/browser-entry.test.ts in a Node
// started with --experimental-websocket, whose global WebSocket is the
// WHATWG one browsers have. It reports one JSON line and exits 0, or prints
// the error and exits 1.
//
//	node --experimental-websocket browser-client.js ws://127.0.0.1:PORT/

import { RefusedError, connect, jsonCodec } from "fastway-client";

async function main(url: string): Promise<Record<string, unknown>> {
  if (typeof (globalThis as { WebSocket?: unknown }).WebSocket !== "function") throw new Error("no global WebSocket");
  const report: Record<string, unknown> = {};
  const client = await connect(url, { timeout: 5000 });
  try {
    const v = await client.dial(1);
    // 200 messages of 0 to 20,000 bytes, each byte checked on the way back.
    let seed = 1;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const msgs = Array.from({ length: 200 }, (_, i) => {
      const m = new Uint8Array(i === 0 ? 0 : next() % 20001);
      for (let j = 0; j < m.length; j++) m[j] = next() >>> 24;
      return m;
    });
    // At most 256 KiB in flight: the gateway drops a client that leaves
    // more than -ClientSendQueueBytes (1 MiB) unread.
    let sent = 0;
    let inFlight = 0;
    const sendSome = () => {
      while (sent < msgs.length && inFlight < 256 * 1024) {
        const m = msgs[sent++] as Uint8Array;
        inFlight += m.length + 8;
        v.send(m);
      }
    };
    sendSome();
    let i = 0;
    let bytes = 0;
    for await (const m of v) {
      const want = msgs[i] as Uint8Array;
      if (m.length !== want.length || !m.every((b, j) => b === want[j])) throw new Error(`message ${i} differs`);
      bytes += m.length;
      inFlight -= m.length + 8;
      if (++i === msgs.length) break;
      sendSome();
    }
    report.echoed = i;
    report.bytes = bytes;
    // The server dials back.
    v.send(new TextEncoder().encode("!dialback"));
    const back = await client.accept({ timeout: 5000 });
    report.dialback = new TextDecoder().decode((await back.receive()) as Uint8Array) === `hello ${back.id}`;
    report.refused = await client.dial(99).then(
      () => false,
      (err: unknown) => err instanceof RefusedError && err.remoteID === 99,
    );
    v.close();
    back.close();
  } finally {
    client.close();
  }
  const j = await connect<{ hello: string }>(url, { codec: jsonCodec() });
  const v = await j.dial(1);
  v.send({ hello: "wörld" });
  report.json = (await v.receive())?.hello;
  j.close();
  report.closed = (await j.closed) === undefined;
  return report;
}

main(process.argv[2] as string).then(
  (r) => {
    console.log(JSON.stringify(r));
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
