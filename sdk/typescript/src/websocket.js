// The browser transport: the platform's WebSocket (no Node imports here).
import { ConnectionError, ProtocolError } from "./errors.js";
import { hostPort, parseURL } from "./transport.js";
/** The subprotocol the gateway accepts (PROTOCOL.md §6). */
export const SUBPROTOCOL = "fastway";
/** The ws:// or wss:// URL of a target. */
export function webSocketURL(target) {
    if (typeof target === "string") {
        const u = parseURL(target);
        if (u.scheme !== "ws" && u.scheme !== "wss") {
            throw new TypeError(`fastway: a WebSocket URL is ws:// or wss://, not ${target}`);
        }
        return target;
    }
    return `${target.tls ? "wss" : "ws"}://${hostPort(target.host, target.port)}${target.path ?? "/"}`;
}
/** A dialer opening url with the given WebSocket constructor. */
export function webSocketDialer(url, WS) {
    return (signal) => new Promise((resolve, reject) => {
        if (signal.aborted) {
            reject(signal.reason);
            return;
        }
        let ws;
        try {
            ws = new WS(url, [SUBPROTOCOL]);
        }
        catch (err) {
            reject(new ConnectionError(`${url}: ${String(err)}`, { cause: err }));
            return;
        }
        ws.binaryType = "arraybuffer";
        const onAbort = () => {
            ws.onopen = ws.onclose = ws.onerror = null;
            ws.close();
            reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        ws.onerror = () => { }; // onclose follows with the code
        ws.onclose = (ev) => {
            signal.removeEventListener("abort", onAbort);
            reject(new ConnectionError(`${url}: WebSocket closed before it opened (code ${ev.code})`));
        };
        ws.onopen = () => {
            signal.removeEventListener("abort", onAbort);
            if (ws.protocol !== "" && ws.protocol !== SUBPROTOCOL) {
                ws.close(1002);
                reject(new ProtocolError(`${url}: the server chose subprotocol ${ws.protocol}`));
                return;
            }
            resolve(new BrowserWebSocket(ws, url));
        };
    });
}
/** Transport over an open WebSocket. */
class BrowserWebSocket {
    drainEvents = false;
    label;
    ondata = () => { };
    ondrain = () => { };
    onclose = () => { };
    ws;
    done = false;
    constructor(ws, label) {
        this.ws = ws;
        this.label = label;
        ws.onmessage = (ev) => {
            if (this.done)
                return;
            const d = ev.data;
            if (d instanceof ArrayBuffer) {
                this.ondata(new Uint8Array(d));
                return;
            }
            if (ArrayBuffer.isView(d)) {
                this.ondata(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
                return;
            }
            this.end(new ProtocolError(`${label}: a ${typeof d === "string" ? "text" : "non-binary"} WebSocket message`), 1003);
        };
        ws.onerror = () => { };
        ws.onclose = (ev) => {
            this.end(ev.code === 1000 || ev.code === 1001 ? undefined : new ConnectionError(`${label}: WebSocket closed (code ${ev.code}${ev.reason ? ", " + ev.reason : ""})`), 0);
        };
    }
    get bufferedAmount() {
        return this.ws.bufferedAmount;
    }
    write(data) {
        if (!this.done)
            this.ws.send(data);
    }
    close() {
        if (this.done)
            return;
        this.done = true;
        this.ws.onmessage = null;
        this.ws.onclose = null;
        this.ws.close(1000);
    }
    end(err, code) {
        if (this.done)
            return;
        this.done = true;
        this.ws.onmessage = null;
        this.ws.onclose = null;
        if (code !== 0)
            this.ws.close(code);
        this.onclose(err);
    }
}
//# sourceMappingURL=websocket.js.map