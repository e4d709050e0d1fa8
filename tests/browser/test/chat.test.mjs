// The chat demo in a real browser (issue 18): examples/chat/run.sh started
// as a person starts it (free ports instead of the fixed ones), then two
// Chromium pages, each its own user, join one room and chat both ways, a
// third in another room sees the announcement and nothing of the room.
// It saves the screenshot the docs show (docs/images/chat.png).
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanup, launch, Proc, repo, within } from '../lib/harness.mjs';

const screenshot = process.env.FASTWAY_CHAT_SCREENSHOT ?? join(repo, 'docs/images/chat.png');

test('chat demo: two pages chat through run.sh', { timeout: 120_000 }, async (t) => {
  const run = new Proc('run.sh', 'bash', [join(repo, 'examples/chat/run.sh')], {
    detached: true,
    env: {
      ...process.env,
      CLIENT_ADDR: '127.0.0.1:0',
      SERVER_ADDR: '127.0.0.1:0',
      CLIENT_WS_ADDR: '127.0.0.1:0',
      WEB_ADDR: '127.0.0.1:0',
      // The gateway scripts/test-browser.sh built already, if it did.
      ...(process.env.FASTWAY_BROWSER_BIN ? { FASTWAY_BIN: join(process.env.FASTWAY_BROWSER_BIN, 'fastway') } : {}),
    },
  });
  cleanup(t, () => run.stop());
  const [, url] = await run.waitFor(/^chat: open (http:\/\/\S+) in two browser tabs/, 90_000);

  const browser = await launch(t);
  // join opens the page in a context of its own (another user, as in
  // another browser) and joins room as name.
  const enter = async (name, room) => {
    const ctx = await browser.newContext({ viewport: { width: 640, height: 600 }, deviceScaleFactor: 1 });
    cleanup(t, () => ctx.close());
    const page = await ctx.newPage();
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`${name}: pageerror: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && page.problems.push(`${name}: console: ${m.text()}`));
    await within(15_000, `${name} loading ${url}`, page.goto(url));
    await within(10_000, `${name}'s page ready`, page.waitForSelector('body[data-ready="true"]'));
    await page.fill('#name', name);
    await page.fill('#room', room);
    await page.click('#join');
    await within(10_000, `${name} joining ${room}`, page.waitForSelector('#chat:not([hidden])'));
    assert.equal(await page.textContent('#room-name'), room);
    return page;
  };
  const say = async (page, text) => {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
  };
  // sees waits for an entry of kind from name with text in page's log.
  const sees = (page, who, kind, name, text) =>
    within(10_000, `${who} seeing ${kind} "${text}"`, page.waitForFunction(
      ([kind, name, text]) => [...document.querySelectorAll(`#log li.${kind}`)]
        .some((li) => (name === null || li.dataset.name === name) && li.textContent.endsWith(text)),
      [kind, name, text],
    ));
  const count = (page, sel) => page.$$eval(sel, (els) => els.length);

  const alice = await enter('alice', 'lobby');
  const bob = await enter('bob', 'lobby');
  await sees(alice, 'alice', 'system', null, 'bob joined');
  await within(10_000, 'alice seeing bob in the member list', alice.waitForFunction(
    () => document.getElementById('members').textContent === 'alice, bob'));
  assert.equal(await bob.textContent('#members'), 'alice, bob');
  const carol = await enter('carol', 'garden');

  await say(alice, 'hi bob, the raid starts at nine');
  await sees(bob, 'bob', 'msg', 'alice', 'hi bob, the raid starts at nine');
  await sees(alice, 'alice', 'mine', 'alice', 'hi bob, the raid starts at nine');
  await say(bob, 'on my way, bringing potions');
  await sees(alice, 'alice', 'msg', 'bob', 'on my way, bringing potions');
  await say(alice, 'great, see you there');
  await sees(bob, 'bob', 'msg', 'alice', 'great, see you there');

  await bob.fill('#text', 'server restarts at noon');
  await bob.click('#announce');
  for (const [who, page] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    await sees(page, who, 'announce', 'bob', 'server restarts at noon');
  }

  // Everyone in the room but the sender: a sender's own message never came
  // back (it would have arrived before the other's reply, which was sent
  // after it), and carol, in another room, got the announcement sent after
  // the room's messages but none of them.
  assert.equal(await count(alice, '#log li.msg[data-name="alice"]'), 0, 'alice got her own message back');
  assert.equal(await count(bob, '#log li.msg[data-name="bob"]'), 0, 'bob got his own message back');
  assert.equal(await count(alice, '#log li.msg'), 1);
  assert.equal(await count(bob, '#log li.msg'), 2);
  assert.equal(await count(carol, '#log li.msg'), 0, 'carol, in garden, got lobby messages');

  // The screenshot: alice's and bob's pages side by side.
  await alice.fill('#text', 'bringing the map');
  const shots = [];
  for (const p of [alice, bob]) shots.push((await p.screenshot()).toString('base64'));
  const board = await browser.newPage({ viewport: { width: 1340, height: 600 }, deviceScaleFactor: 1 });
  cleanup(t, () => board.close());
  await board.setContent(`<body style="margin:0;padding:16px 20px;background:#d5d9e0;display:flex;gap:20px;font:14px 'DejaVu Sans',sans-serif">
    ${['alice', 'bob'].map((who, i) => `<figure style="margin:0">
      <figcaption style="margin:0 0 6px;color:#333">${who}'s browser</figcaption>
      <img src="data:image/png;base64,${shots[i]}" style="display:block;border:1px solid #9aa1ad;border-radius:6px">
    </figure>`).join('')}</body>`);
  await mkdir(join(screenshot, '..'), { recursive: true });
  await board.screenshot({ path: screenshot, fullPage: true });
  t.diagnostic(`screenshot: ${screenshot}`);

  for (const p of [alice, bob, carol]) assert.deepEqual(p.problems, []);

  // Ctrl-C on run.sh: every page says it is disconnected and offers to join again.
  await run.stop();
  for (const [who, page] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    await within(10_000, `${who} seeing the disconnect`, page.waitForSelector('#status[data-state="closed"]'));
    assert.ok(await page.isVisible('#join-form'), `${who}: no join form after the disconnect`);
  }
});
