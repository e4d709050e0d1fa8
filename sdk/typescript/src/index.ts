// fastway-client: the browser entry (no Node.js imports). In Node.js, import
// "fastway-client/node" instead: it adds a WebSocket client of its own and
// raw TCP.

import { type Client, connectWith } from "./client.js";
import type { ClientOptions } from "./options.js";
import type { Target } from "./transport.js";
import { type WebSocketConstructor, webSocketDialer, webSocketURL } from "./websocket.js";

export { Client, type ClientStats, type ReconnectInfo, type WaitOptions, connectWith } from "./client.js";
export { VConn, type SendOptions } from "./vconn.js";
export { type Codec, bytesCodec, jsonCodec, textCodec } from "./codec.js";
export * from "./errors.js";
export { type ClientOptions, type ReconnectOptions, defaults } from "./options.js";
export type { Dialer, Target, Transport } from "./transport.js";
export { SUBPROTOCOL, type WebSocketConstructor, type WebSocketLike, webSocketDialer, webSocketURL } from "./websocket.js";
export * as wire from "./wire.js";

/** Options of the browser connect. */
export interface ConnectOptions<T> extends ClientOptions<T> {
  /** the WebSocket constructor; default: globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
}

/**
 * Connects to a gateway's WebSocket listener and resolves once the
 * connection is open: target is a ws:// or wss:// URL, or {host, port, tls?,
 * path?}. Rejects with TimeoutError after options.timeout (10 s), or
 * ConnectionError.
 */
export function connect<T = Uint8Array>(target: Target, options: ConnectOptions<T> = {}): Promise<Client<T>> {
  let url: string;
  try {
    url = webSocketURL(target);
  } catch (err) {
    return Promise.reject(err);
  }
  const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WS) {
    return Promise.reject(new TypeError("fastway: no global WebSocket here; in Node.js import fastway-client/node"));
  }
  return connectWith<T>(webSocketDialer(url, WS), url, options);
}
