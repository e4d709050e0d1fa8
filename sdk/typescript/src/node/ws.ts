// A small WebSocket client (RFC 6455) over node:net and node:tls, for Node.js
// versions without a global WebSocket. Binary messages only: the gateway's
// stream travels in binary messages (PROTOCOL.md §6), and a text message is a
// protocol error. Frames from the client are masked; fragmented messages,
// interleaved control frames, Ping/Pong and the closing handshake are handled.
//
// Message boundaries mean nothing to the stream, so the payload of each data
// frame is handed on as it arrives, without assembling whole messages: what
// the client holds is bounded by the frame parser above, in bytes.

import { createHash, randomFillSync } from "node:crypto";
import type * as net from "node:net";
import type * as tls from "node:tls";
import { ConnectionError, ProtocolError } from "../errors.js";
import { defaults } from "../options.js";
import type { Dialer, Transport } from "../transport.js";
import { hostPort, parseURL } from "../transport.js";
import { SUBPROTOCOL } from "../websocket.js";
import { openSocket } from "./socket.js";

/** Options of the Node WebSocket client. */
export interface NodeWebSocketOptions {
  /** TLS options for wss:// (ca, rejectUnauthorized, ...). */
  tls?: tls.ConnectionOptions;
  /** The Origin header to send (browsers always send one; the gateway checks it against -ClientWSOrigins). Default: none. */
  origin?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

/** The GUID of RFC 6455 §1.3. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** The most bytes a handshake response may take. */
const maxResponse = 16 * 1024;
/** Unwritten bytes past which a Ping gets no Pong. */
const maxPongBacklog = 256 * 1024;

/** Opcodes. */
const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Close codes (RFC 6455 §7.4.1). */
const CLOSE_NORMAL = 1000;
const CLOSE_PROTOCOL = 1002;
const CLOSE_UNSUPPORTED = 1003;

/** A dialer of a ws:// or wss:// URL. */
export function webSocketDialer(url: string, options: NodeWebSocketOptions = {}): Dialer {
  const u = parseURL(url);
  if (u.scheme !== "ws" && u.scheme !== "wss") {
    throw new TypeError(`fastway: a WebSocket URL is ws:// or wss://, not ${url}`);
  }
  const secure = u.scheme === "wss";
  return async (signal) => {
    const sock = await openSocket(u.host, u.port, secure ? (options.tls ?? {}) : undefined, signal);
    try {
      const rest = await handshake(sock, u.host, u.port, u.path, secure, options, signal, url);
      return new WebSocketTransport(sock, url, rest);
    } catch (err) {
      sock.destroy();
      throw err;
    }
  };
}

/** Sends the upgrade request and checks the response; resolves with the bytes that followed it. */
function handshake(
  sock: net.Socket,
  host: string,
  port: number,
  path: string,
  secure: boolean,
  options: NodeWebSocketOptions,
  signal: AbortSignal,
  url: string,
): Promise<Uint8Array> {
  const key = randomFillSync(Buffer.alloc(16)).toString("base64");
  const defaultPort = secure ? 443 : 80;
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${port === defaultPort ? (host.includes(":") ? `[${host}]` : host) : hostPort(host, port)}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    `Sec-WebSocket-Protocol: ${SUBPROTOCOL}`,
  ];
  if (options.origin !== undefined) lines.push(`Origin: ${options.origin}`);
  for (const [k, v] of Object.entries(options.headers ?? {})) lines.push(`${k}: ${v}`);
  sock.write(lines.join("\r\n") + "\r\n\r\n");
  const accept = createHash("sha1").update(key + GUID).digest("base64");

  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const done = () => {
      sock.removeListener("data", onData);
      sock.removeListener("close", onClose);
      sock.removeListener("error", onError);
      signal.removeEventListener("abort", onAbort);
    };
    const fail = (err: unknown) => {
      done();
      reject(err);
    };
    const onAbort = () => fail(signal.reason);
    const onError = (err: Error) => fail(new ConnectionError(`${url}: ${err.message}`, { cause: err }));
    const onClose = () => fail(new ConnectionError(`${url}: connection closed during the WebSocket handshake`));
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) {
        if (got.length > maxResponse) fail(new ProtocolError(`${url}: handshake response over ${maxResponse} bytes`));
        return;
      }
      done();
      sock.pause();
      const err = checkResponse(got.subarray(0, end).toString("latin1"), accept, url);
      if (err) {
        reject(err);
        return;
      }
      resolve(new Uint8Array(got.subarray(end + 4)));
    };
    sock.on("data", onData);
    sock.once("close", onClose);
    sock.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Checks an upgrade response; returns what is wrong with it, or undefined. */
