// The client: one logical connection to a gateway, over one physical
// connection at a time (a new one after each reconnect).

import { ClosedError, ConnectionError, FastwayError, TimeoutError } from "./errors.js";
import { Link, type LinkOwner } from "./link.js";
import { type ClientOptions, type Resolved, resolveOptions } from "./options.js";
import type { Dialer, Transport } from "./transport.js";
import type { VConn } from "./vconn.js";

/** What dial and accept take. */
export interface WaitOptions {
  /** ms to wait before rejecting with TimeoutError; default: no limit */
  timeout?: number;
  /** stops the wait; the call rejects with signal.reason */
  signal?: AbortSignal;
}

/** Handed to onreconnecting before each reconnect attempt. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a loss */
  attempt: number;
  /** ms until this attempt */
  delay: number;
  /** why the last connection (or attempt) failed */
  error: Error;
}

/** A snapshot of a client's counters. */
export interface ClientStats {
  state: Client["state"];
  /** open virtual connections on the current physical connection */
  vconns: number;
  /** dials waiting for the gateway's answer */
  pendingDials: number;
  /** bytes received and not read, over all virtual connections */
  unreadBytes: number;
  /** bytes sent and not yet written to the network */
  unsentBytes: number;
  /** physical connections opened after the first one */
  reconnects: number;
}

interface Waiter<V> {
  resolve: (v: V) => void;
  reject: (err: unknown) => void;
  done: () => void;
}

/**
 * Client is a connection to a fastway gateway's client port, carrying
 * virtual connections to servers. Get one from connect.
 *
 * With the reconnect option, a lost physical connection is replaced by a new
 * one, with backoff. The virtual connections of the lost one are closed (with
 * the error that lost it): the gateway forgets them, and the servers see them
 * closed. Dialing again is the application's choice, typically in
 * onreconnect. While reconnecting, dial waits for the new connection.
 */
export class Client<T = Uint8Array> implements LinkOwner<T> {
  /** @internal */
  readonly opts: Resolved<T>;
  /**
   * Resolves once the client is closed for good: undefined after close(),
   * otherwise the error that closed it (ConnectionError, ProtocolError,
   * PingTimeoutError, BufferLimitError; with reconnect, the last attempt's
   * error once maxAttempts ran out). It never rejects.
   */
  readonly closed: Promise<Error | undefined>;
  /** Called once when the client closes for good, with the same value as closed. */
  onclose: ((err: Error | undefined) => void) | null = null;
  /** Called before each reconnect attempt (reconnect option only). */
  onreconnecting: ((info: ReconnectInfo) => void) | null = null;
  /** Called when a new physical connection is up after a loss: dial again here. */
  onreconnect: (() => void) | null = null;

  private readonly dialer: Dialer;
  private readonly where: string;
  private link: Link<T> | null;
  private isClosed = false;
  private reason: Error | undefined;
  private resolveClosed!: (err: Error | undefined) => void;
  private unreadTotal = 0;
  private reconnects = 0;

  private acceptq: { link: Link<T>; v: VConn<T> }[] = [];
  private acceptWaiters: Waiter<VConn<T>>[] = [];
  private acceptHandler: ((v: VConn<T>) => void) | null = null;
  private linkWaiters: Waiter<Link<T>>[] = [];

  // Reconnect state.
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryAbort: AbortController | undefined;

  /** @internal Use connect. */
  constructor(transport: Transport, dialer: Dialer, opts: Resolved<T>) {
    this.opts = opts;
    this.dialer = dialer;
    this.where = transport.label;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.link = new Link(this, transport);
  }

  /** "open", "reconnecting" (between physical connections), or "closed". */
  get state(): "open" | "reconnecting" | "closed" {
    return this.isClosed ? "closed" : this.link ? "open" : "reconnecting";
  }

  /** The gateway's URL or host:port. */
  get url(): string {
    return this.where;
  }

