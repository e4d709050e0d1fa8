// The real gateway binary and the Go echo backend (examples/echo), started
// on loopback ports for the integration tests. scripts/test-sdk.sh builds
// both and passes their paths in FASTWAY_BIN and FASTWAY_ECHO.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const password = "secret";

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/test-sdk.sh, which builds the gateway and the echo backend`);
  return v;
}

/** A child process whose output lines are kept, so that a test can wait for one. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private waiters: { match: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(file: string, args: string[], cwd: string, env: Record<string, string> = {}) {
    this.child = spawn(file, args, { cwd, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    for (const s of [this.child.stdout, this.child.stderr]) {
      let rest = "";
      s?.setEncoding("utf8");
      s?.on("data", (d: string) => {
        const parts = (rest + d).split("\n");
        rest = parts.pop() ?? "";
        for (const l of parts) this.line(l);
      });
    }
  }

  private line(l: string): void {
    this.lines.push(l);
    if (process.env.FASTWAY_TEST_VERBOSE) console.error(l);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(l)) return true;
      w.resolve(l);
      return false;
    });
  }

  /** The first line (from mark on) that has every part, waiting up to ms. */
  waitLine(parts: string[], ms = 10_000, mark = 0): Promise<string> {
    const match = (l: string) => parts.every((p) => l.includes(p));
    const found = this.lines.slice(mark).find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line with ${parts.join(" ")} within ${ms} ms:\n${this.lines.slice(-20).join("\n")}`)), ms);
      this.waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      this.child.once("exit", () => reject(new Error(`exited before a line with ${parts.join(" ")}:\n${this.lines.slice(-20).join("\n")}`)));
    });
  }

  /** SIGTERM, then SIGKILL if it is still there after ms. */
  async stop(ms = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The addr= of a log line. */
function addrOf(line: string): string {
  const m = / addr=(\S+)/.exec(line);
  if (!m) throw new Error(`no addr in ${line}`);
  return m[1] as string;
}

/** A running gateway with the echo backend registered as server 1. */
export class Gateway {
  readonly proc: Proc;
  echo!: Proc;
  readonly dir: string;
  clientAddr = "";
  serverAddr = "";
  wsAddr = "";

  private constructor(flags: string[]) {
    this.dir = mkdtempSync(join(tmpdir(), "fastway-ts-"));
    this.proc = new Proc(
      need("FASTWAY_BIN"),
      ["-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", `-ServerAuthPassword=${password}`, "-PidFile=", "-ShutdownTimeout=1s", ...flags],
      this.dir,
    );
  }

  /** Starts the gateway with flags (a -ClientWSAddr among them turns on its WebSocket listener), then the echo backend. */
  static async start(flags: string[] = []): Promise<Gateway> {
    const g = new Gateway(flags);
    try {
      g.clientAddr = addrOf(await g.proc.waitLine(["msg=listening", "side=client"]));
      g.serverAddr = addrOf(await g.proc.waitLine(["msg=listening", "side=server"]));
      if (flags.some((f) => f.startsWith("-ClientWSAddr="))) {
        g.wsAddr = addrOf(await g.proc.waitLine(["msg=listening", "side=ws"]));
      }
      const mark = g.proc.lines.length;
      g.echo = new Proc(need("FASTWAY_ECHO"), [`-gateway=${g.serverAddr}`, "-id=1"], g.dir, { FASTWAY_AUTH_PASSWORD: password });
      await g.echo.waitLine(["ready"]);
      await g.proc.waitLine(['msg="server registered"', "id=1"], 10_000, mark);
    } catch (err) {
      await g.stop();
      throw err;
    }
    return g;
  }

  get tcpURL(): string {
    return `tcp://${this.clientAddr}`;
  }

  get wsURL(): string {
    return `ws://${this.wsAddr}/`;
  }

  async stop(): Promise<void> {
    await this.echo?.stop();
    await this.proc.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy in front of an address that the test can cut: every
 * connection through it is destroyed at once, the listener stays.
 */
export class CutProxy {
  readonly server: net.Server;
  private pairs = new Set<net.Socket>();
  connections = 0;

  private constructor(target: string) {
    const i = target.lastIndexOf(":");
    const host = target.slice(0, i), port = Number(target.slice(i + 1));
    this.server = net.createServer((a) => {
      this.connections++;
      const b = net.connect({ host, port });
      for (const [x, y] of [[a, b], [b, a]] as const) {
        this.pairs.add(x);
        x.on("error", () => y.destroy());
        x.on("close", () => {
          this.pairs.delete(x);
          y.destroy();
        });
        x.pipe(y);
      }
    });
  }

  static async start(target: string): Promise<CutProxy> {
    const p = new CutProxy(target);
    await new Promise<void>((resolve) => p.server.listen(0, "127.0.0.1", resolve));
    return p;
  }

  get addr(): string {
    return `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  cut(): void {
    for (const s of this.pairs) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
