// The TypeScript SDK in a real browser (issue 16): Debian's Chromium,
// headless, loads a page that imports the built bundle
// (sdk/typescript/dist/index.js) and talks to the real gateway binary over
// ws:// and wss://, through it to the Go echo backend
// (examples/echo), which also dials the page's client back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cleanup, goBuild, launch, openPage, Proc, repo, sdkDist, selfSignedCert, startGateway, startStaticServer, tempDir, within,
} from '../lib/harness.mjs';

const ECHO_ID = 7;
const COUNT = 1000;
const MAX_SIZE = 64 * 1024;
const WINDOW = 512 * 1024; // half the gateway's default -ClientSendQueueBytes

async function startEcho(t, bin, gw) {
  const echo = new Proc('echo', bin, ['-gateway', gw.serverAddr, '-id', String(ECHO_ID)], {
    env: { ...process.env, FASTWAY_AUTH_PASSWORD: gw.password },
  });
  cleanup(t, () => echo.stop());
  await echo.waitFor(/^ready$/);
  return echo;
}

async function pageOf(t, browser, web) {
  const page = await openPage(browser, `${web.url}sdk-test/`);
  cleanup(t, () => page.close());
  await within(10_000, 'the SDK bundle loading in the page', page.waitForFunction(() => window.sdkLoaded === true))
    .catch((err) => {
      throw new Error(`${err.message}\n${page.problems.join('\n')}`);
    });
  return page;
}

function report(t, what, r) {
  const mib = (r.bytesSent + r.bytesReceived) / (1 << 20);
  const line = `${what}: ${r.count} echoes, ${r.bytesSent} bytes each way (sizes ${r.minSize}..${r.maxSize}, ` +
    `at most ${r.maxInflight} messages, ${r.maxInflightBytes} bytes unanswered) in ${r.roundTripMs.toFixed(0)} ms ` +
    `(${(mib / (r.roundTripMs / 1000)).toFixed(1)} MiB/s both ways); connect ${r.connectMs.toFixed(0)} ms, dial ${r.dialMs.toFixed(0)} ms`;
  t.diagnostic(line);
}

for (const scheme of ['ws', 'wss']) {
  test(`SDK in Chromium over ${scheme}://`, { timeout: 120_000 }, async (t) => {
    const dir = await tempDir(t);
    const bins = await goBuild(dir, ['./cmd/fastway', './examples/echo']);
    const cert = scheme === 'wss' ? await selfSignedCert(dir) : null;
    const web = await startStaticServer({
      mounts: { '/': `${repo}/tests/browser/pages`, '/sdk/': sdkDist },
    });
    cleanup(t, () => web.close());
    const origin = web.url.replace(/\/$/, '');
    // Only the test page's origin may upgrade: a page from anywhere else is
    // turned away (checked below from http://localhost, another origin).
    const gw = await startGateway(t, {
      bin: bins['./cmd/fastway'], dir, tls: cert, extra: [`-ClientWSOrigins=${origin}`],
    });
    await startEcho(t, bins['./examples/echo'], gw);

    // Trusts the throwaway certificate's key, and nothing else.
    const browser = await launch(t, { spki: cert?.spki });
    const page = await pageOf(t, browser, web);
    const problems = () => page.problems.join('\n');

    const seed = (Math.random() * 2 ** 32) >>> 0;
    const r = await within(60_000, `${COUNT} echoes`, page.evaluate(
      (a) => window.echoRoundTrip(a),
      { url: gw.wsURL, server: ECHO_ID, count: COUNT, maxSize: MAX_SIZE, windowBytes: WINDOW, seed },
    ));
    assert.equal(r.count, COUNT, problems());
    assert.equal(r.bytesReceived, r.bytesSent);
    assert.equal(r.minSize, 0);
    assert.equal(r.maxSize, MAX_SIZE);
    report(t, `${scheme}:// seed ${seed}`, r);

    // The server opens a virtual connection to the page's client.
    const d = await within(15_000, 'being dialed by the server', page.evaluate(
      (a) => window.dialedByServer(a), { url: gw.wsURL, server: ECHO_ID, size: 4096 },
    ));
    assert.equal(d.remoteID, ECHO_ID);
    assert.equal(d.hello, `hello ${d.acceptedID}`);
    t.diagnostic(`dialed by the server: accepted ConnID ${d.acceptedID} from server ${d.remoteID}, "${d.hello}", ${d.echoed} bytes echoed on it`);

    const refused = await within(10_000, 'a dial to no server', page.evaluate(
      (a) => window.dialRefused(a), { url: gw.wsURL, server: ECHO_ID + 1 },
    ));
    assert.equal(refused.name, 'RefusedError');

    // The same page from another origin: the gateway refuses the upgrade.
    const other = await openPage(browser, `${web.url.replace('127.0.0.1', 'localhost')}sdk-test/`);
    cleanup(t, () => other.close());
    await within(10_000, 'the SDK loading from localhost', other.waitForFunction(() => window.sdkLoaded === true));
    const denied = await within(15_000, 'a connect from a foreign origin', other.evaluate(
      (a) => window.connectError(a), { url: gw.wsURL, timeout: 3000 },
    ));
    assert.ok(denied, 'a page of another origin connected; -ClientWSOrigins should have refused it');
    await gw.proc.waitFor(/handshake failed.* reason=origin/);
    t.diagnostic(`from http://localhost: ${denied.name}: ${denied.message}`);

    if (cert) {
      // Without the pin Chromium does not trust the certificate: wss is real TLS.
      const plain = await launch(t);
      const p2 = await pageOf(t, plain, web);
      const err = await within(15_000, 'a connect to an untrusted certificate', p2.evaluate(
        (a) => window.connectError(a), { url: gw.wsURL, timeout: 3000 },
      ));
      assert.ok(err, 'Chromium connected over wss to a certificate it does not trust');
      await gw.proc.waitFor(/handshake failed.* reason=tls/);
      t.diagnostic(`without the pin: ${err.name}: ${err.message}`);
    }
    assert.equal(page.problems.length, 0, problems());
  });
}
