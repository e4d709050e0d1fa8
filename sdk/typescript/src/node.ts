// fastway-client/node: the Node.js entry. Everything of the browser entry,
// and a connect that speaks WebSocket with a client of its own (Node 20 has
// no global WebSocket) or raw TCP and TLS to the gateway's client port.

import type * as tls from "node:tls";
import { type Client, connectWith } from "./client.js";
import type { ClientOptions } from "./options.js";
import { type Target, hostPort, parseURL } from "./transport.js";
import { tcpDialer } from "./node/socket.js";
import { webSocketDialer } from "./node/ws.js";

export * from "./index.js";
export { connect as connectBrowser } from "./index.js";
export { tcpDialer, SocketTransport } from "./node/socket.js";
export {
  type NodeWebSocketOptions,
  WSFrameReader,
  type WSFrameSink,
  WSProtocolError,
  WebSocketTransport,
  checkResponse,
  encodeClientFrame,
  webSocketDialer as nodeWebSocketDialer,
} from "./node/ws.js";

/** Options of the Node connect. */
export interface NodeConnectOptions<T> extends ClientOptions<T> {
  /** TLS options (ca, rejectUnauthorized, servername, ...) for wss://, tls:// and {tls: true}. */
  tls?: tls.ConnectionOptions;
  /** WebSocket only: the Origin header (the gateway checks it against -ClientWSOrigins); default none. */
  origin?: string;
  /** WebSocket only: extra request headers. */
  headers?: Record<string, string>;
}

/**
 * Connects to a gateway and resolves once the connection is open. target is
 * - "ws://host:port/path" or "wss://...": the gateway's WebSocket listener
 *   (-ClientWSAddr), with this package's own WebSocket client;
 * - "tcp://host:port", "tls://host:port", or {host, port, tls?}: the
 *   gateway's client port (-ClientAddr) over raw TCP, or TLS.
 * Rejects with TimeoutError after options.timeout (10 s), or ConnectionError.
 */
export function connect<T = Uint8Array>(target: Target, options: NodeConnectOptions<T> = {}): Promise<Client<T>> {
  try {
    if (typeof target === "string") {
      const u = parseURL(target);
      switch (u.scheme) {
        case "ws":
        case "wss":
          return connectWith<T>(webSocketDialer(target, wsOptions(options)), target, options);
        case "tcp":
        case "tls":
          return connectWith<T>(tcpDialer(u.host, u.port, u.scheme === "tls" ? (options.tls ?? {}) : undefined), target, options);
      }
      throw new TypeError(`fastway: unknown scheme in ${target} (ws, wss, tcp or tls)`);
    }
    const d = tcpDialer(target.host, target.port, target.tls ? (options.tls ?? {}) : undefined);
    return connectWith<T>(d, `${target.tls ? "tls" : "tcp"}://${hostPort(target.host, target.port)}`, options);
  } catch (err) {
    return Promise.reject(err);
  }
}

function wsOptions<T>(o: NodeConnectOptions<T>) {
  return {
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.origin !== undefined ? { origin: o.origin } : {}),
    ...(o.headers ? { headers: o.headers } : {}),
  };
}
