// The chat demo's browser page (examples/chat): the TypeScript SDK
// (sdk/typescript, served at /sdk/) over the gateway's WebSocket port, to
// the Go chat backend (examples/chat/backend). The messages are the
// backend's JSON, one per data frame (examples/chat/room):
//
//   to the server    {"type":"join","room","name"} {"type":"say","text"} {"type":"announce","text"}
//   from the server  joined, msg, system, announce, error
//
// The SDK's JSON codec turns them into objects and back. A message said in
// a room reaches everyone there but its sender, so the page shows its own
// messages itself. Where the gateway is comes from
// /config.json (examples/chat/run.sh serves it), or ?gateway=ws://...&server=1.
import { connect, jsonCodec, RefusedError } from '/sdk/index.js';

const $ = (id) => document.getElementById(id);

const ui = {
  status: $('status'),
  joinForm: $('join-form'),
  name: $('name'),
  room: $('room'),
  joinButton: $('join'),
  joinError: $('join-error'),
  chat: $('chat'),
  roomName: $('room-name'),
  members: $('members'),
  log: $('log'),
  sayForm: $('say-form'),
  text: $('text'),
  announce: $('announce'),
};

let config; // { gateway, server }
let client = null; // the SDK client while connected
let vconn = null; // the virtual connection to the chat server
let me = null; // { name, room } once joined

async function loadConfig() {
  let cfg = {};
  try {
    const res = await fetch('config.json', { cache: 'no-store' });
    if (res.ok) cfg = await res.json();
  } catch {
    // No config.json: the defaults and the query below.
  }
  const q = new URLSearchParams(location.search);
  const gateway = q.get('gateway') ?? cfg.gateway ?? `ws://${location.hostname || '127.0.0.1'}:4002/`;
  const server = Number(q.get('server') ?? cfg.server ?? 1);
  return { gateway, server };
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function send(msg) {
  vconn.send(msg);
}

// line appends one entry to the log: kind is msg, mine, system, announce or error.
function line(kind, name, text) {
  const li = document.createElement('li');
  li.className = kind;
  if (name) {
    li.dataset.name = name;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = name;
    li.append(who);
  }
  if (kind === 'announce') {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'to everyone';
    li.append(badge);
  }
  li.append(document.createTextNode(text));
  const atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  ui.log.append(li);
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

function showMembers(members) {
  ui.members.textContent = (members ?? []).join(', ');
}

function onMessage(m) {
  switch (m.type) {
    case 'joined':
      me = { name: m.name, room: m.room };
      ui.roomName.textContent = m.room;
      showMembers(m.members);
      ui.joinForm.hidden = true;
      ui.chat.hidden = false;
      ui.joinError.hidden = true;
      line('system', null, `you joined ${m.room} as ${m.name}`);
      ui.text.focus();
      break;
    case 'msg':
      line('msg', m.name, m.text);
      break;
    case 'system':
      if (m.members) showMembers(m.members);
      line('system', null, m.text);
      break;
    case 'announce':
      line('announce', m.name, m.text);
      break;
    case 'error':
      if (ui.joinForm.hidden) line('error', null, m.text);
      else showJoinError(m.text); // a join refused: name or room
      break;
    default:
      // A newer backend's message: nothing to show.
      break;
  }
}

function showJoinError(text) {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
}

// receive reads the chat server's messages until the virtual connection
// ends, then shows the page as disconnected.
async function receive(vc, cl) {
  let why = 'the connection to the chat server ended';
  try {
    for await (const m of vc) onMessage(m);
  } catch (err) {
    why = err?.message ?? String(err);
  }
  if (vconn !== vc) return;
  vconn = null;
  client = null;
  me = null;
  cl.close();
  setStatus('closed', `disconnected: ${why}`);
  ui.chat.hidden = true;
  ui.joinForm.hidden = false;
  ui.joinButton.disabled = false;
}

async function ensureConnected() {
  if (vconn) return;
  setStatus('connecting', `connecting to ${config.gateway}`);
  const cl = await connect(config.gateway, { timeout: 5000, codec: jsonCodec() });
  let vc;
  try {
    vc = await cl.dial(config.server);
  } catch (err) {
    cl.close();
    if (err instanceof RefusedError) {
      throw new Error(`the gateway has no chat server ${config.server} (is the backend running?)`);
    }
    throw err;
  }
  client = cl;
  vconn = vc;
  setStatus('connected', 'connected');
  receive(vc, cl);
}

ui.joinForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  ui.joinButton.disabled = true;
  ui.joinError.hidden = true;
  try {
    await ensureConnected();
    send({ type: 'join', room: ui.room.value.trim(), name: ui.name.value.trim() });
  } catch (err) {
    setStatus('closed', 'not connected');
    showJoinError(`cannot reach the chat: ${err?.message ?? String(err)}`);
  } finally {
    ui.joinButton.disabled = false;
  }
});

ui.sayForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.text.value;
  if (!vconn || !me || text.trim() === '') return;
  if (text.startsWith('/announce ')) {
    send({ type: 'announce', text: text.slice('/announce '.length) });
  } else {
    send({ type: 'say', text });
    // The room gets it from the gateway; the sender does not, so it is shown here.
    line('mine', me.name, text);
  }
  ui.text.value = '';
});

ui.announce.addEventListener('click', () => {
  const text = ui.text.value;
  if (!vconn || !me || text.trim() === '') return;
  send({ type: 'announce', text });
  ui.text.value = '';
  ui.text.focus();
});

$('change-room').addEventListener('click', () => {
  ui.chat.hidden = true;
  ui.joinForm.hidden = false;
  ui.room.select();
});

config = await loadConfig();
$('gateway-url').textContent = config.gateway;
$('server-id').textContent = String(config.server);
const q = new URLSearchParams(location.search);
if (q.get('name')) ui.name.value = q.get('name');
if (q.get('room')) ui.room.value = q.get('room');
ui.name.focus();
document.body.dataset.ready = 'true';
