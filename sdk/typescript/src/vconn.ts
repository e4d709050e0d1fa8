// One virtual connection.

import type { Codec } from "./codec.js";
import { ClosedError, CodecError } from "./errors.js";

/** How a client knows a virtual connection. */
export interface VConnRef {
  readonly id: number;
}

/** What a virtual connection needs from its client. */
export interface VConnHost {
  /** Queues a data frame; throws ClosedError, MessageTooLargeError or BufferLimitError. */
  sendData(v: VConnRef, msg: Uint8Array): void;
  /** Queues a data frame once it fits the unsent bound, waiting for room. */
  sendDataAsync(v: VConnRef, msg: Uint8Array, signal: AbortSignal | undefined): Promise<void>;
  /** Local close (or a codec failure): forget v and queue Close(ConnID) to the gateway. */
  release(v: VConnRef): void;
  /** The unread bytes of a virtual connection changed by delta. */
  unread(delta: number): void;
  /** Reports an exception a user callback threw, without breaking the caller. */
  report(err: unknown): void;
}

/** What send and sendAsync take. */
export interface SendOptions {
  /** sendAsync stops waiting for room and rejects with signal.reason */
  signal?: AbortSignal;
}

type Waiter<T> = { resolve: (m: T | undefined) => void; reject: (err: unknown) => void };

/**
 * VConn is one virtual connection to a server, opened by Client.dial or
 * received by Client.accept. Messages are read in one of two styles: async
 * iteration (or receive()), or an onmessage handler; setting onmessage hands
 * it the messages queued so far, in order.
 *
 * Unread messages count against maxUnreadBytes (this virtual connection) and
 * maxClientUnreadBytes (the whole client).
 */
export class VConn<T = Uint8Array> implements AsyncIterable<T> {
  /** The ConnID the gateway assigned. */
  readonly id: number;
  /** The peer at the other end: the server dialed, or the server that opened it. */
  readonly remoteID: number;
  /**
   * Resolves once the virtual connection is closed: with undefined when it
   * closed normally (either side closed it, or Client.close), or with the
   * error that closed it (BufferLimitError, CodecError, and for a lost
   * physical connection ConnectionError, ProtocolError or PingTimeoutError).
   * It never rejects.
   */
  readonly closed: Promise<Error | undefined>;
  /** Called once when the virtual connection closes, with the same value as closed. */
  onclose: ((err: Error | undefined) => void) | null = null;

  private readonly host: VConnHost;
  private readonly codec: Codec<T> | undefined;
  private queue: Uint8Array[] = [];
  private head = 0;
  private unreadBytes = 0;
  private waiters: Waiter<T>[] = [];
  private handler: ((msg: T) => void) | null = null;
  private draining = false;
  private open = true;
  private reason: Error | undefined;
  private resolveClosed!: (err: Error | undefined) => void;

