// One virtual connection.
import { ClosedError, CodecError } from "./errors.js";
/**
 * VConn is one virtual connection to a server, opened by Client.dial or
 * received by Client.accept. Messages are read in one of two styles: async
 * iteration (or receive()), or an onmessage handler; setting onmessage hands
 * it the messages queued so far, in order.
 *
 * Unread messages count against maxUnreadBytes (this virtual connection) and
 * maxClientUnreadBytes (the whole client).
 */
export class VConn {
    /** The ConnID the gateway assigned. */
    id;
    /** The peer at the other end: the server dialed, or the server that opened it. */
    remoteID;
    /**
     * Resolves once the virtual connection is closed: with undefined when it
     * closed normally (either side closed it, or Client.close), or with the
     * error that closed it (BufferLimitError, CodecError, and for a lost
     * physical connection ConnectionError, ProtocolError or PingTimeoutError).
     * It never rejects.
     */
    closed;
    /** Called once when the virtual connection closes, with the same value as closed. */
    onclose = null;
    host;
    codec;
    queue = [];
    head = 0;
    unreadBytes = 0;
    waiters = [];
    handler = null;
    draining = false;
    open = true;
    reason;
    resolveClosed;
    /** @internal Created by Client. */
    constructor(host, id, remoteID, codec) {
        this.host = host;
        this.id = id;
        this.remoteID = remoteID;
        this.codec = codec;
        this.closed = new Promise((resolve) => {
            this.resolveClosed = resolve;
        });
    }
    /** "open", or "closed" once either side closed it or the client's connection went. */
    get state() {
        return this.open ? "open" : "closed";
    }
    /** Bytes received and not read yet. */
    get unread() {
        return this.unreadBytes;
    }
    /**
     * Sends one message as one data frame. It is queued and written with what
     * else is sent in the same tick, in order. Throws ClosedError once closed,
     * CodecError when the codec fails, MessageTooLargeError past maxPacket, and
     * BufferLimitError ("unsent") when the bytes not yet written would pass
     * maxUnsentBytes (nothing is sent then; sendAsync waits for room instead).
     */
    send(msg) {
        this.checkOpen();
        this.host.sendData(this, this.encode(msg));
    }
    /**
     * Sends like send, but when the unsent bytes are at their bound it waits
     * for room first. Rejects with ClosedError if the connection closes while
     * it waits, or with signal.reason when signal aborts.
     */
    async sendAsync(msg, options = {}) {
        this.checkOpen();
        await this.host.sendDataAsync(this, this.encode(msg), options.signal);
    }
    /**
     * The next message. Resolves with undefined once the virtual connection
     * closed normally and every message was read; rejects with the error that
     * closed it otherwise (after the messages received before it).
     */
    receive() {
        if (this.head < this.queue.length) {
            try {
                return Promise.resolve(this.decode(this.pop()));
            }
            catch (err) {
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
    async *[Symbol.asyncIterator]() {
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
    get onmessage() {
        return this.handler;
    }
    set onmessage(fn) {
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
    close() {
        if (!this.open) {
            this.dropQueue();
            return;
        }
        this.host.release(this);
        this.end(undefined, false);
    }
    /** @internal A data frame for this virtual connection. */
    deliver(bytes) {
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
    end(reason, keep) {
        if (!this.open) {
            return;
        }
        this.open = false;
        this.reason = reason;
        if (!keep) {
            this.dropQueue();
        }
        else if (this.handler) {
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
            }
            catch (err) {
                this.host.report(err);
            }
        }
    }
    checkOpen() {
        if (!this.open) {
            throw new ClosedError(`virtual connection ${this.id} is closed`, { cause: this.reason });
        }
    }
    encode(msg) {
        if (!this.codec) {
            if (!(msg instanceof Uint8Array)) {
                throw new TypeError("fastway: without a codec a message must be a Uint8Array");
            }
            return msg;
        }
        try {
            return this.codec.encode(msg);
        }
        catch (err) {
            throw new CodecError(`encoding a message for virtual connection ${this.id}`, { cause: err });
        }
    }
    /** Decodes bytes; a failure closes the virtual connection with a CodecError and throws it. */
    decode(bytes) {
        if (!this.codec) {
            return bytes;
        }
        try {
            return this.codec.decode(bytes);
        }
        catch (err) {
            const e = new CodecError(`decoding a message on virtual connection ${this.id}`, { cause: err });
            if (this.open) {
                this.host.release(this);
                this.end(e, false);
            }
            else {
                this.reason = e;
                this.dropQueue();
            }
            throw e;
        }
    }
    /** Decodes bytes and hands the message to ok, or the codec's error to fail. */
    hand(bytes, ok, fail) {
        let m;
        try {
            m = this.decode(bytes);
        }
        catch (err) {
            fail(err);
            return;
        }
        ok(m);
    }
    callHandler(bytes) {
        this.hand(bytes, (m) => {
            try {
                this.handler?.(m);
            }
            catch (err) {
                this.host.report(err);
            }
        }, () => { });
    }
    pop() {
        const b = this.queue[this.head];
        this.queue[this.head++] = EMPTY;
        if (this.head === this.queue.length) {
            this.queue = [];
            this.head = 0;
        }
        else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
            this.queue = this.queue.slice(this.head);
            this.head = 0;
        }
        this.unreadBytes -= b.length;
        this.host.unread(-b.length);
        return b;
    }
    scheduleDrain() {
        if (this.draining) {
            return;
        }
        this.draining = true;
        queueMicrotask(() => this.drain());
    }
    drain() {
        this.draining = true;
        try {
            while (this.handler && this.head < this.queue.length) {
                this.callHandler(this.pop());
            }
        }
        finally {
            this.draining = false;
        }
    }
    dropQueue() {
        if (this.unreadBytes > 0) {
            this.host.unread(-this.unreadBytes);
        }
        this.queue = [];
        this.head = 0;
        this.unreadBytes = 0;
        this.settleWaiters();
    }
    settleWaiters() {
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) {
            if (this.reason) {
                w.reject(this.reason);
            }
            else {
                w.resolve(undefined);
            }
        }
    }
}
const EMPTY = new Uint8Array(0);
//# sourceMappingURL=vconn.js.map