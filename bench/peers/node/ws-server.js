'use strict';
// Node `ws`, written as its README recommends (heartbeat by ping/pong every 25 s, no compression).
// Speaks Switchboard's JSON envelope: `join {"id": tag}` joins a tag, any other event is echoed
// back as a reply {event, data, code: 0, seqno, timestamp}; `?user=<id>` names the user.

const http = require('node:http');
const { WebSocketServer } = require('ws');
const { controlHandler, listenAddress } = require('./control');

const PING_INTERVAL_MS = 25_000;
const clients = new Set();
const tags = new Map(); // tag -> Set<ws>
const users = new Map(); // user id -> Set<ws>

function addTo(index, key, ws) {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(ws);
}

function removeFrom(index, key, ws) {
  const set = index.get(key);
  if (set && set.delete(ws) && set.size === 0) index.delete(key);
}

function push(kind, body) {
  const targets =
    kind === 'toAll' ? clients : kind === 'toTag' ? tags.get(body.tag) : users.get(String(body.userId));
  if (!targets) return 0;
  // Serialised once for every recipient.
  const frame = Buffer.from(
    JSON.stringify({ event: body.event, data: body.data, code: 0, timestamp: Math.floor(Date.now() / 1000) }),
  );
  let n = 0;
  for (const ws of targets) {
    if (ws.readyState === ws.OPEN) {
      ws.send(frame, { binary: false });
      n++;
    }
  }
  return n;
}

const server = http.createServer(controlHandler(push));
const wss = new WebSocketServer({ server, path: '/socket', maxPayload: 64 * 1024, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const user = new URL(req.url, 'http://x').searchParams.get('user') ?? '';
  ws.isAlive = true;
  ws.tags = new Set();
  clients.add(ws);
  addTo(users, user, ws);
  ws.on('pong', () => (ws.isAlive = true));
  ws.on('message', (raw, isBinary) => {
    ws.isAlive = true;
    let msg;
    try {
      msg = JSON.parse(raw.toString('utf8'));
    } catch {
      return ws.send(JSON.stringify({ event: '', code: 400, errorMsg: 'malformed frame' }));
    }
    const timestamp = Math.floor(Date.now() / 1000);
    if (msg.event === 'join') {
      const tag = msg.data && msg.data.id;
      ws.tags.add(tag);
      addTo(tags, tag, ws);
      return ws.send(JSON.stringify({ event: 'join', data: [...ws.tags].sort(), code: 0, seqno: msg.seqno, timestamp }));
    }
    ws.send(JSON.stringify({ event: msg.event, data: msg.data, code: 0, seqno: msg.seqno, timestamp }), {
      binary: isBinary,
    });
  });
  ws.on('close', () => {
    clients.delete(ws);
    removeFrom(users, user, ws);
    for (const tag of ws.tags) removeFrom(tags, tag, ws);
  });
});

setInterval(() => {
  for (const ws of clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, PING_INTERVAL_MS).unref();

const { host, port } = listenAddress(process.argv[2], '127.0.0.1:18102');
server.listen({ host, port, backlog: 4096 }, () => console.error(`node-ws listening on ${host}:${port}`));