export function checkResponse(head: string, accept: string, url: string): Error | undefined {
  const [status, ...rest] = head.split("\r\n");
  const m = /^HTTP\/1\.1 (\d{3})/.exec(status ?? "");
  if (!m || m[1] !== "101") {
    return new ConnectionError(`${url}: WebSocket upgrade refused: ${status ?? ""}`);
  }
  const h = new Map<string, string>();
  for (const line of rest) {
    const i = line.indexOf(":");
    if (i > 0) h.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  if ((h.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    return new ProtocolError(`${url}: upgrade response without Upgrade: websocket`);
  }
  if (!(h.get("connection") ?? "").toLowerCase().split(/\s*,\s*/).includes("upgrade")) {
    return new ProtocolError(`${url}: upgrade response without Connection: Upgrade`);
  }
  if (h.get("sec-websocket-accept") !== accept) {
    return new ProtocolError(`${url}: wrong Sec-WebSocket-Accept`);
  }
  const proto = h.get("sec-websocket-protocol");
  if (proto !== undefined && proto !== SUBPROTOCOL) {
    return new ProtocolError(`${url}: the server chose subprotocol ${proto}`);
  }
  if (h.has("sec-websocket-extensions")) {
    return new ProtocolError(`${url}: the server chose an extension the client did not offer`);
  }
  return undefined;
}

/** What a frame reader finds, in order. */
export interface WSFrameSink {
  /** Payload bytes of a binary message (a view: copy to keep). */
  binary(chunk: Uint8Array): void;
  /** A whole control frame (at most 125 bytes). */
  control(opcode: number, payload: Uint8Array): void;
}

/** An RFC 6455 violation by the server, with the close code to answer it with. */
export class WSProtocolError extends ProtocolError {
  readonly code: number;
  constructor(message: string, code: number) {
    super(message);
    this.code = code;
  }
}

/**
 * WSFrameReader parses the frames a server sends (unmasked), from chunks of
 * any size. It holds at most one frame header (14 bytes) and one control
 * frame's payload (125 bytes); binary payload is passed on as it comes.
 */
export class WSFrameReader {
  private readonly head = new Uint8Array(14);
  private headLen = 0;
  /** Payload bytes left of the current frame. */
  private left = 0;
  /** The current frame's opcode, while its payload is read. */
  private opcode = -1;
  private control: Uint8Array | null = null;
  private controlLen = 0;
  /** A binary message is in progress (its last frame has not come). */
  private inMessage = false;

  push(chunk: Uint8Array, sink: WSFrameSink): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.opcode < 0) {
        off = this.readHeader(chunk, off);
        if (this.opcode < 0) return;
        if (this.left === 0) this.finishFrame(sink);
        continue;
      }
      const n = Math.min(this.left, chunk.length - off);
      const part = chunk.subarray(off, off + n);
      off += n;
      this.left -= n;
      if (this.control) {
        this.control.set(part, this.controlLen);
        this.controlLen += n;
      } else if (n > 0) {
        sink.binary(part);
      }
      if (this.left === 0) this.finishFrame(sink);
    }
  }

  /** Reads header bytes from off; returns the new offset. Sets opcode once a header is whole. */
  private readHeader(chunk: Uint8Array, off: number): number {
    // Take what the header needs, one step at a time: 2 bytes, then the extended length.
    while (off < chunk.length) {
      const need = this.headerSize();
      if (this.headLen < need) {
        const n = Math.min(need - this.headLen, chunk.length - off);
        this.head.set(chunk.subarray(off, off + n), this.headLen);
        this.headLen += n;
        off += n;
        if (this.headLen < need) return off;
      }
      if (this.headerSize() === this.headLen) {
        this.startFrame();
        return off;
      }
    }
    return off;
  }

  /** Bytes of the current header, as far as its first two bytes tell. */
  private headerSize(): number {
    if (this.headLen < 2) return 2;
    const len = (this.head[1] as number) & 0x7f;
    return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + ((this.head[1] as number) & 0x80 ? 4 : 0);
  }

  private startFrame(): void {
    const b0 = this.head[0] as number;
    const b1 = this.head[1] as number;
    this.headLen = 0;
    if (b0 & 0x70) throw new WSProtocolError("WebSocket frame with RSV bits set (no extension was agreed)", CLOSE_PROTOCOL);
    if (b1 & 0x80) throw new WSProtocolError("masked WebSocket frame from the server", CLOSE_PROTOCOL);
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    let len = b1 & 0x7f;
    if (len === 126) {
      len = ((this.head[2] as number) << 8) | (this.head[3] as number);
    } else if (len === 127) {
      const v = new DataView(this.head.buffer, 2, 8);
      const hi = v.getUint32(0);
      if (hi > 0x1fffff) throw new WSProtocolError("WebSocket frame length over 2^53", CLOSE_PROTOCOL);
      len = hi * 2 ** 32 + v.getUint32(4);
    }
    if (opcode >= 0x8) {
      if (opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG) throw new WSProtocolError(`WebSocket opcode ${opcode}`, CLOSE_PROTOCOL);
      if (!fin || len > 125) throw new WSProtocolError("fragmented or long WebSocket control frame", CLOSE_PROTOCOL);
      this.control = new Uint8Array(len);
      this.controlLen = 0;
    } else if (opcode === OP_TEXT) {
      throw new WSProtocolError("text WebSocket message (the gateway's stream is binary)", CLOSE_UNSUPPORTED);
    } else if (opcode === OP_BINARY) {
      if (this.inMessage) throw new WSProtocolError("new WebSocket message inside a fragmented one", CLOSE_PROTOCOL);
      this.inMessage = !fin;
    } else if (opcode === OP_CONT) {
      if (!this.inMessage) throw new WSProtocolError("WebSocket continuation without a message", CLOSE_PROTOCOL);
      this.inMessage = !fin;
    } else {
      throw new WSProtocolError(`WebSocket opcode ${opcode}`, CLOSE_PROTOCOL);
    }
    this.opcode = opcode;
    this.left = len;
  }

  private finishFrame(sink: WSFrameSink): void {
    const opcode = this.opcode;
    this.opcode = -1;
    const c = this.control;
    if (c) {
      this.control = null;
      sink.control(opcode, c);
    }
  }
}

