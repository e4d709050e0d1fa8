// TLS to the real gateway: tls:// to the client port (-ClientTLSCert) and
// wss:// to the WebSocket port (which takes the client port's certificate
// when it has none of its own), with a certificate made for the test.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConnectionError, connect } from "fastway-client/node";
import { Gateway } from "../lib/gateway.js";
import { within } from "../lib/util.js";

let gw: Gateway;
let dir: string;
let ca: Buffer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "fastway-ts-tls-"));
  const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  // A self-signed P-256 certificate for 127.0.0.1, valid for a day.
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=fastway test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", key, "-out", cert,
  ], { stdio: "pipe" });
  ca = readFileSync(cert);
  gw = await Gateway.start([`-ClientTLSCert=${cert}`, `-ClientTLSKey=${key}`, "-ClientWSAddr=127.0.0.1:0"]);
});
after(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("TLS", () => {
  for (const scheme of ["tls", "wss"]) {
    it(`${scheme}:// echoes with the gateway's certificate trusted, and refuses it otherwise`, async () => {
      const url = scheme === "tls" ? `tls://${gw.clientAddr}` : `wss://${gw.wsAddr}/`;
      const client = await connect(url, { tls: { ca } });
      try {
        const v = await client.dial(1);
        const msg = new Uint8Array(100_000).map((_, i) => i);
        v.send(msg);
        const got = (await within(v.receive(), 10_000, "echo")) as Uint8Array;
        assert.ok(Buffer.from(got).equals(Buffer.from(msg)));
      } finally {
        client.close();
      }
      await assert.rejects(connect(url), (err: unknown) => err instanceof ConnectionError && /self[- ]signed/i.test(err.message));
    });
  }
});
