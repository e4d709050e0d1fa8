// Client options, their defaults and their checks.
import { DEFAULT_MAX_PACKET, SIZE_OF_CONN_ID } from "./wire.js";
/** Defaults: what an option left out means. Durations in milliseconds, sizes in bytes. */
export const defaults = {
    /** connect timeout, for the first connection and each reconnect attempt */
    timeout: 10_000,
    /** the gateway's default -MaxPacket */
    maxPacket: DEFAULT_MAX_PACKET,
    /** unread bytes of one virtual connection */
    maxUnreadBytes: 1 << 20,
    /** unread bytes of all virtual connections plus the frame being received */
    maxClientUnreadBytes: 8 << 20,
    /** bytes sent and not yet handed to the network */
    maxUnsentBytes: 4 << 20,
    /** virtual connections servers opened that accept has not returned */
    acceptBacklog: 1024,
    /** a Ping after this long without sending anything (the gateway's -ClientIdleTimeout is 30 s) */
    pingInterval: 10_000,
    /** how long nothing may arrive after a Ping */
    pingTimeout: 20_000,
    /** how long close() waits for a WebSocket's closing handshake */
    closeTimeout: 2_000,
};
/** Fills in defaults and checks ranges; a bad value throws RangeError. */
export function resolveOptions(o = {}) {
    const r = {
        timeout: o.timeout ?? defaults.timeout,
        codec: o.codec,
        maxPacket: o.maxPacket ?? defaults.maxPacket,
        maxUnreadBytes: o.maxUnreadBytes ?? defaults.maxUnreadBytes,
        maxClientUnreadBytes: o.maxClientUnreadBytes ?? defaults.maxClientUnreadBytes,
        maxUnsentBytes: o.maxUnsentBytes ?? defaults.maxUnsentBytes,
        acceptBacklog: o.acceptBacklog ?? defaults.acceptBacklog,
        pingInterval: o.pingInterval ?? defaults.pingInterval,
        pingTimeout: o.pingTimeout ?? defaults.pingTimeout,
        onPingTimeout: o.onPingTimeout,
        reconnect: undefined,
    };
    if (o.reconnect) {
        const b = o.reconnect === true ? {} : o.reconnect;
        r.reconnect = {
            initialDelay: b.initialDelay ?? 250,
            maxDelay: b.maxDelay ?? 10_000,
            factor: b.factor ?? 2,
            jitter: b.jitter ?? 0.5,
            maxAttempts: b.maxAttempts ?? Infinity,
        };
        const rc = r.reconnect;
        check(rc.initialDelay >= 0, "reconnect.initialDelay must be >= 0");
        check(rc.maxDelay >= rc.initialDelay, "reconnect.maxDelay must be >= initialDelay");
        check(rc.factor >= 1, "reconnect.factor must be >= 1");
        check(rc.jitter >= 0 && rc.jitter <= 1, "reconnect.jitter must be in [0, 1]");
        check(rc.maxAttempts >= 1, "reconnect.maxAttempts must be >= 1");
    }
    check(r.timeout > 0, "timeout must be > 0");
    check(Number.isInteger(r.maxPacket) && r.maxPacket >= 9 && r.maxPacket <= 0xffffffff, "maxPacket must be an integer in [9, 2^32-1]");
    const largest = r.maxPacket - SIZE_OF_CONN_ID;
    check(r.maxUnreadBytes >= largest, `maxUnreadBytes must hold one largest message (${largest} bytes)`);
    check(r.maxClientUnreadBytes >= r.maxUnreadBytes + r.maxPacket + 4, "maxClientUnreadBytes must be >= maxUnreadBytes + maxPacket + 4");
    check(r.maxUnsentBytes >= r.maxPacket + 4, `maxUnsentBytes must hold one largest frame (${r.maxPacket + 4} bytes)`);
    check(Number.isInteger(r.acceptBacklog) && r.acceptBacklog >= 0, "acceptBacklog must be an integer >= 0");
    check(r.pingInterval >= 0 && r.pingTimeout >= 0, "pingInterval and pingTimeout must be >= 0");
    return r;
}
function check(ok, what) {
    if (!ok) {
        throw new RangeError(`fastway: ${what}`);
    }
}
//# sourceMappingURL=options.js.map