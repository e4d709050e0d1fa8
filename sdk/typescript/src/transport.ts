// The byte stream under a client: a WebSocket or a TCP (or TLS) socket.

/**
 * Transport is one physical connection to the gateway carrying the byte
 * stream of PROTOCOL.md §1. The client sets the handlers right after the
 * transport opens, and calls nothing after close().
 */
export interface Transport {
  /** Queues bytes to be written; the transport may keep data until written. */
  write(data: Uint8Array): void;
  /** Bytes accepted by write and not yet handed to the network. */
  readonly bufferedAmount: number;
  /**
   * Whether ondrain is called when bufferedAmount falls (Node sockets). When
   * false the client polls bufferedAmount while someone waits for room.
   */
  readonly drainEvents: boolean;
  /** Closes the connection; onclose still runs once it is down. */
  close(): void;
  /** Bytes received, in order, in chunks of any size. */
  ondata: (chunk: Uint8Array) => void;
  /** bufferedAmount fell to a low mark. */
  ondrain: () => void;
  /** The connection is down: err is why, or undefined after a clean close. Runs once. */
  onclose: (err: Error | undefined) => void;
  /** A description for errors: the URL or host:port. */
  readonly label: string;
}

/**
 * Dialer opens a new transport: once at connect, again at each reconnect. It
 * gives up and rejects when signal aborts (the connect timeout or close()).
 */
export type Dialer = (signal: AbortSignal) => Promise<Transport>;

/** Where the gateway is: a URL, or a host and port. */
export type Target = string | { host: string; port: number; tls?: boolean; path?: string };

/** Splits "ws://h:p/x", "tcp://h:p" and the like, with the scheme's default port. */
export function parseURL(url: string): { scheme: string; host: string; port: number; path: string } {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?([/?][^#]*)?$/i.exec(url);
  if (!m) {
    throw new TypeError(`fastway: not a URL: ${url}`);
  }
  const scheme = (m[1] as string).toLowerCase();
  let host = m[2] as string;
  if (host.startsWith("[")) {
    host = host.slice(1, -1);
  }
  const defaults: Record<string, number> = { ws: 80, wss: 443 };
  const port = m[3] !== undefined ? Number(m[3]) : defaults[scheme];
  if (port === undefined || !(port > 0 && port < 65536)) {
    throw new TypeError(`fastway: no valid port in ${url}`);
  }
  let path = m[4] ?? "/";
  if (path.startsWith("?")) {
    path = "/" + path;
  }
  return { scheme, host, port, path };
}

/** The host:port form, IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
