// One physical connection of a client: its transport, parser, virtual
// connections, pending dials, send buffer and keep-alive.
import { BufferLimitError, ClosedError, ConnectionError, FastwayError, MessageTooLargeError, PingTimeoutError, ProtocolError, RefusedError, TimeoutError, } from "./errors.js";
import { VConn } from "./vconn.js";
import { Cmd, FrameParser, HEADER_SIZE, SIZE_OF_CONN_ID, commandSize, encodeCommand, putHeader } from "./wire.js";
/** The smallest send buffer allocated. */
const minOutbox = 16 * 1024;
/** How often room for sendAsync is polled on transports without drain events, ms. */
const roomPoll = 10;
export class Link {
    vconns = new Map();
    owner;
    opts;
    transport;
    parser;
    pending = [];
    waiters = [];
    roomTimer;
    dead = false;
    // Send buffer: frames written in this tick, handed to the transport in one write.
    out = null;
    outLen = 0;
    flushQueued = false;
    // Keep-alive state.
    timer;
    lastSend = now();
    recvCount = 0;
    pinging = false;
    pingAt = 0;
    pingMark = 0;
    constructor(owner, transport) {
        this.owner = owner;
        this.opts = owner.opts;
        this.transport = transport;
        this.parser = new FrameParser(this.opts.maxPacket);
        transport.ondata = (chunk) => this.onData(chunk);
        transport.ondrain = () => this.checkRoom();
        transport.onclose = (err) => this.fail(err instanceof FastwayError
            ? err
            : new ConnectionError(`${transport.label}: ${err ? `connection lost: ${err.message}` : "the gateway closed the connection"}`, err ? { cause: err } : {}));
        if (this.opts.pingInterval > 0) {
            this.timer = setTimeout(() => this.keepalive(), this.opts.pingInterval);
        }
    }
    /** Bytes sent and not yet written to the network. */
    get unsent() {
        return this.outLen + (this.dead ? 0 : this.transport.bufferedAmount);
    }
    get pendingDials() {
        return this.pending.length;
    }
    get label() {
        return this.transport.label;
    }
    // ---- dialing
    dial(remoteID, timeout, signal) {
        const size = commandSize(Cmd.Dial);
        if (this.unsent + size > this.opts.maxUnsentBytes) {
            return Promise.reject(new BufferLimitError("unsent", this.opts.maxUnsentBytes, this.unsent + size));
        }
        return new Promise((resolve, reject) => {
            let timer;
            const p = {
                remoteID,
                resolve,
                reject,
                abandoned: false,
                done: () => {
                    if (timer !== undefined)
                        clearTimeout(timer);
                    signal?.removeEventListener("abort", onAbort);
                },
            };
            const giveUp = (err) => {
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
    sendData(v, msg) {
        const size = this.checkData(v, msg);
        if (this.waiters.length > 0 || this.unsent + size > this.opts.maxUnsentBytes) {
            throw new BufferLimitError("unsent", this.opts.maxUnsentBytes, this.unsent + size);
        }
        this.writeData(v.id, msg);
    }
    sendDataAsync(v, msg, signal) {
        const size = this.checkData(v, msg);
        if (this.waiters.length === 0 && this.unsent + size <= this.opts.maxUnsentBytes) {
            this.writeData(v.id, msg);
            return Promise.resolve();
        }
        if (signal?.aborted) {
            return Promise.reject(signal.reason);
        }
        return new Promise((resolve, reject) => {
            const onAbort = () => {
                const i = this.waiters.indexOf(w);
                if (i >= 0)
                    this.waiters.splice(i, 1);
                w.done();
                reject(signal?.reason);
                this.checkRoom(); // the next one may fit now
            };
            const w = { v, msg, resolve, reject, done: () => signal?.removeEventListener("abort", onAbort) };
            signal?.addEventListener("abort", onAbort, { once: true });
            this.waiters.push(w);
            this.pollRoom();
        });
    }
    release(v) {
        if (this.vconns.get(v.id) === v) {
            this.vconns.delete(v.id);
            if (!this.dead) {
                this.writeCommand({ type: Cmd.Close, connID: v.id, remoteID: 0 });
            }
        }
    }
    unread(delta) {
        this.owner.unread(delta);
    }
    report(err) {
        this.owner.report(err);
    }
    // ---- receiving (FrameSink)
    onData(chunk) {
        if (this.dead) {
            return;
        }
        this.recvCount++;
        try {
            this.parser.push(chunk, this);
        }
        catch (err) {
            this.fail(err instanceof Error ? err : new ProtocolError(String(err)));
            return;
        }
        const held = this.owner.unreadBytes + this.parser.pendingBytes;
        if (!this.dead && held > this.opts.maxClientUnreadBytes) {
            this.fail(new BufferLimitError("clientUnread", this.opts.maxClientUnreadBytes, held));
        }
    }
    data(connID, msg) {
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
    command(cmd) {
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
    dialReply(cmd) {
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
        const v = new VConn(this, cmd.connID, cmd.remoteID, this.opts.codec);
        this.vconns.set(v.id, v);
        p.resolve(v);
    }
    connect(cmd) {
        if (cmd.connID === 0 || this.vconns.has(cmd.connID)) {
            throw new ProtocolError(`bad Connect: ConnID ${cmd.connID} is 0 or already live`);
        }
        const v = new VConn(this, cmd.connID, cmd.remoteID, this.opts.codec);
        this.vconns.set(v.id, v); // first, so that an onaccept handler may send at once
        if (!this.owner.connected(this, v)) {
            this.vconns.delete(v.id);
            this.writeCommand({ type: Cmd.Close, connID: cmd.connID, remoteID: 0 });
        }
    }
    // ---- sending
    checkData(v, msg) {
        if (this.dead || this.vconns.get(v.id) !== (v)) {
            throw new ClosedError(`virtual connection ${v.id} is closed`);
        }
        if (SIZE_OF_CONN_ID + msg.length > this.opts.maxPacket) {
            throw new MessageTooLargeError(`${msg.length}-byte message, maxPacket ${this.opts.maxPacket}`);
        }
        return HEADER_SIZE + msg.length;
    }
    writeData(connID, msg) {
        const at = this.reserve(HEADER_SIZE + msg.length);
        const out = this.out;
        putHeader(out, at, connID, msg.length);
        out.set(msg, at + HEADER_SIZE);
    }
    writeCommand(cmd) {
        const frame = encodeCommand(cmd);
        const at = this.reserve(frame.length);
        this.out.set(frame, at);
    }
    /** Makes room for n bytes in the send buffer and returns where they go. */
    reserve(n) {
        const need = this.outLen + n;
        if (this.out === null || need > this.out.length) {
            const grown = new Uint8Array(Math.max(minOutbox, need, this.out ? this.out.length * 2 : 0));
            if (this.out)
                grown.set(this.out.subarray(0, this.outLen));
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
    flush() {
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
    checkRoom() {
        while (!this.dead) {
            const w = this.waiters[0];
            if (!w) {
                break;
            }
            const size = HEADER_SIZE + w.msg.length;
            if (this.unsent + size > this.opts.maxUnsentBytes) {
                this.pollRoom();
                return;
            }
            this.waiters.shift();
            w.done();
            if (this.vconns.get(w.v.id) !== (w.v)) {
                w.reject(new ClosedError(`virtual connection ${w.v.id} is closed`));
                continue;
            }
            this.writeData(w.v.id, w.msg);
            w.resolve();
        }
    }
    /** Polls for room while someone waits, when the transport has no drain events. */
    pollRoom() {
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
    keepalive() {
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
            }
            catch (err) {
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
    fail(reason) {
        if (this.dead) {
            return;
        }
        if (reason === undefined) {
            this.flush();
        }
        this.dead = true;
        this.out = null;
        this.outLen = 0;
        if (this.timer !== undefined)
            clearTimeout(this.timer);
        if (this.roomTimer !== undefined)
            clearTimeout(this.roomTimer);
        this.transport.ondata = () => { };
        this.transport.ondrain = () => { };
        this.transport.onclose = () => { };
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
function now() {
    return performance.now();
}
//# sourceMappingURL=link.js.map