#!/usr/bin/env node
// A small static file server for the browser pages (examples/chat/web, the
// browser tests in tests/browser): Node's http module only, no packages.
// It serves directories under URL prefixes, and optionally a JSON document
// at /config.json that tells a page where the gateway is.
//
//   node scripts/static-server.mjs -addr 127.0.0.1:8080 \
//     -mount /=examples/chat/web -mount /sdk/=sdk/typescript/dist \
//     -config '{"gateway":"ws://127.0.0.1:4002/"}'
//
// It prints "static: listening on http://HOST:PORT/" once it listens (port 0
// picks a free one) and runs until SIGINT or SIGTERM. GET and HEAD only;
// paths are resolved inside their mount (no "..", no symlinks out of it);
// nothing is cached by the browser, so a rebuilt bundle is picked up.
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Starts a static server. mounts maps URL prefixes ("/", "/sdk/") to
 * directories; the longest matching prefix wins. config, if given, is sent
 * as JSON at /config.json. Resolves once listening, to
 * { url, port, close() }; close() ends the server and its connections.
 */
export async function startStaticServer({ host = '127.0.0.1', port = 0, mounts, config } = {}) {
  const table = await Promise.all(
    Object.entries(mounts ?? {}).map(async ([prefix, dir]) => {
      if (!prefix.startsWith('/') || !prefix.endsWith('/')) {
        throw new Error(`static: mount prefix ${prefix} must start and end with /`);
      }
      return { prefix, root: await realpath(resolve(dir)) };
    }),
  );
  table.sort((a, b) => b.prefix.length - a.prefix.length);
  const configBody = config === undefined ? null : JSON.stringify(config);

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error');
      else res.destroy();
    });
  });

  async function handle(req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed');
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      return send(res, 400, 'bad path');
    }
    if (path.includes('\0')) return send(res, 400, 'bad path');
    if (configBody !== null && path === '/config.json') {
      return send(res, 200, configBody, types['.json'], req.method === 'HEAD');
    }
    const m = table.find((e) => path.startsWith(e.prefix) || path + '/' === e.prefix);
    if (!m) return send(res, 404, 'not found');
    let file = resolve(m.root, '.' + sep + path.slice(m.prefix.length));
    let st = await stat(file).catch(() => null);
    if (st?.isDirectory()) {
      if (!path.endsWith('/')) {
        res.setHeader('Location', path + '/');
        return send(res, 301, 'moved');
      }
      file = join(file, 'index.html');
      st = await stat(file).catch(() => null);
    }
    if (!st?.isFile()) return send(res, 404, 'not found');
    // Resolved and with symlinks followed, the file must still be inside
    // its mount.
    const real = await realpath(file);
    if (real !== m.root && !real.startsWith(m.root + sep)) return send(res, 404, 'not found');
    res.writeHead(200, {
      'Content-Type': types[extname(real)] ?? 'application/octet-stream',
      'Content-Length': st.size,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end();
    const rs = createReadStream(real);
    rs.on('error', () => res.destroy());
    rs.pipe(res);
  }

  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const addr = server.address();
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${hostPart}:${addr.port}/`,
    port: addr.port,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

function send(res, code, body, type = 'text/plain; charset=utf-8', headOnly = false) {
  res.writeHead(code, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(headOnly ? undefined : body);
}

function parseArgs(argv) {
  const opts = { mounts: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i].replace(/^--?/, '');
    const val = argv[++i];
    if (val === undefined) throw new Error(`static: -${flag} needs a value`);
    switch (flag) {
      case 'addr': {
        const at = val.lastIndexOf(':');
        if (at < 0) throw new Error(`static: -addr ${val}: want HOST:PORT`);
        opts.host = val.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1';
        opts.port = Number(val.slice(at + 1));
        if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
          throw new Error(`static: -addr ${val}: bad port`);
        }
        break;
      }
      case 'mount': {
        const eq = val.indexOf('=');
        if (eq < 0) throw new Error(`static: -mount ${val}: want /PREFIX/=DIR`);
        opts.mounts[val.slice(0, eq)] = val.slice(eq + 1);
        break;
      }
      case 'config':
        opts.config = JSON.parse(val);
        break;
      default:
        throw new Error(`static: unknown flag -${flag}`);
    }
  }
  return opts;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const srv = await startStaticServer(parseArgs(process.argv.slice(2)));
    console.log(`static: listening on ${srv.url}`);
    const stop = () => srv.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (err) {
    console.error(err.message);
    process.exit(2);
  }
}
