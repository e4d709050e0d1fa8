// One physical connection of a client: its transport, parser, virtual
// connections, pending dials, send buffer and keep-alive.

import {
  BufferLimitError,
  ClosedError,
  ConnectionError,
  FastwayError,
  MessageTooLargeError,
  PingTimeoutError,
  ProtocolError,
  RefusedError,
  TimeoutError,
} from "./errors.js";
import type { Resolved } from "./options.js";
import type { Transport } from "./transport.js";
import { VConn, type VConnHost, type VConnRef } from "./vconn.js";
import { Cmd, type Command, FrameParser, type FrameSink, HEADER_SIZE, SIZE_OF_CONN_ID, commandSize, encodeCommand, putHeader } from "./wire.js";

/** What a link needs from its client. */
export interface LinkOwner<T> {
  readonly opts: Resolved<T>;
  /** The unread bytes of all virtual connections changed by delta. */
  unread(delta: number): void;
  /** The unread bytes of all virtual connections. */
  readonly unreadBytes: number;
  /** A server opened v (Connect). */
  connected(link: Link<T>, v: VConn<T>): boolean;
  /** The link is down; reason is undefined after Client.close. */
  down(link: Link<T>, reason: Error | undefined): void;
  report(err: unknown): void;
}

interface PendingDial<T> {
  remoteID: number;
  resolve: (v: VConn<T>) => void;
  reject: (err: unknown) => void;
  /** the dialer gave up; a late Accept is answered with Close */
  abandoned: boolean;
  done: () => void;
}

interface RoomWaiter {
  v: VConnRef;
  msg: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
  done: () => void;
}

/** The smallest send buffer allocated. */
const minOutbox = 16 * 1024;
/** How often room for sendAsync is polled on transports without drain events, ms. */
const roomPoll = 10;

export class Link<T> implements VConnHost, FrameSink {
  readonly vconns = new Map<number, VConn<T>>();
  private readonly owner: LinkOwner<T>;
  private readonly opts: Resolved<T>;
  private readonly transport: Transport;
  private readonly parser: FrameParser;
  private pending: PendingDial<T>[] = [];
  private waiters: RoomWaiter[] = [];
  private roomTimer: ReturnType<typeof setTimeout> | undefined;
  dead = false;

  // Send buffer: frames written in this tick, handed to the transport in one write.
  private out: Uint8Array | null = null;
  private outLen = 0;
  private flushQueued = false;

  // Keep-alive state.
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastSend = now();
  private recvCount = 0;
  private pinging = false;
  private pingAt = 0;
  private pingMark = 0;

  constructor(owner: LinkOwner<T>, transport: Transport) {
    this.owner = owner;
    this.opts = owner.opts;
    this.transport = transport;
    this.parser = new FrameParser(this.opts.maxPacket);
    transport.ondata = (chunk) => this.onData(chunk);
    transport.ondrain = () => this.checkRoom();
    transport.onclose = (err) =>
      this.fail(
        err instanceof FastwayError
          ? err
          : new ConnectionError(`${transport.label}: ${err ? `connection lost: ${err.message}` : "the gateway closed the connection"}`, err ? { cause: err } : {}),
      );
    if (this.opts.pingInterval > 0) {
      this.timer = setTimeout(() => this.keepalive(), this.opts.pingInterval);
    }
  }

  /** Bytes sent and not yet written to the network. */
  get unsent(): number {
    return this.outLen + (this.dead ? 0 : this.transport.bufferedAmount);
  }

  get pendingDials(): number {
    return this.pending.length;
  }

  // ---- dialing

