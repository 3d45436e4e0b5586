'use strict';
// Socket.IO (Node), written as its documentation shows, with its defaults (25 s ping, no
// compression). Event `echo` is emitted back to the sender, `join` (tag) joins a room and answers
// `join`; `?user=<id>` in the handshake query puts the socket in room `user:<id>`.

const http = require('node:http');
const { Server } = require('socket.io');
const { controlHandler, listenAddress } = require('./control');

let io;

function push(kind, body) {
  const ns = io.of('/');
  if (kind === 'toAll') {
    io.emit(body.event, body.data);
    return ns.sockets.size;
  }
  const room = kind === 'toTag' ? body.tag : `user:${body.userId}`;
  io.to(room).emit(body.event, body.data);
  return ns.adapter.rooms.get(room)?.size ?? 0;
}

const server = http.createServer(controlHandler(push));
io = new Server(server, { serveClient: false, perMessageDeflate: false });

io.on('connection', (socket) => {
  socket.join(`user:${socket.handshake.query.user ?? ''}`);
  socket.on('echo', (data) => socket.emit('echo', data));
  socket.on('join', (tag) => {
    socket.join(tag);
    socket.emit('join', tag);
  });
});

const { host, port } = listenAddress(process.argv[2], '127.0.0.1:18103');
server.listen({ host, port, backlog: 4096 }, () => console.error(`socketio-node listening on ${host}:${port}`));
