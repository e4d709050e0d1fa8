// A scripted gateway on loopback: the test reads the frames a client sends
// and writes the frames it wants, byte for byte.

import * as net from "node:net";
import { wire } from "fastway-client";
import { AsyncQueue } from "./util.js";

export interface Frame {
  connID: number;
  msg: Uint8Array;
  /** decoded when connID is 0 */
  cmd?: wire.Command;
}

/** One client connection, seen from the gateway's side. */
export class Peer {
  readonly sock: net.Socket;
  private buf = Buffer.alloc(0);
  private frames = new AsyncQueue<Frame>();
  ended = false;
  readonly closed: Promise<void>;

  constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 8) {
        const length = this.buf.readUInt32LE(0);
        if (this.buf.length < 4 + length) break;
        const connID = this.buf.readUInt32LE(4);
        const msg = new Uint8Array(this.buf.subarray(8, 4 + length));
        this.buf = this.buf.subarray(4 + length);
        this.frames.push(connID === 0 ? { connID, msg, cmd: wire.decodeCommand(msg) } : { connID, msg });
      }
    });
    sock.on("error", () => {});
    this.closed = new Promise((resolve) =>
      sock.on("close", () => {
        this.ended = true;
        this.frames.end();
        resolve();
      }),
    );
  }

  /** The next frame the client sent (null once it closed), within ms. */
  next(ms = 5000): Promise<Frame | null> {
    return this.frames.next(ms, "frame from the client");
  }

  /** The next frame, which must be a command; returns it. */
  async nextCmd(ms?: number): Promise<wire.Command> {
    const f = await this.next(ms);
    if (!f || !f.cmd) throw new Error(`want a command, got ${f ? `data on ${f.connID}` : "the end"}`);
    return f.cmd;
  }

  /** Frames received and not read by next. */
  get queued(): number {
    return this.frames.length;
  }

  send(...frames: Uint8Array[]): void {
    this.sock.write(Buffer.concat(frames));
  }

  cmd(type: wire.CmdType, connID = 0, remoteID = 0): void {
    this.send(wire.encodeCommand({ type, connID, remoteID }));
  }

  data(connID: number, msg: Uint8Array | string): void {
    this.send(wire.encodeData(connID, typeof msg === "string" ? new TextEncoder().encode(msg) : msg));
  }
}

export class FakeGateway {
  readonly server: net.Server;
  private peers = new AsyncQueue<Peer>();
  readonly all: Peer[] = [];

  private constructor(server: net.Server) {
    this.server = server;
    server.on("connection", (sock) => {
      const p = new Peer(sock);
      this.all.push(p);
      this.peers.push(p);
    });
  }

  static async start(): Promise<FakeGateway> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new FakeGateway(server);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  /** The next client connection. */
  async accept(ms = 5000): Promise<Peer> {
    return (await this.peers.next(ms, "client connection")) as Peer;
  }

  async close(): Promise<void> {
    for (const p of this.all) p.sock.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
