// The browser entry: no Node.js module anywhere in what dist/index.js
// imports, and its WebSocket transport over a scripted WebSocket object.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, it } from "node:test";
import { ConnectionError, ProtocolError, type WebSocketLike, connect, webSocketURL, wire } from "fastway-client";
import { pkgDir, toHex } from "../lib/util.js";

/** Every module dist/index.js reaches, and every specifier they import. */
function importGraph(entry: string): { files: string[]; specifiers: string[] } {
  const files: string[] = [];
  const specifiers: string[] = [];
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop() as string;
    if (files.includes(f)) continue;
    files.push(f);
    const src = readFileSync(f, "utf8");
    for (const m of src.matchAll(/(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g)) {
      const s = (m[1] ?? m[2] ?? m[3]) as string;
      specifiers.push(s);
      if (s.startsWith(".")) todo.push(resolve(dirname(f), s));
    }
  }
  return { files, specifiers };
}

/** A WebSocket as a browser has it, driven by the test. */
class ScriptedWebSocket implements WebSocketLike {
  static last: ScriptedWebSocket | null = null;
  binaryType = "blob";
  bufferedAmount = 0;
  protocol = "";
  sent: Uint8Array[] = [];
  closedWith: number | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string; wasClean: boolean }) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    ScriptedWebSocket.last = this;
  }
  send(data: Uint8Array): void {
    this.sent.push(data.slice());
  }
  close(code?: number): void {
    this.closedWith = code ?? 1005;
  }
}

describe("browser entry", () => {
  it("imports no Node.js module", () => {
    const { files, specifiers } = importGraph(resolve(pkgDir, "dist/index.js"));
    assert.ok(files.length >= 8, `reached ${files.length} modules`);
    const bad = specifiers.filter((s) => !s.startsWith("."));
    assert.deepEqual(bad, [], "only relative imports");
    assert.ok(!files.some((f) => f.includes("/node/") || f.endsWith("/node.js")));
  });

  it("builds ws:// and wss:// URLs", () => {
    assert.equal(webSocketURL({ host: "gw.example", port: 8080 }), "ws://gw.example:8080/");
    assert.equal(webSocketURL({ host: "::1", port: 443, tls: true, path: "/fw" }), "wss://[::1]:443/fw");
    assert.throws(() => webSocketURL("tcp://x:1"), /ws:\/\/ or wss:\/\//);
  });

  it("speaks the stream in binary messages over the platform's WebSocket", async () => {
    const connecting = connect("ws://gw.example:8080/", { WebSocket: ScriptedWebSocket, pingInterval: 0 });
    const ws = ScriptedWebSocket.last as ScriptedWebSocket;
    assert.deepEqual(ws.protocols, ["fastway"]);
    assert.equal(ws.binaryType, "arraybuffer");
    ws.protocol = "fastway";
    ws.onopen?.({});
    const client = await connecting;
    const dialing = client.dial(1);
    await Promise.resolve();
    assert.equal(toHex(ws.sent[0] as Uint8Array), "090000000000000000" + "01000000");
    const msgs = [wire.encodeCommand({ type: wire.Cmd.Accept, connID: 9, remoteID: 1 }), wire.encodeData(9, new Uint8Array([1, 2]))];
    const both = new Uint8Array([...(msgs[0] as Uint8Array), ...(msgs[1] as Uint8Array)]);
    ws.onmessage?.({ data: both.buffer });
    const v = await dialing;
    assert.equal(toHex((await v.receive()) as Uint8Array), "0102");
    ws.onmessage?.({ data: "text" });
    assert.equal(ws.closedWith, 1003);
    const err = await client.closed;
    assert.ok(err instanceof ProtocolError && /text WebSocket message/.test(err.message), String(err));
  });

  it("reports a WebSocket that closes before or after it opens", async () => {
    const failing = connect({ host: "gw.example", port: 1 }, { WebSocket: ScriptedWebSocket });
    ScriptedWebSocket.last?.onclose?.({ code: 1006, reason: "", wasClean: false });
    await assert.rejects(failing, (err: unknown) => err instanceof ConnectionError && /code 1006/.test(err.message));
    const connecting = connect("wss://gw.example/", { WebSocket: ScriptedWebSocket, pingInterval: 0 });
    const ws = ScriptedWebSocket.last as ScriptedWebSocket;
    ws.onopen?.({});
    const client = await connecting;
    ws.onclose?.({ code: 1006, reason: "", wasClean: false });
    assert.ok((await client.closed) instanceof ConnectionError);
    if (!("WebSocket" in globalThis)) {
      // Node 20 has none (browsers and Node 22 do).
      await assert.rejects(connect("ws://x/", {}), /no global WebSocket/);
    }
  });
});
