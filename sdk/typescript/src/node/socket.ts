// Raw TCP (and TLS) to the gateway's client port, for Node.js.

import * as net from "node:net";
import * as tls from "node:tls";
import { ConnectionError } from "../errors.js";
import { defaults } from "../options.js";
import type { Dialer, Transport } from "../transport.js";
import { hostPort } from "../transport.js";

/**
 * Opens a socket: plain TCP, or TLS when tlsOptions is given. Resolves once
 * it is connected (TLS: once the handshake is done), with NoDelay set.
 */
export function openSocket(host: string, port: number, tlsOptions: tls.ConnectionOptions | undefined, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const where = hostPort(host, port);
    let sock: net.Socket;
    const done = () => {
      signal.removeEventListener("abort", onAbort);
      sock.removeListener("error", onError);
    };
    const onAbort = () => {
      done();
      sock.destroy();
      reject(signal.reason);
    };
    const onError = (err: Error) => {
      done();
      sock.destroy();
      reject(new ConnectionError(`${where}: ${err.message}`, { cause: err }));
    };
    const onConnect = () => {
      done();
      sock.setNoDelay(true);
      resolve(sock);
    };
    if (tlsOptions) {
      const servername = net.isIP(host) ? undefined : host;
      sock = tls.connect({ host, port, ...(servername ? { servername } : {}), ...tlsOptions }, onConnect);
    } else {
      sock = net.connect({ host, port }, onConnect);
    }
    sock.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A dialer of the gateway's client port over TCP, or TLS when tlsOptions is given. */
export function tcpDialer(host: string, port: number, tlsOptions?: tls.ConnectionOptions): Dialer {
  const label = `${tlsOptions ? "tls" : "tcp"}://${hostPort(host, port)}`;
  return async (signal) => new SocketTransport(await openSocket(host, port, tlsOptions, signal), label);
}

/** Transport over a connected socket carrying the §1 byte stream as is. */
export class SocketTransport implements Transport {
  readonly drainEvents = true;
  readonly label: string;
  ondata: (chunk: Uint8Array) => void = () => {};
  ondrain: () => void = () => {};
  onclose: (err: Error | undefined) => void = () => {};
  private readonly sock: net.Socket;
  private err: Error | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(sock: net.Socket, label: string) {
    this.sock = sock;
    this.label = label;
    sock.on("data", (chunk: Buffer) => this.ondata(chunk));
    sock.on("drain", () => this.ondrain());
    sock.on("error", (err) => {
      this.err ??= err;
    });
    sock.on("close", () => {
      if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
      this.onclose(this.err);
    });
  }

  get bufferedAmount(): number {
    return this.sock.writableLength;
  }

  write(data: Uint8Array): void {
    this.sock.write(data);
  }

  /** Ends the socket after what is queued; destroys it if that takes longer than the close timeout. */
  close(): void {
    if (this.closeTimer !== undefined || this.sock.destroyed) return;
    this.sock.end();
    this.closeTimer = setTimeout(() => this.sock.destroy(), defaults.closeTimeout);
  }
}