/** Random masking keys, drawn from a pool refilled as it runs out. */
const maskPool = new Uint8Array(4096);
let maskAt = maskPool.length;

function nextMask(out: Uint8Array, at: number): void {
  if (maskAt + 4 > maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  out.set(maskPool.subarray(maskAt, maskAt + 4), at);
  maskAt += 4;
}

/** Encodes one masked client frame (RFC 6455 §5.2, §5.3). */
export function encodeClientFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + ext + 4 + n);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (ext === 0) {
    frame[1] = 0x80 | n;
  } else if (ext === 2) {
    frame[1] = 0x80 | 126;
    frame[2] = n >>> 8;
    frame[3] = n & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    const v = new DataView(frame.buffer, 2, 8);
    v.setUint32(0, Math.floor(n / 2 ** 32));
    v.setUint32(4, n >>> 0);
  }
  const m = 2 + ext;
  nextMask(frame, m);
  const k0 = frame[m] as number, k1 = frame[m + 1] as number, k2 = frame[m + 2] as number, k3 = frame[m + 3] as number;
  const at = m + 4;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    frame[at + i] = (payload[i] as number) ^ k0;
    frame[at + i + 1] = (payload[i + 1] as number) ^ k1;
    frame[at + i + 2] = (payload[i + 2] as number) ^ k2;
    frame[at + i + 3] = (payload[i + 3] as number) ^ k3;
  }
  const keys = [k0, k1, k2, k3];
  for (; i < n; i++) frame[at + i] = (payload[i] as number) ^ (keys[i & 3] as number);
  return frame;
}

/** The close frame's payload: code and UTF-8 reason. */
function closePayload(code: number, reason = ""): Uint8Array {
  const r = Buffer.from(reason, "utf8").subarray(0, 123);
  const p = new Uint8Array(2 + r.length);
  p[0] = code >>> 8;
  p[1] = code & 0xff;
  p.set(r, 2);
  return p;
}

