'use strict';
// The bench's HTTP control path, shared by both Node peers: Switchboard's send endpoints
// (POST /api/websocket/send/{toAll,toTag,toUser} → {"delivered": n}) and GET /healthz.

const http = require('node:http');

function reply(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

// `send(kind, body)` performs the push and returns how many connections it reached.
function controlHandler(send) {
  return (req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, {});
    const kind = req.method === 'POST' && req.url.startsWith('/api/websocket/send/') ? req.url.slice(20) : null;
    if (!['toAll', 'toTag', 'toUser'].includes(kind)) return reply(res, 404, { code: 'not_found' });
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return reply(res, 400, { code: 'bad_json' });
      }
      reply(res, 200, { delivered: send(kind, body) });
    });
  };
}

function listenAddress(arg, fallback) {
  const [host, port] = (arg || fallback).split(':');
  return { host, port: Number(port) };
}

module.exports = { controlHandler, listenAddress };
