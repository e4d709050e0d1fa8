// The byte stream under a client: a WebSocket or a TCP (or TLS) socket.
/** Splits "ws://h:p/x", "tcp://h:p" and the like, with the scheme's default port. */
export function parseURL(url) {
    const m = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?([/?][^#]*)?$/i.exec(url);
    if (!m) {
        throw new TypeError(`fastway: not a URL: ${url}`);
    }
    const scheme = m[1].toLowerCase();
    let host = m[2];
    if (host.startsWith("[")) {
        host = host.slice(1, -1);
    }
    const defaults = { ws: 80, wss: 443 };
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
export function hostPort(host, port) {
    return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
//# sourceMappingURL=transport.js.map