// Shared helpers of the browser tests: build the Go binaries, run the real
// gateway and a backend as child processes (reading their slog lines), make a
// throwaway TLS certificate, serve pages, and launch Debian's Chromium
// headless through playwright-core. Everything here is bounded in time and
// cleaned up by the test that started it.
import { spawn, execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export { startStaticServer } from '../../../scripts/static-server.mjs';

const run = promisify(execFile);

/** The repository's root. */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The built SDK bundle's directory (tsc's output). */
export const sdkDist = join(repo, 'sdk/typescript/dist');

const cleanups = new WeakMap();

/**
 * Runs fn when test t ends, after the cleanups registered later have run
 * (last in, first out: a process stops before its directory is removed).
 */
export function cleanup(t, fn) {
  let fns = cleanups.get(t);
  if (!fns) {
    fns = [];
    cleanups.set(t, fns);
    t.after(async () => {
      for (const f of fns.reverse()) await f();
    });
  }
  fns.push(fn);
}

/** Rejects with "what: timed out after ms" unless p settles first. */
export function within(ms, what, p) {
  let timer;
  const t = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** A fresh temporary directory, removed when t ends. */
export async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), 'fastway-browser-'));
  cleanup(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Builds the Go commands pkgs (e.g. "./cmd/fastway") into dir and returns
 * their paths by package. FASTWAY_BROWSER_BIN, a directory holding them
 * already built (scripts/test-browser.sh builds them once), skips the build.
 */
export async function goBuild(dir, pkgs) {
  const out = {};
  const prebuilt = process.env.FASTWAY_BROWSER_BIN;
  for (const pkg of pkgs) {
    const name = pkg.split('/').filter(Boolean).at(-1);
    if (prebuilt && existsSync(join(prebuilt, name))) {
      out[pkg] = join(prebuilt, name);
      continue;
    }
    out[pkg] = join(dir, name);
    await within(180_000, `go build ${pkg}`, run('go', ['build', '-o', out[pkg], pkg], { cwd: repo }));
  }
  return out;
}

/**
 * A child process whose stderr and stdout lines are kept, so a test can wait
 * for a log line. stop() sends SIGTERM, then SIGKILL after 5 s, and resolves
 * once it has exited.
 */
export class Proc {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.detached = Boolean(opts.detached);
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.exited = new Promise((ok) => this.child.once('exit', (code, sig) => ok({ code, sig })));
    for (const s of [this.child.stdout, this.child.stderr]) {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.line(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    this.exited.then(({ code, sig }) => {
      for (const w of this.waiters.splice(0)) {
        w.fail(new Error(`${name} exited (code ${code}, signal ${sig}) before "${w.re}":\n${this.log()}`));
      }
    });
  }

  line(l) {
    this.lines.push(l);
    if (process.env.FASTWAY_BROWSER_VERBOSE) console.error(`[${this.name}] ${l}`);
    this.waiters = this.waiters.filter((w) => {
      const m = l.match(w.re);
      if (m) w.ok(m);
      return !m;
    });
  }

  /** The last lines of its output, for failure messages. */
  log(n = 40) {
    return this.lines.slice(-n).join('\n');
  }

  /** Resolves to the match of the first line (past or future) matching re. */
  waitFor(re, ms = 10_000) {
    for (const l of this.lines) {
      const m = l.match(re);
      if (m) return Promise.resolve(m);
    }
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.reject(new Error(`${this.name} has exited; no line "${re}":\n${this.log()}`));
    }
    const p = new Promise((ok, fail) => this.waiters.push({ re, ok, fail }));
    return within(ms, `${this.name}: waiting for "${re}"\n${this.log()}\n`, p);
  }

  /**
   * Ends it: SIGTERM, then SIGKILL after 5 s. A process started with
   * { detached: true } leads a process group of its own (a script and what
   * it started); the SIGKILL goes to that whole group.
   */
  async stop() {
    const pid = this.child.pid;
    const group = this.detached;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(t);
    }
    if (group) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    }
    return this.exited;
  }
}

/**
 * Starts the real gateway binary with a WebSocket client listener on a free
 * loopback port (wss:// when tls = { cert, key } is given) and waits until it
 * has started. Resolves to { proc, wsURL, serverAddr, password }.
 */
export async function startGateway(t, { bin, dir, tls, extra = [] }) {
  const password = createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24);
  const args = [
    '-ClientAddr=127.0.0.1:0',
    '-ServerAddr=127.0.0.1:0',
    '-ClientWSAddr=127.0.0.1:0',
    `-PidFile=${join(dir, 'fastway.pid')}`,
    `-CmdFile=${join(dir, 'fastway.cmd')}`,
    ...extra,
  ];
  if (tls) args.push(`-ClientWSTLSCert=${tls.cert}`, `-ClientWSTLSKey=${tls.key}`);
  const proc = new Proc('fastway', bin, args, {
    cwd: dir,
    env: { ...process.env, FASTWAY_AUTH_PASSWORD: password },
  });
  cleanup(t, () => proc.stop());
  const ws = await proc.waitFor(/msg=listening side=ws addr=(\S+)/);
  const srv = await proc.waitFor(/msg=listening side=server addr=(\S+)/);
  await proc.waitFor(/msg=started/);
  const scheme = tls ? 'wss' : 'ws';
  return { proc, wsURL: `${scheme}://${ws[1]}/`, serverAddr: srv[1], password };
}

/**
 * Makes a throwaway self-signed ECDSA certificate for 127.0.0.1 in dir with
 * openssl. Resolves to { cert, key, spki }: the files' paths and the base64
 * SHA-256 of the certificate's public key, for Chromium's
 * --ignore-certificate-errors-spki-list.
 */
export async function selfSignedCert(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await within(
    20_000,
    'openssl req',
    run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ]),
  );
  const der = new X509Certificate(await readFile(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return { cert, key, spki: createHash('sha256').update(der).digest('base64') };
}

/** The Chromium binary: FASTWAY_CHROMIUM, or Debian's /usr/bin/chromium. */
export function chromiumPath() {
  const p = process.env.FASTWAY_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(p)) throw new Error(`no Chromium at ${p}: run scripts/install-chromium.sh`);
  return p;
}

/**
 * Launches Chromium headless (never a downloaded build: executablePath).
 * spki, a base64 SPKI hash, makes it trust that one certificate's key and no
 * other.
 */
export async function launch(t, { spki } = {}) {
  const args = [];
  if (spki) args.push(`--ignore-certificate-errors-spki-list=${spki}`);
  const browser = await within(30_000, 'launching Chromium', chromium.launch({ executablePath: chromiumPath(), headless: true, args }));
  cleanup(t, () => browser.close());
  return browser;
}

/**
 * Opens url in a new page of browser; the page's console errors and uncaught
 * exceptions are collected in page.problems so a test can show them.
 */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => r.status() >= 400 && page.problems.push(`HTTP ${r.status()}: ${r.url()}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`console: ${m.text()}`);
    if (process.env.FASTWAY_BROWSER_VERBOSE) console.error(`[page] ${m.text()}`);
  });
  await within(15_000, `loading ${url}`, page.goto(url));
  return page;
}
