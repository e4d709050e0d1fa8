// The page of the SDK's real-browser test (tests/browser/test/sdk.test.mjs):
// it loads the built SDK bundle (sdk/typescript/dist, served at /sdk/) and
// offers the test a few functions on window that exercise it against the
// real gateway. Everything is checked here, in the browser; the functions
// resolve to figures or reject with what went wrong.
import { connect, RefusedError } from '/sdk/index.js';

// xorshift32: message sizes reproducible from the seed a failure prints.
function sizes(seed, count, max) {
  let x = seed >>> 0 || 1;
  const out = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push(x % (max + 1));
  }
  // Both ends of the range, whatever the seed.
  if (count > 0) out[0] = 0;
  if (count > 1) out[1] = max;
  return out;
}

function randomBytes(n) {
  const b = new Uint8Array(n);
  // getRandomValues fills at most 65,536 bytes a call.
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

async function sha256(b) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', b));
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Connects to the gateway at url, dials server, and round-trips count
 * messages of random size 0..maxSize through it, with at most windowBytes
 * sent and not yet echoed (the gateway drops a client whose send queue
 * outgrows -ClientSendQueueBytes, 1 MiB by default, so a client that
 * pipelines keeps below it). Each echo must be the message sent, byte for
 * byte and by SHA-256, in order. Resolves to the figures.
 */
window.echoRoundTrip = async ({ url, server, count, maxSize, windowBytes, seed, timeout = 5000 }) => {
  const t0 = performance.now();
  const client = await connect(url, { timeout });
  const tConnected = performance.now();
  try {
    const vc = await client.dial(server);
    const tDialed = performance.now();
    const plan = sizes(seed, count, maxSize);
    const pending = []; // [message, its SHA-256] sent and not yet echoed, oldest first
    let next = 0;
    let bytesSent = 0;
    let bytesReceived = 0;
    let inflightBytes = 0;
    let maxInflight = 0;
    let maxInflightBytes = 0;
    const pump = async () => {
      while (next < count && (pending.length === 0 || inflightBytes + plan[next] <= windowBytes)) {
        const msg = randomBytes(plan[next]);
        const entry = [msg, sha256(msg)];
        pending.push(entry);
        vc.send(msg);
        bytesSent += msg.length;
        inflightBytes += msg.length;
        next++;
        maxInflight = Math.max(maxInflight, pending.length);
        maxInflightBytes = Math.max(maxInflightBytes, inflightBytes);
      }
    };
    await pump();
    let got = 0;
    const it = vc[Symbol.asyncIterator]();
    while (got < count) {
      const r = await it.next();
      if (r.done) throw new Error(`the virtual connection ended after ${got} of ${count} echoes`);
      const echo = r.value;
      const [want, wantHash] = pending.shift();
      if (!sameBytes(echo, want)) {
        throw new Error(`echo ${got} (seed ${seed}): ${echo.length} bytes, want the ${want.length} sent`);
      }
      const a = hex(await sha256(echo));
      const b = hex(await wantHash);
      if (a !== b) throw new Error(`echo ${got}: SHA-256 ${a}, want ${b}`);
      bytesReceived += echo.length;
      inflightBytes -= echo.length;
      got++;
      await pump();
    }
    const tDone = performance.now();
    await vc.close();
    return {
      count: got,
      bytesSent,
      bytesReceived,
      minSize: Math.min(...plan),
      maxSize: Math.max(...plan),
      maxInflight,
      maxInflightBytes,
      connectMs: tConnected - t0,
      dialMs: tDialed - tConnected,
      roundTripMs: tDone - tDialed,
    };
  } finally {
    client.close();
  }
};

const text = new TextEncoder();
const untext = new TextDecoder();

async function next(vc, what) {
  const r = await vc[Symbol.asyncIterator]().next();
  if (r.done) throw new Error(`${what}: the virtual connection ended`);
  return r.value;
}

/**
 * Has the server dial this client: "!dialback" on a virtual connection to
 * the echo backend makes it open one to the client's gateway-assigned ID,
 * send "hello <ConnID>" on it and answer "dialed <ConnID>". The page accepts
 * it, checks both, exchanges a random message on it (the backend echoes
 * there too), and closes it. Resolves to what it saw.
 */
window.dialedByServer = async ({ url, server, size, timeout = 5000 }) => {
  const client = await connect(url, { timeout });
  try {
    const vc = await client.dial(server);
    const accepted = client.accept({ timeout });
    vc.send(text.encode('!dialback'));
    const dv = await accepted;
    const answer = untext.decode(await next(vc, 'the answer to !dialback'));
    const hello = untext.decode(await next(dv, 'the hello on the accepted connection'));
    if (answer !== `dialed ${dv.id}`) throw new Error(`answer "${answer}", want "dialed ${dv.id}"`);
    if (hello !== `hello ${dv.id}`) throw new Error(`hello "${hello}", want "hello ${dv.id}"`);
    if (dv.remoteID !== server) throw new Error(`accepted from ${dv.remoteID}, want server ${server}`);
    if (dv.id === vc.id) throw new Error(`the accepted connection has the dialed one's ConnID ${vc.id}`);
    const msg = randomBytes(size);
    dv.send(msg);
    const echo = await next(dv, 'the echo on the accepted connection');
    if (!sameBytes(echo, msg)) throw new Error(`echo of ${echo.length} bytes, want the ${msg.length} sent`);
    dv.close();
    const closedWith = await dv.closed;
    if (closedWith) throw new Error(`the accepted connection closed with ${closedWith}`);
    // The dialed one is still there.
    vc.send(msg);
    if (!sameBytes(await next(vc, 'the echo after the close'), msg)) throw new Error('echo after the close differs');
    return { dialedID: vc.id, acceptedID: dv.id, remoteID: dv.remoteID, answer, hello, echoed: echo.length };
  } finally {
    client.close();
  }
};

/** Dials a server ID no server has: the SDK must reject with RefusedError. */
window.dialRefused = async ({ url, server, timeout = 5000 }) => {
  const client = await connect(url, { timeout });
  try {
    await client.dial(server);
    throw new Error(`dial(${server}) succeeded; want RefusedError`);
  } catch (err) {
    if (!(err instanceof RefusedError)) throw err;
    return { name: err.name, message: err.message };
  } finally {
    client.close();
  }
};

/** Tries to connect; resolves to the error's name and message, or null if it connected. */
window.connectError = async ({ url, timeout = 5000 }) => {
  try {
    const client = await connect(url, { timeout });
    client.close();
    return null;
  } catch (err) {
    return { name: err?.name ?? 'Error', message: err?.message ?? String(err) };
  }
};

window.sdkLoaded = true;
