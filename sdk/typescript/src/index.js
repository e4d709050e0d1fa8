// fastway-client: the browser entry (no Node.js imports). In Node.js, import
// "fastway-client/node" instead: it adds a WebSocket client of its own and
// raw TCP.
import { connectWith } from "./client.js";
import { webSocketDialer, webSocketURL } from "./websocket.js";
export { Client, connectWith } from "./client.js";
export { VConn } from "./vconn.js";
export { bytesCodec, jsonCodec, textCodec } from "./codec.js";
export * from "./errors.js";
export { defaults } from "./options.js";
export { SUBPROTOCOL, webSocketDialer, webSocketURL } from "./websocket.js";
export * as wire from "./wire.js";
/**
 * Connects to a gateway's WebSocket listener and resolves once the
 * connection is open: target is a ws:// or wss:// URL, or {host, port, tls?,
 * path?}. Rejects with TimeoutError after options.timeout (10 s), or
 * ConnectionError.
 */
export function connect(target, options = {}) {
    let url;
    try {
        url = webSocketURL(target);
    }
    catch (err) {
        return Promise.reject(err);
    }
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (!WS) {
        return Promise.reject(new TypeError("fastway: no global WebSocket here; in Node.js import fastway-client/node"));
    }
    return connectWith(webSocketDialer(url, WS), url, options);
}
//# sourceMappingURL=index.js.map