  /** @internal Created by Client. */
  constructor(host: VConnHost, id: number, remoteID: number, codec: Codec<T> | undefined) {
    this.host = host;
    this.id = id;
    this.remoteID = remoteID;
    this.codec = codec;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** "open", or "closed" once either side closed it or the client's connection went. */
  get state(): "open" | "closed" {
    return this.open ? "open" : "closed";
  }

  /** Bytes received and not read yet. */
  get unread(): number {
    return this.unreadBytes;
  }

  /**
   * Sends one message as one data frame. It is queued and written with what
   * else is sent in the same tick, in order. Throws ClosedError once closed,
   * CodecError when the codec fails, MessageTooLargeError past maxPacket, and
   * BufferLimitError ("unsent") when the bytes not yet written would pass
   * maxUnsentBytes (nothing is sent then; sendAsync waits for room instead).
   */
  send(msg: T): void {
    this.checkOpen();
    this.host.sendData(this, this.encode(msg));
  }

  /**
   * Sends like send, but when the unsent bytes are at their bound it waits
   * for room first. Rejects with ClosedError if the connection closes while
   * it waits, or with signal.reason when signal aborts.
   */
  async sendAsync(msg: T, options: SendOptions = {}): Promise<void> {
    this.checkOpen();
    await this.host.sendDataAsync(this, this.encode(msg), options.signal);
  }

  /**
   * The next message. Resolves with undefined once the virtual connection
   * closed normally and every message was read; rejects with the error that
   * closed it otherwise (after the messages received before it).
   */
  receive(): Promise<T | undefined> {
    if (this.head < this.queue.length) {
      try {
        return Promise.resolve(this.decode(this.pop()));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (!this.open) {
      return this.reason ? Promise.reject(this.reason) : Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Yields every message until the virtual connection closes: the loop ends
   * when it closed normally, and throws the error that closed it otherwise.
   * Leaving the loop early (break) leaves the virtual connection open.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      const m = await this.receive();
      if (m === undefined) {
        return;
      }
      yield m;
    }
  }

  /**
   * The message handler. Setting it delivers the messages queued so far (on
   * a microtask), then every message as it arrives; null goes back to
   * queueing. An exception it throws is reported as uncaught (like an event
   * listener's) and does not stop delivery.
   */
  get onmessage(): ((msg: T) => void) | null {
    return this.handler;
  }
  set onmessage(fn: ((msg: T) => void) | null) {
    this.handler = fn;
    if (fn && this.head < this.queue.length) {
      this.scheduleDrain();
    }
  }

  /**
   * Closes the virtual connection: unread messages are dropped, iteration
   * ends, send throws ClosedError. Close(ConnID) goes to the gateway behind
   * the frames already sent, so they are delivered first. Idempotent.
   */
  close(): void {
    if (!this.open) {
      this.dropQueue();
      return;
    }
    this.host.release(this);
    this.end(undefined, false);
  }

  /** @internal A data frame for this virtual connection. */
  deliver(bytes: Uint8Array): void {
    if (!this.open) {
      return;
    }
    if (this.head === this.queue.length) {
      const w = this.waiters.shift();
      if (w) {
        this.hand(bytes, (m) => w.resolve(m), (err) => w.reject(err));
        return;
      }
      if (this.handler && !this.draining) {
        this.callHandler(bytes);
        return;
      }
    }
    this.queue.push(bytes);
    this.unreadBytes += bytes.length;
    this.host.unread(bytes.length);
    if (this.handler) {
      this.scheduleDrain();
    }
  }

  /**
   * @internal Marks the virtual connection closed with reason (undefined: a
   * normal close). keep leaves the unread messages readable.
   */
  end(reason: Error | undefined, keep: boolean): void {
    if (!this.open) {
      return;
    }
    this.open = false;
    this.reason = reason;
    if (!keep) {
      this.dropQueue();
    } else if (this.handler) {
      this.drain();
    }
    if (this.head === this.queue.length) {
      this.settleWaiters();
    }
    this.resolveClosed(reason);
    const cb = this.onclose;
    if (cb) {
      try {
        cb(reason);
      } catch (err) {
        this.host.report(err);
      }
    }
  }

  private checkOpen(): void {
    if (!this.open) {
      throw new ClosedError(`virtual connection ${this.id} is closed`, { cause: this.reason });
    }
  }

  private encode(msg: T): Uint8Array {
    if (!this.codec) {
      if (!(msg instanceof Uint8Array)) {
        throw new TypeError("fastway: without a codec a message must be a Uint8Array");
      }
      return msg;
    }
    try {
      return this.codec.encode(msg);
    } catch (err) {
      throw new CodecError(`encoding a message for virtual connection ${this.id}`, { cause: err });
    }
  }

  /** Decodes bytes; a failure closes the virtual connection with a CodecError and throws it. */
  private decode(bytes: Uint8Array): T {
    if (!this.codec) {
      return bytes as T;
    }
    try {
      return this.codec.decode(bytes);
    } catch (err) {
      const e = new CodecError(`decoding a message on virtual connection ${this.id}`, { cause: err });
      if (this.open) {
        this.host.release(this);
        this.end(e, false);
      } else {
        this.reason = e;
        this.dropQueue();
      }
      throw e;
    }
  }

  /** Decodes bytes and hands the message to ok, or the codec's error to fail. */
  private hand(bytes: Uint8Array, ok: (m: T) => void, fail: (err: unknown) => void): void {
    let m: T;
    try {
      m = this.decode(bytes);
    } catch (err) {
      fail(err);
      return;
    }
    ok(m);
  }

  private callHandler(bytes: Uint8Array): void {
    this.hand(
      bytes,
      (m) => {
        try {
          this.handler?.(m);
        } catch (err) {
          this.host.report(err);
        }
      },
      () => {}, // the virtual connection closed with the error; onclose tells
    );
  }

  private pop(): Uint8Array {
    const b = this.queue[this.head] as Uint8Array;
    this.queue[this.head++] = EMPTY;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.unreadBytes -= b.length;
    this.host.unread(-b.length);
    return b;
  }

  private scheduleDrain(): void {
    if (this.draining) {
      return;
    }
    this.draining = true;
    queueMicrotask(() => this.drain());
  }

  private drain(): void {
    this.draining = true;
    try {
      while (this.handler && this.head < this.queue.length) {
        this.callHandler(this.pop());
      }
    } finally {
      this.draining = false;
    }
  }

  private dropQueue(): void {
    if (this.unreadBytes > 0) {
      this.host.unread(-this.unreadBytes);
    }
    this.queue = [];
    this.head = 0;
    this.unreadBytes = 0;
    this.settleWaiters();
  }

  private settleWaiters(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) {
      if (this.reason) {
        w.reject(this.reason);
      } else {
        w.resolve(undefined);
      }
    }
  }
}

const EMPTY = new Uint8Array(0);
