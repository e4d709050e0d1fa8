// A WebSocket server for the tests, written from RFC 6455: it upgrades on
// any path, checks that every client frame is masked, and lets the test send
// frames of its choosing (fragments, control frames, text, bad ones).

import { createHash } from "node:crypto";
import * as http from "node:http";
import type * as net from "node:net";
import { AsyncQueue } from "./util.js";

export interface WSFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** Encodes a server frame (unmasked unless mask is given). */
export function serverFrame(opcode: number, payload: Uint8Array, fin = true, mask?: Uint8Array): Uint8Array {
  const n = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  const m = mask ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 0xff);
  else head.push(m | 127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  const body = new Uint8Array(payload);
  if (mask) for (let i = 0; i < n; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
  return new Uint8Array(Buffer.concat([Buffer.from(head), mask ?? new Uint8Array(0), body]));
}

/** One upgraded connection, server side. */
export class WSPeer {
  readonly sock: net.Socket;
  readonly request: http.IncomingMessage;
  private buf = Buffer.alloc(0);
  private frames = new AsyncQueue<WSFrame>();
  ended = false;
  readonly closed: Promise<void>;

  constructor(sock: net.Socket, req: http.IncomingMessage, head: Buffer) {
    this.sock = sock;
    this.request = req;
    sock.on("data", (c: Buffer) => this.onData(c));
    sock.on("error", () => {});
    this.closed = new Promise((resolve) =>
      sock.on("close", () => {
        this.ended = true;
        this.frames.end();
        resolve();
      }),
    );
    if (head.length) this.onData(head);
  }

  private onData(c: Buffer): void {
    this.buf = Buffer.concat([this.buf, c]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0] as number, b1 = this.buf[1] as number;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (this.buf.length < need) return;
      const payload = new Uint8Array(this.buf.subarray(off + (masked ? 4 : 0), need));
      if (masked) {
        const k = this.buf.subarray(off, off + 4);
        for (let i = 0; i < len; i++) payload[i] = (payload[i] as number) ^ (k[i & 3] as number);
      }
      this.buf = this.buf.subarray(need);
      this.frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
    }
  }

  /** The next frame from the client (null once it closed). */
  next(ms = 5000): Promise<WSFrame | null> {
    return this.frames.next(ms, "WebSocket frame");
  }

  send(...frames: Uint8Array[]): void {
    this.sock.write(Buffer.concat(frames));
  }

  binary(payload: Uint8Array, fin = true): void {
    this.send(serverFrame(0x2, payload, fin));
  }
}

export class WSServer {
  readonly server: http.Server;
  private peers = new AsyncQueue<WSPeer>();
  /** What the next upgrade is answered with, instead of 101 (a status line and headers, raw). */
  respond: ((key: string) => string) | null = null;
  readonly all: WSPeer[] = [];
  private raw: net.Socket[] = [];

  private constructor(server: http.Server) {
    this.server = server;
    server.on("upgrade", (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
      const key = String(req.headers["sec-websocket-key"] ?? "");
      if (this.respond) {
        const r = this.respond(key);
        this.raw.push(sock);
        if (r === "") return; // say nothing at all
        sock.write(r);
        sock.on("error", () => {});
        sock.end();
        return;
      }
      const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      sock.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: fastway\r\n\r\n`,
      );
      const p = new WSPeer(sock, req, head);
      this.all.push(p);
      this.peers.push(p);
    });
  }

  static async start(): Promise<WSServer> {
    const server = http.createServer((_, res) => res.writeHead(426).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new WSServer(server);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as net.AddressInfo).port}/game`;
  }

  async accept(ms = 5000): Promise<WSPeer> {
    return (await this.peers.next(ms, "WebSocket client")) as WSPeer;
  }

  async close(): Promise<void> {
    for (const p of this.all) p.sock.destroy();
    for (const s of this.raw) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