  dial(remoteID: number, timeout: number | undefined, signal: AbortSignal | undefined): Promise<VConn<T>> {
    const size = commandSize(Cmd.Dial);
    if (this.unsent + size > this.opts.maxUnsentBytes) {
      return Promise.reject(new BufferLimitError("unsent", this.opts.maxUnsentBytes, this.unsent + size));
    }
    return new Promise<VConn<T>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const p: PendingDial<T> = {
        remoteID,
        resolve,
        reject,
        abandoned: false,
        done: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      const giveUp = (err: unknown) => {
        p.abandoned = true;
        p.done();
        reject(err);
      };
      const onAbort = () => giveUp(signal?.reason);
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => giveUp(new TimeoutError(`dial ${remoteID}: no answer within ${timeout} ms`)), timeout);
      }
      this.pending.push(p);
      this.writeCommand({ type: Cmd.Dial, connID: 0, remoteID });
    });
  }

  // ---- VConnHost

  sendData(v: VConnRef, msg: Uint8Array): void {
    const size = this.checkData(v, msg);
    if (this.waiters.length > 0 || this.unsent + size > this.opts.maxUnsentBytes) {
      throw new BufferLimitError("unsent", this.opts.maxUnsentBytes, this.unsent + size);
    }
    this.writeData(v.id, msg);
  }

  sendDataAsync(v: VConnRef, msg: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    const size = this.checkData(v, msg);
    if (this.waiters.length === 0 && this.unsent + size <= this.opts.maxUnsentBytes) {
      this.writeData(v.id, msg);
      return Promise.resolve();
    }
    if (signal?.aborted) {
      return Promise.reject(signal.reason);
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        w.done();
        reject(signal?.reason);
        this.checkRoom(); // the next one may fit now
      };
      // A copy: the caller may reuse its buffer once sendAsync is called, as after send.
      const w: RoomWaiter = { v, msg: msg.slice(), resolve, reject, done: () => signal?.removeEventListener("abort", onAbort) };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(w);
      this.pollRoom();
    });
  }

  release(v: VConnRef): void {
    if (this.vconns.get(v.id) === v) {
      this.vconns.delete(v.id);
      if (!this.dead) {
        this.writeCommand({ type: Cmd.Close, connID: v.id, remoteID: 0 });
        this.checkRoom(); // its sendAsync calls that wait reject now
      }
    }
  }

  unread(delta: number): void {
    this.owner.unread(delta);
  }

  report(err: unknown): void {
    this.owner.report(err);
  }

  // ---- receiving (FrameSink)

  private onData(chunk: Uint8Array): void {
    if (this.dead) {
      return;
    }
    this.recvCount++;
    try {
      this.parser.push(chunk, this);
    } catch (err) {
      this.fail(err instanceof Error ? err : new ProtocolError(String(err)));
      return;
    }
    const held = this.owner.unreadBytes + this.parser.pendingBytes;
    if (!this.dead && held > this.opts.maxClientUnreadBytes) {
      this.fail(new BufferLimitError("clientUnread", this.opts.maxClientUnreadBytes, held));
    }
  }

  data(connID: number, msg: Uint8Array): void {
    if (this.dead) {
      return;
    }
    const v = this.vconns.get(connID);
    if (!v) {
      return; // late data after our Close: dropped (PROTOCOL.md §1)
    }
    if (v.unread + msg.length > this.opts.maxUnreadBytes) {
      // Close this one rather than hold more; its siblings carry on.
      this.vconns.delete(connID);
      this.writeCommand({ type: Cmd.Close, connID, remoteID: 0 });
      v.end(new BufferLimitError("vconnUnread", this.opts.maxUnreadBytes, v.unread + msg.length), true);
      return;
    }
    const held = this.owner.unreadBytes + msg.length;
    if (held > this.opts.maxClientUnreadBytes) {
      this.fail(new BufferLimitError("clientUnread", this.opts.maxClientUnreadBytes, held));
      return;
    }
    v.deliver(msg);
  }

  command(cmd: Command): void {
    if (this.dead) {
      return;
    }
    switch (cmd.type) {
      case Cmd.Ping:
        return; // the answer to our Ping: arriving was all it had to do
      case Cmd.Close: {
        const v = this.vconns.get(cmd.connID);
        if (v) {
          this.vconns.delete(cmd.connID);
          v.end(undefined, true);
        }
        return;
      }
      case Cmd.Accept:
      case Cmd.Refuse:
        this.dialReply(cmd);
        return;
      case Cmd.Connect:
        this.connect(cmd);
        return;
      default:
        throw new ProtocolError(`gateway sent command ${cmd.type} (Dial)`);
    }
  }

  private dialReply(cmd: Command): void {
    const p = this.pending[0];
    const name = cmd.type === Cmd.Accept ? "Accept" : "Refuse";
    if (!p) {
      throw new ProtocolError(`${name} without a pending Dial`);
    }
    if (p.remoteID !== cmd.remoteID) {
      throw new ProtocolError(`${name} for remote ${cmd.remoteID}, oldest pending Dial is to ${p.remoteID}`);
    }
    if (cmd.type === Cmd.Accept && (cmd.connID === 0 || this.vconns.has(cmd.connID))) {
      throw new ProtocolError(`bad Accept: ConnID ${cmd.connID} is 0 or already live`);
    }
    this.pending.shift();
    if (p.abandoned) {
      if (cmd.type === Cmd.Accept) {
        this.writeCommand({ type: Cmd.Close, connID: cmd.connID, remoteID: 0 });
      }
      return;
    }
    p.done();
    if (cmd.type === Cmd.Refuse) {
      p.reject(new RefusedError(cmd.remoteID));
      return;
    }
    const v = new VConn<T>(this, cmd.connID, cmd.remoteID, this.opts.codec);
    this.vconns.set(v.id, v);
    p.resolve(v);
  }

  private connect(cmd: Command): void {
    if (cmd.connID === 0 || this.vconns.has(cmd.connID)) {
      throw new ProtocolError(`bad Connect: ConnID ${cmd.connID} is 0 or already live`);
    }
    const v = new VConn<T>(this, cmd.connID, cmd.remoteID, this.opts.codec);
    this.vconns.set(v.id, v); // first, so that an onaccept handler may send at once
    if (!this.owner.connected(this, v)) {
      this.vconns.delete(v.id);
      const size = commandSize(Cmd.Close);
      if (this.unsent + size > this.opts.maxUnsentBytes) {
        // A gateway that floods Connects past the backlog and reads none of
        // the Closes answering them would grow the send buffer without end.
        throw new BufferLimitError("unsent", this.opts.maxUnsentBytes, this.unsent + size);
      }
      this.writeCommand({ type: Cmd.Close, connID: cmd.connID, remoteID: 0 });
    }
  }

  // ---- sending

  private checkData(v: VConnRef, msg: Uint8Array): number {
    if (this.dead || this.vconns.get(v.id) !== v) {
      throw new ClosedError(`virtual connection ${v.id} is closed`);
    }
    if (SIZE_OF_CONN_ID + msg.length > this.opts.maxPacket) {
      throw new MessageTooLargeError(`${msg.length}-byte message, maxPacket ${this.opts.maxPacket}`);
    }
    return HEADER_SIZE + msg.length;
  }

  private writeData(connID: number, msg: Uint8Array): void {
    const at = this.reserve(HEADER_SIZE + msg.length);
    const out = this.out as Uint8Array;
    putHeader(out, at, connID, msg.length);
    out.set(msg, at + HEADER_SIZE);
  }

  private writeCommand(cmd: Command): void {
    const frame = encodeCommand(cmd);
    const at = this.reserve(frame.length);
    (this.out as Uint8Array).set(frame, at);
  }

  /** Makes room for n bytes in the send buffer and returns where they go. */
  private reserve(n: number): number {
    const need = this.outLen + n;
    if (this.out === null || need > this.out.length) {
      const grown = new Uint8Array(Math.max(minOutbox, need, this.out ? this.out.length * 2 : 0));
      if (this.out) grown.set(this.out.subarray(0, this.outLen));
      this.out = grown;
    }
    const at = this.outLen;
    this.outLen = need;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    return at;
  }

  /** Hands the send buffer to the transport in one write. */
  flush(): void {
    this.flushQueued = false;
    if (this.dead || this.outLen === 0 || this.out === null) {
      return;
    }
    // The transport may keep what it is given: hand over a buffer of its own,
    // copied when most of the allocation would be wasted.
    const data = this.outLen * 2 >= this.out.length ? this.out.subarray(0, this.outLen) : this.out.slice(0, this.outLen);
    this.out = null;
    this.outLen = 0;
    this.transport.write(data);
    this.lastSend = now();
    this.checkRoom();
  }

  /** Sends what sendAsync waits with, in order, while it fits. */
  private checkRoom(): void {
    while (!this.dead) {
      const w = this.waiters[0];
      if (!w) {
        break;
      }
      if (this.vconns.get(w.v.id) !== w.v) {
        this.waiters.shift();
        w.done();
        w.reject(new ClosedError(`virtual connection ${w.v.id} is closed`));
        continue;
      }
      if (this.unsent + HEADER_SIZE + w.msg.length > this.opts.maxUnsentBytes) {
        this.pollRoom();
        return;
      }
      this.waiters.shift();
      w.done();
      this.writeData(w.v.id, w.msg);
      w.resolve();
    }
  }

  /** Polls for room while someone waits, when the transport has no drain events. */
  private pollRoom(): void {
    if (this.transport.drainEvents || this.roomTimer !== undefined || this.waiters.length === 0) {
      return;
    }
    this.roomTimer = setTimeout(() => {
      this.roomTimer = undefined;
      this.checkRoom();
    }, roomPoll);
  }

  // ---- keep-alive

  /**
   * Runs on the timer: sends a Ping when nothing was sent for pingInterval,
   * runs onPingTimeout when nothing arrived for pingTimeout after a Ping,
   * then sets the timer for the next of those moments.
   */
  private keepalive(): void {
    this.timer = undefined;
    if (this.dead) {
      return;
    }
    const { pingInterval: interval, pingTimeout: timeout } = this.opts;
    let t = now();
    if (this.pinging && this.recvCount !== this.pingMark) {
      this.pinging = false; // something arrived since the Ping
    }
    if (this.pinging && timeout > 0 && t - this.pingAt >= timeout) {
      let keep = false;
      try {
        keep = this.opts.onPingTimeout?.() === true;
      } catch (err) {
        this.report(err);
      }
      if (this.dead) {
        return;
      }
      if (!keep) {
        this.fail(new PingTimeoutError());
        return;
      }
      this.pinging = false;
      t = now();
    }
    let next = interval - (t - this.lastSend);
    if (next <= 0) {
      if (!this.pinging) {
        this.pinging = true;
        this.pingAt = t;
        this.pingMark = this.recvCount;
      }
      this.writeCommand({ type: Cmd.Ping, connID: 0, remoteID: 0 });
      this.lastSend = t;
      next = interval;
    }
    if (this.pinging && timeout > 0) {
      next = Math.min(next, this.pingAt + timeout - t);
    }
    this.timer = setTimeout(() => this.keepalive(), Math.max(1, next));
  }

  // ---- the end

  /**
   * Takes the link down: the transport closes (after what is queued, when
   * reason is undefined: Client.close), every virtual connection ends with
   * reason, waiting dials and sends reject with ClosedError.
   */
  fail(reason: Error | undefined): void {
    if (this.dead) {
      return;
    }
    if (reason === undefined) {
      this.flush();
    }
    this.dead = true;
    this.out = null;
    this.outLen = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.roomTimer !== undefined) clearTimeout(this.roomTimer);
    this.transport.ondata = () => {};
    this.transport.ondrain = () => {};
    this.transport.onclose = () => {};
    this.transport.close();
    const closed = () => new ClosedError("the connection to the gateway closed", { cause: reason });
    for (const p of this.pending.splice(0)) {
      if (!p.abandoned) {
        p.done();
        p.reject(closed());
      }
    }
    for (const w of this.waiters.splice(0)) {
      w.done();
      w.reject(closed());
    }
    const vs = [...this.vconns.values()];
    this.vconns.clear();
    // Unread messages stay readable, unless holding them is what went wrong:
    // a reconnect would otherwise start over the bound.
    const keep = !(reason instanceof BufferLimitError);
    for (const v of vs) {
      v.end(reason, keep);
    }
    this.owner.down(this, reason);
  }
}

/** performance.now(): monotonic milliseconds, in browsers and Node. */
function now(): number {
  return performance.now();
}
