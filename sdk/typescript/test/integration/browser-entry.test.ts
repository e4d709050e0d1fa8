// The browser entry (dist/index.js, the platform's WebSocket) against the
// real gateway: a client in a Node whose global WebSocket is the WHATWG one
// (--experimental-websocket), as in a browser. Real browsers run the same
// entry in the Playwright tests.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Gateway } from "../lib/gateway.js";

let gw: Gateway;
before(async () => {
  gw = await Gateway.start(["-ClientWSAddr=127.0.0.1:0"]);
});
after(() => gw?.stop());

describe("browser entry over the platform's WebSocket", () => {
  it("echoes, is dialed back, is refused, carries JSON", async () => {
    const script = fileURLToPath(new URL("../lib/browser-client.js", import.meta.url));
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--experimental-websocket", "--no-warnings", "--unhandled-rejections=strict", script, `ws://${gw.wsAddr}/`], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const r = JSON.parse(out.trim()) as Record<string, unknown>;
    assert.equal(r.echoed, 200);
    assert.ok((r.bytes as number) > 1_000_000);
    assert.deepEqual({ ...r, bytes: 0 }, { echoed: 200, bytes: 0, dialback: true, refused: true, json: "wörld", closed: true });
  });
});