  /**
   * Opens a virtual connection to server serverID (any u32). Resolves with
   * the VConn once the gateway accepts; rejects with RefusedError when it
   * refuses (no such server, -ClientMaxConn reached), ClosedError when the
   * client or its connection closes first, TimeoutError or signal.reason.
   * Several dials may be in flight at once.
   */
  async dial(serverID: number, options: WaitOptions = {}): Promise<VConn<T>> {
    if (!Number.isInteger(serverID) || serverID < 0 || serverID > 0xffffffff) {
      throw new RangeError(`fastway: server ID ${serverID} is not a u32`);
    }
    const started = performance.now();
    let link = this.link;
    if (!link) {
      link = await this.waitLink(options);
    }
    let timeout = options.timeout;
    if (timeout !== undefined) {
      timeout = Math.max(0, timeout - (performance.now() - started));
    }
    return link.dial(serverID, timeout, options.signal);
  }

  /**
   * The next virtual connection a server opened to this client (a server
   * dials a client by the ID the gateway gave it, which servers learn as a
   * VConn's remote ID). Rejects with ClosedError once the client is closed,
   * TimeoutError or signal.reason. Not used when onaccept is set.
   */
  accept(options: WaitOptions = {}): Promise<VConn<T>> {
    const q = this.acceptq.shift();
    if (q) {
      return Promise.resolve(q.v);
    }
    if (this.isClosed) {
      return Promise.reject(new ClosedError("the client is closed", { cause: this.reason }));
    }
    return this.wait(this.acceptWaiters, options, "accept");
  }

  /**
   * The handler of virtual connections servers open, instead of accept.
   * Setting it hands it those waiting for accept.
   */
  get onaccept(): ((v: VConn<T>) => void) | null {
    return this.acceptHandler;
  }
  set onaccept(fn: ((v: VConn<T>) => void) | null) {
    this.acceptHandler = fn;
    while (fn && this.acceptq.length > 0) {
      this.call(fn, (this.acceptq.shift() as { v: VConn<T> }).v);
    }
  }

  /**
   * Closes the client: what was sent is written out, then the connection
   * closes (a WebSocket with its closing handshake). Every virtual
   * connection closes normally (its unread messages stay readable); dials
   * and accepts still waiting reject with ClosedError. Idempotent.
   */
  close(): void {
    if (this.isClosed) {
      return;
    }
    this.isClosed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryAbort?.abort(new ClosedError("the client is closed"));
    const link = this.link;
    this.link = null;
    link?.fail(undefined);
    this.finish(undefined);
  }

  /** A snapshot of the client's counters. */
  stats(): ClientStats {
    return {
      state: this.state,
      vconns: this.link?.vconns.size ?? 0,
      pendingDials: this.link?.pendingDials ?? 0,
      unreadBytes: this.unreadTotal,
      unsentBytes: this.link?.unsent ?? 0,
      reconnects: this.reconnects,
    };
  }

  // ---- LinkOwner

  /** @internal */
  get unreadBytes(): number {
    return this.unreadTotal;
  }

  /** @internal */
  unread(delta: number): void {
    this.unreadTotal += delta;
  }

  /** @internal */
  connected(link: Link<T>, v: VConn<T>): boolean {
    const w = this.acceptWaiters.shift();
    if (w) {
      w.done();
      w.resolve(v);
      return true;
    }
    if (this.acceptHandler) {
      this.call(this.acceptHandler, v);
      return true;
    }
    if (this.acceptq.length >= this.opts.acceptBacklog) {
      return false;
    }
    this.acceptq.push({ link, v });
    return true;
  }

  /** @internal */
  down(link: Link<T>, reason: Error | undefined): void {
    // Virtual connections of the lost link that nobody accepted: gone.
    this.acceptq = this.acceptq.filter((q) => {
      if (q.link !== link) return true;
      q.v.close();
      return false;
    });
    if (this.link !== link) {
      return; // close() took it down
    }
    this.link = null;
    if (reason === undefined || this.isClosed) {
      return;
    }
    if (this.opts.reconnect) {
      this.retry(reason);
      return;
    }
    this.shut(reason);
  }

  /** @internal */
  report(err: unknown): void {
    queueMicrotask(() => {
      throw err;
    });
  }

  // ---- internals

  /** Closes the client for good with reason. */
  private shut(reason: Error): void {
    this.isClosed = true;
    this.finish(reason);
  }

