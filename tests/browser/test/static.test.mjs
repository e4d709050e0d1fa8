// The static server (scripts/static-server.mjs) the pages are served by:
// types, mounts, /config.json, and nothing outside a mount.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanup, startStaticServer, tempDir, within } from '../lib/harness.mjs';

// A raw GET, so that paths reach the server exactly as written.
function get(port, path, method = 'GET') {
  return within(
    5_000,
    `${method} ${path}`,
    new Promise((ok, fail) => {
      const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body }));
      });
      req.on('error', fail);
      req.end();
    }),
  );
}

test('static server', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'site/sub'), { recursive: true });
  await mkdir(join(dir, 'lib'));
  await writeFile(join(dir, 'site/index.html'), '<p>home</p>');
  await writeFile(join(dir, 'site/sub/index.html'), '<p>sub</p>');
  await writeFile(join(dir, 'lib/index.js'), 'export const x = 1;');
  await writeFile(join(dir, 'secret.txt'), 'secret');
  await symlink(join(dir, 'secret.txt'), join(dir, 'site/link.txt'));
  const srv = await startStaticServer({
    mounts: { '/': join(dir, 'site'), '/sdk/': join(dir, 'lib') },
    config: { gateway: 'ws://127.0.0.1:1/' },
  });
  cleanup(t, () => srv.close());
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  let r = await get(srv.port, '/');
  assert.equal(r.status, 200);
  assert.equal(r.body, '<p>home</p>');
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-store');

  r = await get(srv.port, '/sdk/index.js');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8', 'module scripts need a JavaScript type');
  assert.equal(r.body, 'export const x = 1;');

  r = await get(srv.port, '/sub');
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, '/sub/');
  assert.equal((await get(srv.port, '/sub/')).body, '<p>sub</p>');

  r = await get(srv.port, '/config.json');
  assert.deepEqual(JSON.parse(r.body), { gateway: 'ws://127.0.0.1:1/' });

  for (const p of ['/../secret.txt', '/..%2fsecret.txt', '/%2e%2e/secret.txt', '/sdk/..%2f..%2fsecret.txt', '/link.txt', '/nope', '/a%00b']) {
    r = await get(srv.port, p);
    assert.ok(r.status === 404 || r.status === 400, `${p}: status ${r.status}`);
    assert.ok(!r.body.includes('secret'), `${p} leaked a file outside the mount`);
  }
  assert.equal((await get(srv.port, '/', 'POST')).status, 405);
  r = await get(srv.port, '/', 'HEAD');
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
});
