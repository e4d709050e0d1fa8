// Error types. Every error the SDK produces is a FastwayError, so callers can
// tell them from their own with `instanceof`; each kind has a class of its own.
/** The base class of every error the SDK produces. */
export class FastwayError extends Error {
    name = "FastwayError";
    constructor(message, options) {
        super(message.startsWith("fastway:") ? message : `fastway: ${message}`, options);
    }
}
/**
 * An operation on a client or virtual connection that is closed: send, dial,
 * accept, or a dial or accept still waiting when it closed. `cause` is why it
 * closed (undefined after a plain close()).
 */
export class ClosedError extends FastwayError {
    name = "ClosedError";
}
/** The gateway answered a Dial with Refuse: no such server, or -ClientMaxConn reached. */
export class RefusedError extends FastwayError {
    name = "RefusedError";
    /** The server ID that was dialed. */
    remoteID;
    constructor(remoteID) {
        super(`dial refused: remote ${remoteID}`);
        this.remoteID = remoteID;
    }
}
/**
 * The peer broke the protocol (a malformed frame, a Length past maxPacket, a
 * misplaced command, a text WebSocket message). The physical connection closes.
 */
export class ProtocolError extends FastwayError {
    name = "ProtocolError";
}
/** Nothing arrived within pingTimeout of a Ping, and onPingTimeout did not keep the client open. */
export class PingTimeoutError extends FastwayError {
    name = "PingTimeoutError";
    constructor() {
        super("keep-alive timed out");
    }
}
/** connect, dial or accept did not finish within its timeout. */
export class TimeoutError extends FastwayError {
    name = "TimeoutError";
}
/** The physical connection to the gateway failed or was closed by the gateway. */
export class ConnectionError extends FastwayError {
    name = "ConnectionError";
}
/**
 * A byte bound was exceeded:
 * - "vconnUnread": one virtual connection's unread messages passed
 *   maxUnreadBytes; that virtual connection is closed (on both sides), its
 *   siblings carry on.
 * - "clientUnread": the unread bytes of all virtual connections (and the frame
 *   being received) passed maxClientUnreadBytes; the client closes.
 * - "unsent": send would take the bytes not yet written to the network past
 *   maxUnsentBytes; nothing was sent, the connection stays open.
 */
export class BufferLimitError extends FastwayError {
    name = "BufferLimitError";
    bound;
    /** The bound, in bytes. */
    limit;
    /** The bytes that would have been held. */
    size;
    constructor(bound, limit, size) {
        super(`${bound} bytes would reach ${size}, past the bound of ${limit}`);
        this.bound = bound;
        this.limit = limit;
        this.size = size;
    }
}
/** A message does not fit in maxPacket (Length = 4 + message bytes). */
export class MessageTooLargeError extends FastwayError {
    name = "MessageTooLargeError";
}
/** The codec failed to encode a message (send throws it) or to decode one (the virtual connection closes with it). */
export class CodecError extends FastwayError {
    name = "CodecError";
}
//# sourceMappingURL=errors.js.map