  private finish(reason: Error | undefined): void {
    this.reason = reason;
    const closed = () => new ClosedError("the client is closed", { cause: reason });
    for (const w of this.acceptWaiters.splice(0)) {
      w.done();
      w.reject(closed());
    }
    for (const w of this.linkWaiters.splice(0)) {
      w.done();
      w.reject(closed());
    }
    for (const q of this.acceptq.splice(0)) {
      q.v.close();
    }
    this.resolveClosed(reason);
    if (this.onclose) this.call(this.onclose, reason);
  }

  /** Schedules the next reconnect attempt after err. */
  private retry(err: Error): void {
    const rc = this.opts.reconnect;
    if (!rc) return;
    this.attempt++;
    if (this.attempt > rc.maxAttempts) {
      this.shut(err);
      return;
    }
    const base = Math.min(rc.maxDelay, rc.initialDelay * Math.pow(rc.factor, this.attempt - 1));
    const delay = Math.round(base * (1 - rc.jitter * Math.random()));
    if (this.onreconnecting) this.call(this.onreconnecting, { attempt: this.attempt, delay, error: err });
    if (this.isClosed) return; // the handler closed the client
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.redial();
    }, delay);
  }

  /** One reconnect attempt. */
  private redial(): void {
    const ac = new AbortController();
    this.retryAbort = ac;
    openTransport(this.dialer, this.where, this.opts.timeout, ac).then(
      (t) => {
        this.retryAbort = undefined;
        if (this.isClosed) {
          t.close();
          return;
        }
        this.attempt = 0;
        this.reconnects++;
        const link = new Link(this, t);
        this.link = link;
        for (const w of this.linkWaiters.splice(0)) {
          w.done();
          w.resolve(link);
        }
        if (this.onreconnect) this.call(this.onreconnect, undefined);
      },
      (err: unknown) => {
        this.retryAbort = undefined;
        if (this.isClosed) return;
        this.retry(err instanceof Error ? err : new ConnectionError(String(err)));
      },
    );
  }

  private waitLink(options: WaitOptions): Promise<Link<T>> {
    if (this.isClosed) {
      return Promise.reject(new ClosedError("the client is closed", { cause: this.reason }));
    }
    return this.wait(this.linkWaiters, options, "dial");
  }

  /** Waits in list until resolved, for at most options.timeout, or until options.signal aborts. */
  private wait<V>(list: Waiter<V>[], options: WaitOptions, what: string): Promise<V> {
    const { timeout, signal } = options;
    if (signal?.aborted) {
      return Promise.reject(signal.reason);
    }
    return new Promise<V>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const giveUp = (err: unknown) => {
        const i = list.indexOf(w);
        if (i >= 0) list.splice(i, 1);
        w.done();
        reject(err);
      };
      const onAbort = () => giveUp(signal?.reason);
      const w: Waiter<V> = {
        resolve,
        reject,
        done: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => giveUp(new TimeoutError(`${what}: nothing within ${timeout} ms`)), timeout);
      }
      list.push(w);
    });
  }

  /** Runs a user callback; what it throws is reported, not thrown here. */
  private call<A>(fn: (a: A) => void, a: A): void {
    try {
      fn(a);
    } catch (err) {
      this.report(err);
    }
  }
}

/**
 * Opens a transport with dialer within timeout ms. It rejects with
 * TimeoutError when the time runs out, and with the abort reason when ac is
 * aborted from outside.
 */
export function openTransport(dialer: Dialer, where: string, timeout: number, ac: AbortController): Promise<Transport> {
  const timer = setTimeout(() => ac.abort(new TimeoutError(`connecting to ${where}: no connection within ${timeout} ms`)), timeout);
  return dialer(ac.signal).then(
    (t) => {
      clearTimeout(timer);
      return t;
    },
    (err: unknown) => {
      clearTimeout(timer);
      if (ac.signal.aborted && ac.signal.reason instanceof FastwayError) {
        throw ac.signal.reason;
      }
      throw err instanceof FastwayError ? err : new ConnectionError(`connecting to ${where}: ${String(err)}`, { cause: err });
    },
  );
}

/** Connects with dialer and returns the client once its first connection is open. */
export async function connectWith<T>(dialer: Dialer, where: string, options: ClientOptions<T> = {}): Promise<Client<T>> {
  const opts = resolveOptions(options);
  const t = await openTransport(dialer, where, opts.timeout, new AbortController());
  return new Client<T>(t, dialer, opts);
}