/** Transport over a WebSocket whose handshake is done. */
export class WebSocketTransport implements Transport, WSFrameSink {
  readonly drainEvents = true;
  readonly label: string;
  private sink: (chunk: Uint8Array) => void = () => {};
  /** What came with the handshake response, until the client's handler is set. */
  private rest: Uint8Array | undefined;
  ondrain: () => void = () => {};
  onclose: (err: Error | undefined) => void = () => {};
  private readonly sock: net.Socket;
  private readonly reader = new WSFrameReader();
  private err: Error | undefined;
  /** We sent a Close frame. */
  private closeSent = false;
  /** The server's Close frame arrived. */
  private closeGot = false;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(sock: net.Socket, label: string, rest: Uint8Array) {
    this.sock = sock;
    this.label = label;
    sock.on("data", (chunk: Buffer) => this.onData(chunk));
    sock.on("drain", () => this.ondrain());
    sock.on("error", (err) => {
      this.err ??= new ConnectionError(`${label}: ${err.message}`, { cause: err });
    });
    sock.on("close", () => {
      if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
      this.onclose(this.err ?? (this.closeGot ? undefined : new ConnectionError(`${label}: connection closed without a WebSocket close`)));
    });
    // The socket stays paused, and the bytes that came with the handshake
    // response wait, until the client sets its handler (see ondata).
    this.rest = rest;
  }

  get ondata(): (chunk: Uint8Array) => void {
    return this.sink;
  }

  /**
   * The client sets its handlers some microtasks after the transport opens
   * (the connect's promise chain); frames that came in the same read as the
   * handshake response are handed over only then, after the other handlers
   * are set in the same turn, and the socket resumed.
   */
  set ondata(fn: (chunk: Uint8Array) => void) {
    this.sink = fn;
    const rest = this.rest;
    if (rest === undefined) return;
    this.rest = undefined;
    queueMicrotask(() => {
      if (rest.length > 0) this.onData(rest);
      this.sock.resume();
    });
  }

  get bufferedAmount(): number {
    return this.sock.writableLength;
  }

  write(data: Uint8Array): void {
    if (this.closeSent) return;
    this.sock.write(encodeClientFrame(OP_BINARY, data));
  }

  /** Starts the closing handshake; the socket is destroyed if it takes longer than the close timeout. */
  close(): void {
    this.sendClose(CLOSE_NORMAL, "");
  }

  private onData(chunk: Uint8Array): void {
    if (this.sock.destroyed) return;
    try {
      this.reader.push(chunk, this);
    } catch (err) {
      const e = err as WSProtocolError;
      this.err ??= new ProtocolError(`${this.label}: ${e.message}`);
      this.sendClose(e.code ?? CLOSE_PROTOCOL, "protocol error");
    }
  }

  binary(chunk: Uint8Array): void {
    if (!this.closeSent && !this.closeGot) this.ondata(chunk);
  }

  control(opcode: number, payload: Uint8Array): void {
    switch (opcode) {
      case OP_PING:
        // A server that floods Pings without reading gets no more Pongs
        // once a backlog builds up, rather than growing this socket's buffer.
        if (!this.closeSent && this.sock.writableLength <= maxPongBacklog) this.sock.write(encodeClientFrame(OP_PONG, payload));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        this.closeGot = true;
        const code = payload.length >= 2 ? ((payload[0] as number) << 8) | (payload[1] as number) : 1005;
        if (payload.length === 1) this.err ??= new ProtocolError(`${this.label}: a 1-byte close frame`);
        if (code !== CLOSE_NORMAL && code !== 1001 && code !== 1005) {
          const reason = Buffer.from(payload.subarray(2)).toString("utf8");
          this.err ??= new ConnectionError(`${this.label}: WebSocket closed by the gateway (code ${code}${reason ? ", " + reason : ""})`);
        }
        // Answer with the same code (RFC 6455 §5.5.1), then wait for the server to close TCP.
        this.sendClose(code === 1005 ? CLOSE_NORMAL : code, "");
        this.sock.end();
        return;
      }
    }
  }

  private sendClose(code: number, reason: string): void {
    if (this.closeSent) return;
    this.closeSent = true;
    if (!this.sock.destroyed && this.sock.writable) {
      this.sock.write(encodeClientFrame(OP_CLOSE, closePayload(code, reason)));
    }
    this.closeTimer = setTimeout(() => this.sock.destroy(), defaults.closeTimeout);
  }
}
