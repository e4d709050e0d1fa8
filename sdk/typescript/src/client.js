// The client: one logical connection to a gateway, over one physical
// connection at a time (a new one after each reconnect).
import { ClosedError, ConnectionError, FastwayError, TimeoutError } from "./errors.js";
import { Link } from "./link.js";
import { resolveOptions } from "./options.js";
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
export class Client {
    /** @internal */
    opts;
    /**
     * Resolves once the client is closed for good: undefined after close(),
     * otherwise the error that closed it (ConnectionError, ProtocolError,
     * PingTimeoutError, BufferLimitError; with reconnect, the last attempt's
     * error once maxAttempts ran out). It never rejects.
     */
    closed;
    /** Called once when the client closes for good, with the same value as closed. */
    onclose = null;
    /** Called before each reconnect attempt (reconnect option only). */
    onreconnecting = null;
    /** Called when a new physical connection is up after a loss: dial again here. */
    onreconnect = null;
    dialer;
    where;
    link;
    isClosed = false;
    reason;
    resolveClosed;
    unreadTotal = 0;
    reconnects = 0;
    acceptq = [];
    acceptWaiters = [];
    acceptHandler = null;
    linkWaiters = [];
    // Reconnect state.
    attempt = 0;
    retryTimer;
    retryAbort;
    /** @internal Use connect. */
    constructor(transport, dialer, opts) {
        this.opts = opts;
        this.dialer = dialer;
        this.where = transport.label;
        this.closed = new Promise((resolve) => {
            this.resolveClosed = resolve;
        });
        this.link = new Link(this, transport);
    }
    /** "open", "reconnecting" (between physical connections), or "closed". */
    get state() {
        return this.isClosed ? "closed" : this.link ? "open" : "reconnecting";
    }
    /** The gateway's URL or host:port. */
    get url() {
        return this.where;
    }
    /**
     * Opens a virtual connection to server serverID (any u32). Resolves with
     * the VConn once the gateway accepts; rejects with RefusedError when it
     * refuses (no such server, -ClientMaxConn reached), ClosedError when the
     * client or its connection closes first, TimeoutError or signal.reason.
     * Several dials may be in flight at once.
     */
    async dial(serverID, options = {}) {
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
    accept(options = {}) {
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
    get onaccept() {
        return this.acceptHandler;
    }
    set onaccept(fn) {
        this.acceptHandler = fn;
        while (fn && this.acceptq.length > 0) {
            this.call(fn, this.acceptq.shift().v);
        }
    }
    /**
     * Closes the client: what was sent is written out, then the connection
     * closes (a WebSocket with its closing handshake). Every virtual
     * connection closes normally (its unread messages stay readable); dials
     * and accepts still waiting reject with ClosedError. Idempotent.
     */
    close() {
        if (this.isClosed) {
            return;
        }
        this.isClosed = true;
        if (this.retryTimer !== undefined)
            clearTimeout(this.retryTimer);
        this.retryAbort?.abort(new ClosedError("the client is closed"));
        const link = this.link;
        this.link = null;
        link?.fail(undefined);
        this.finish(undefined);
    }
    /** A snapshot of the client's counters. */
    stats() {
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
    get unreadBytes() {
        return this.unreadTotal;
    }
    /** @internal */
    unread(delta) {
        this.unreadTotal += delta;
    }
    /** @internal */
    connected(link, v) {
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
    down(link, reason) {
        // Virtual connections of the lost link that nobody accepted: gone.
        this.acceptq = this.acceptq.filter((q) => {
            if (q.link !== link)
                return true;
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
    report(err) {
        queueMicrotask(() => {
            throw err;
        });
    }
    // ---- internals
    /** Closes the client for good with reason. */
    shut(reason) {
        this.isClosed = true;
        this.finish(reason);
    }
    finish(reason) {
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
        if (this.onclose)
            this.call(this.onclose, reason);
    }
    /** Schedules the next reconnect attempt after err. */
    retry(err) {
        const rc = this.opts.reconnect;
        if (!rc)
            return;
        this.attempt++;
        if (this.attempt > rc.maxAttempts) {
            this.shut(err);
            return;
        }
        const base = Math.min(rc.maxDelay, rc.initialDelay * Math.pow(rc.factor, this.attempt - 1));
        const delay = Math.round(base * (1 - rc.jitter * Math.random()));
        if (this.onreconnecting)
            this.call(this.onreconnecting, { attempt: this.attempt, delay, error: err });
        if (this.isClosed)
            return; // the handler closed the client
        this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.redial();
        }, delay);
    }
    /** One reconnect attempt. */
    redial() {
        const ac = new AbortController();
        this.retryAbort = ac;
        openTransport(this.dialer, this.where, this.opts.timeout, ac).then((t) => {
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
            if (this.onreconnect)
                this.call(this.onreconnect, undefined);
        }, (err) => {
            this.retryAbort = undefined;
            if (this.isClosed)
                return;
            this.retry(err instanceof Error ? err : new ConnectionError(String(err)));
        });
    }
    waitLink(options) {
        if (this.isClosed) {
            return Promise.reject(new ClosedError("the client is closed", { cause: this.reason }));
        }
        return this.wait(this.linkWaiters, options, "dial");
    }
    /** Waits in list until resolved, for at most options.timeout, or until options.signal aborts. */
    wait(list, options, what) {
        const { timeout, signal } = options;
        if (signal?.aborted) {
            return Promise.reject(signal.reason);
        }
        return new Promise((resolve, reject) => {
            let timer;
            const giveUp = (err) => {
                const i = list.indexOf(w);
                if (i >= 0)
                    list.splice(i, 1);
                w.done();
                reject(err);
            };
            const onAbort = () => giveUp(signal?.reason);
            const w = {
                resolve,
                reject,
                done: () => {
                    if (timer !== undefined)
                        clearTimeout(timer);
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
    call(fn, a) {
        try {
            fn(a);
        }
        catch (err) {
            this.report(err);
        }
    }
}
/**
 * Opens a transport with dialer within timeout ms. It rejects with
 * TimeoutError when the time runs out, and with the abort reason when ac is
 * aborted from outside.
 */
export function openTransport(dialer, where, timeout, ac) {
    const timer = setTimeout(() => ac.abort(new TimeoutError(`connecting to ${where}: no connection within ${timeout} ms`)), timeout);
    return dialer(ac.signal).then((t) => {
        clearTimeout(timer);
        return t;
    }, (err) => {
        clearTimeout(timer);
        if (ac.signal.aborted && ac.signal.reason instanceof FastwayError) {
            throw ac.signal.reason;
        }
        throw err instanceof FastwayError ? err : new ConnectionError(`connecting to ${where}: ${String(err)}`, { cause: err });
    });
}
/** Connects with dialer and returns the client once its first connection is open. */
export async function connectWith(dialer, where, options = {}) {
    const opts = resolveOptions(options);
    const t = await openTransport(dialer, where, opts.timeout, new AbortController());
    return new Client(t, dialer, opts);
}
//# sourceMappingURL=client.js.map