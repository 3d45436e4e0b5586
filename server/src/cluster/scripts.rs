//! The Lua scripts of the Redis backend. Each operation is one script, so presence, stream
//! numbering, history and routing change together atomically: a push is counted and routed
//! from the presence it sees, and a connection's stream positions are read in the same step
//! that makes it present.
//!
//! Keys, under the prefix `P` (always `ARGV[1]`):
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:rows` | hash id → JSON | the connection's online-list row (without tags and heartbeat) |
//! | `P:cnode`, `P:cuser`, `P:cjti` | hash id → node / user / token id | where a connection lives, whose it is, which token opened it |
//! | `P:hb` | hash id → unix seconds | last inbound frame, flushed by the holding node |
//! | `P:online` | zset sort key, score firstTime | every connection, in list order |
//! | `P:u:<user>`, `P:t:<tag>` | zset sort key | a user's connections, a tag's members |
//! | `P:users` | hash user → connections | users online |
//! | `P:tags` | zset tag, score members | tags with members |
//! | `P:un:<user>`, `P:tn:<tag>` | hash node → connections | which nodes to route to |
//! | `P:ct:<id>` | set | a connection's tags |
//! | `P:nc:<node>` | set | a node's connections (swept when the node dies) |
//! | `P:nodes` | zset node, score heartbeat ms | live nodes |
//! | `P:figures` | hash node → JSON | each node's latest monitor figures (read for live nodes only) |
//! | `P:stream:<s>:{offset,epoch,history}` | string, string, stream | delivery streams |
//!
//! Channels: `P:node:<node>` (what concerns that node's sockets) and `P:all` (sends to
//! everyone, control messages). Every id, tag, stream name and epoch that goes into a message
//! built here has a restricted character set, so plain concatenation yields valid JSON.
//!
//! These scripts name keys they compute, so they need a single Redis server (or a replicated
//! primary), not Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = r#"
local P = ARGV[1]
local function sk(id)
  local p, n = string.match(id, '^(.*)%.(%d+)$')
  if p and #n <= 20 then return p .. '.' .. string.rep('0', 20 - #n) .. n end
  return id
end
local function unsk(k)
  local p, n = string.match(k, '^(.*)%.(%d+)$')
  if p and #n == 20 then
    local t = string.gsub(n, '^0+', '')
    if t == '' then t = '0' end
    return p .. '.' .. t
  end
  return k
end
local function hdec(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
local function position(stream, candidate, meta_ttl)
  local base = P .. ':stream:' .. stream
  local epoch = redis.call('GET', base .. ':epoch')
  if not epoch then
    epoch = candidate
    redis.call('SET', base .. ':epoch', epoch, 'PX', meta_ttl)
    redis.call('DEL', base .. ':offset', base .. ':history')
  end
  return tonumber(redis.call('GET', base .. ':offset') or '0'), epoch
end
local function pos_json(stream, o, e)
  return '["' .. stream .. '",' .. o .. ',"' .. e .. '"]'
end
local function tag_add(id, node, t)
  local score = redis.call('ZSCORE', P .. ':online', sk(id)) or '0'
  redis.call('SADD', P .. ':ct:' .. id, t)
  redis.call('ZADD', P .. ':t:' .. t, score, sk(id))
  redis.call('ZINCRBY', P .. ':tags', 1, t)
  redis.call('HINCRBY', P .. ':tn:' .. t, node, 1)
end
local function tag_remove(id, node, t)
  redis.call('SREM', P .. ':ct:' .. id, t)
  redis.call('ZREM', P .. ':t:' .. t, sk(id))
  if tonumber(redis.call('ZINCRBY', P .. ':tags', -1, t)) <= 0 then
    redis.call('ZREM', P .. ':tags', t)
  end
  hdec(P .. ':tn:' .. t, node)
end
local function user_add(id, node, uid)
  local score = redis.call('ZSCORE', P .. ':online', sk(id)) or '0'
  redis.call('HSET', P .. ':cuser', id, uid)
  redis.call('ZADD', P .. ':u:' .. uid, score, sk(id))
  redis.call('HINCRBY', P .. ':users', uid, 1)
  redis.call('HINCRBY', P .. ':un:' .. uid, node, 1)
end
local function detach(id)
  local node = redis.call('HGET', P .. ':cnode', id)
  if not node then return nil, nil end
  local uid = redis.call('HGET', P .. ':cuser', id)
  for _, t in ipairs(redis.call('SMEMBERS', P .. ':ct:' .. id)) do tag_remove(id, node, t) end
  redis.call('DEL', P .. ':ct:' .. id)
  if uid then
    redis.call('ZREM', P .. ':u:' .. uid, sk(id))
    hdec(P .. ':users', uid)
    hdec(P .. ':un:' .. uid, node)
  end
  redis.call('HDEL', P .. ':rows', id)
  redis.call('HDEL', P .. ':cnode', id)
  redis.call('HDEL', P .. ':cuser', id)
  redis.call('HDEL', P .. ':hb', id)
  redis.call('HDEL', P .. ':cjti', id)
  redis.call('ZREM', P .. ':online', sk(id))
  redis.call('SREM', P .. ':nc:' .. node, id)
  return node, uid
end
local function targets(mode, value)
  local ids = {}
  if mode == 'client' then
    if redis.call('HEXISTS', P .. ':cnode', value) == 1 then ids[1] = value end
  else
    for _, k in ipairs(redis.call('ZRANGE', P .. ':u:' .. value, 0, -1)) do ids[#ids + 1] = unsk(k) end
  end
  return ids
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// ARGV: P, node, id, firstTime, row, user ('' = anonymous), per-user limit, candidate epoch,
/// meta ttl ms, token id ('' = none), streams… → `{'ok', stream, offset, epoch, …}` or `{'per_user'}`.
pub static ATTACH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local node, id, ft, row, uid = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local limit = tonumber(ARGV[7])
if uid ~= '' and limit > 0 and redis.call('ZCARD', P .. ':u:' .. uid) >= limit then
  return {'per_user'}
end
detach(id)
redis.call('HSET', P .. ':rows', id, row)
redis.call('HSET', P .. ':cnode', id, node)
redis.call('ZADD', P .. ':online', ft, sk(id))
redis.call('SADD', P .. ':nc:' .. node, id)
if uid ~= '' then user_add(id, node, uid) end
if ARGV[10] ~= '' then redis.call('HSET', P .. ':cjti', id, ARGV[10]) end
local out, pos = {'ok'}, {}
for i = 11, #ARGV do
  local o, e = position(ARGV[i], ARGV[8], ARGV[9])
  pos[#pos + 1] = pos_json(ARGV[i], o, e)
  out[#out + 1] = ARGV[i]
  out[#out + 1] = tostring(o)
  out[#out + 1] = e
end
redis.call('PUBLISH', P .. ':node:' .. node,
  '{"op":"attach","id":"' .. id .. '","pos":[' .. table.concat(pos, ',') .. ']}')
return out
"#,
    )
});

/// ARGV: P, node, id, row, user, per-user limit, candidate epoch, meta ttl ms, token id →
/// `{'ok', stream, offset, epoch}`, `{'per_user'}` or `{'gone'}`.
pub static IDENTIFY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local node, id, row, uid = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local limit = tonumber(ARGV[6])
if redis.call('HGET', P .. ':cnode', id) ~= node then return {'gone'} end
if limit > 0 and redis.call('ZCARD', P .. ':u:' .. uid) >= limit then return {'per_user'} end
local old = redis.call('HGET', P .. ':cuser', id)
if old then
  redis.call('ZREM', P .. ':u:' .. old, sk(id))
  hdec(P .. ':users', old)
  hdec(P .. ':un:' .. old, node)
end
redis.call('HSET', P .. ':rows', id, row)
user_add(id, node, uid)
if ARGV[9] ~= '' then redis.call('HSET', P .. ':cjti', id, ARGV[9]) end
local stream = 'user:' .. uid
local o, e = position(stream, ARGV[7], ARGV[8])
redis.call('PUBLISH', P .. ':node:' .. node,
  '{"op":"ident","id":"' .. id .. '","pos":[' .. pos_json(stream, o, e) .. ']}')
return {'ok', stream, tostring(o), e}
"#,
    )
});

/// ARGV: P, node, id → 1 if the connection was present.
pub static DETACH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('HGET', P .. ':cnode', ARGV[3]) ~= ARGV[2] then return 0 end
detach(ARGV[3])
return 1
"#,
    )
});

/// ARGV: P, mode (client|user), value, tag, join (1|0), tag limit, candidate epoch, meta ttl
/// ms, request id → `{'ok', changed}` or `{'too_many'}`.
pub static TAG: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local tag, join, limit = ARGV[4], ARGV[5] == '1', tonumber(ARGV[6])
local ids = targets(ARGV[2], ARGV[3])
if join then
  for _, id in ipairs(ids) do
    local k = P .. ':ct:' .. id
    if redis.call('SISMEMBER', k, tag) == 0 and redis.call('SCARD', k) >= limit then
      return {'too_many'}
    end
  end
end
local stream = 'tag:' .. tag
local o, e = 0, ''
if join then o, e = position(stream, ARGV[7], ARGV[8]) end
local changed = 0
for _, id in ipairs(ids) do
  local node = redis.call('HGET', P .. ':cnode', id)
  local member = redis.call('SISMEMBER', P .. ':ct:' .. id, tag) == 1
  if join ~= member then
    if join then tag_add(id, node, tag) else tag_remove(id, node, tag) end
    changed = changed + 1
    redis.call('PUBLISH', P .. ':node:' .. node,
      '{"op":"tag","id":"' .. id .. '","tag":"' .. tag .. '","join":' .. tostring(join) ..
      ',"pos":' .. pos_json(stream, o, e) .. ',"req":"' .. ARGV[9] .. '"}')
  end
end
return {'ok', tostring(changed)}
"#,
    )
});

/// ARGV: P, mode (client|user), value, reason (a JSON string), close code, token id ('' =
/// any) → `{'ok', closed, user…}`. Close code 4001 is a kick (the client gets `kick` first).
pub static DISCONNECT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local by_node, order, users = {}, {}, {}
local closed = 0
for _, id in ipairs(targets(ARGV[2], ARGV[3])) do
  if ARGV[6] == '' or redis.call('HGET', P .. ':cjti', id) == ARGV[6] then
    local node, uid = detach(id)
    if node then
      closed = closed + 1
      if not by_node[node] then by_node[node] = {}; order[#order + 1] = node end
      table.insert(by_node[node], '"' .. id .. '"')
      if uid then users[#users + 1] = uid end
    end
  end
end
for _, node in ipairs(order) do
  redis.call('PUBLISH', P .. ':node:' .. node,
    '{"op":"close","ids":[' .. table.concat(by_node[node], ',') .. '],"reason":' .. ARGV[4] ..
    ',"code":' .. ARGV[5] .. '}')
end
local out = {'ok', tostring(closed)}
for _, u in ipairs(users) do out[#out + 1] = u end
return out
"#,
    )
});

/// KEYS: offset, epoch, history. ARGV: P, candidate epoch, history size, history ttl ms, meta
/// ttl ms, event, raw data, mode (all|user|tag), user or tag, excluded id ('' = none), message
/// head (a JSON object without its closing brace) → `{offset, epoch, addressed}`.
pub static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
end
local offset = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if tonumber(ARGV[3]) > 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], offset .. '-1', 'e', ARGV[6], 'd', ARGV[7], 't', ms)
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
local msg = ARGV[11] .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
local mode, value, except = ARGV[8], ARGV[9], ARGV[10]
local zk, n
if mode == 'all' then
  zk = P .. ':online'
  n = redis.call('ZCARD', zk)
  redis.call('PUBLISH', P .. ':all', msg)
else
  local hk
  if mode == 'user' then zk, hk = P .. ':u:' .. value, P .. ':un:' .. value
  else zk, hk = P .. ':t:' .. value, P .. ':tn:' .. value end
  n = redis.call('ZCARD', zk)
  for _, node in ipairs(redis.call('HKEYS', hk)) do
    redis.call('PUBLISH', P .. ':node:' .. node, msg)
  end
end
if except ~= '' and redis.call('ZSCORE', zk, sk(except)) then n = n - 1 end
return {offset, epoch, n}
"#,
    )
});

/// ARGV: P, id, origin node, message → 0 (not online), 1 (sent to its node) or -1 (it is
/// the origin's own: deliver locally).
pub static TO_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local node = redis.call('HGET', P .. ':cnode', ARGV[2])
if not node then return 0 end
if node == ARGV[3] then return -1 end
redis.call('PUBLISH', P .. ':node:' .. node, ARGV[4])
return 1
"#,
    )
});

/// ARGV: P, node → connections removed. Forgets a dead node and everything it held.
pub static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. ':nc:' .. ARGV[2])) do
  if detach(id) then n = n + 1 end
end
redis.call('DEL', P .. ':nc:' .. ARGV[2])
redis.call('ZREM', P .. ':nodes', ARGV[2])
return n
"#,
    )
});

/// ARGV: P, user ('' = any), tag ('' = any), username substring, ip substring, offset, limit
/// → `{total, row, tags, heartbeat, …}` for the page. Narrowed by the tag or user index
/// first; the substring filters read only the rows of that index.
pub static ONLINE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local uid, tag, uname, ip = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local offset, limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local zk = P .. ':online'
if tag ~= '' then zk = P .. ':t:' .. tag elseif uid ~= '' then zk = P .. ':u:' .. uid end
local out = {'0'}
local function emit(id, row)
  local tags = redis.call('SMEMBERS', P .. ':ct:' .. id)
  out[#out + 1] = row
  out[#out + 1] = table.concat(tags, ',')
  out[#out + 1] = redis.call('HGET', P .. ':hb', id) or ''
end
if not ((tag ~= '' and uid ~= '') or uname ~= '' or ip ~= '') then
  out[1] = tostring(redis.call('ZCARD', zk))
  for _, k in ipairs(redis.call('ZRANGE', zk, offset, offset + limit - 1)) do
    local id = unsk(k)
    local row = redis.call('HGET', P .. ':rows', id)
    if row then emit(id, row) end
  end
  return out
end
local total, start = 0, 0
while true do
  local keys = redis.call('ZRANGE', zk, start, start + 499)
  if #keys == 0 then break end
  for _, k in ipairs(keys) do
    local id = unsk(k)
    local row = redis.call('HGET', P .. ':rows', id)
    local ok = row ~= false and row ~= nil
    if ok and tag ~= '' and uid ~= '' then ok = redis.call('HGET', P .. ':cuser', id) == uid end
    if ok and (uname ~= '' or ip ~= '') then
      local r = cjson.decode(row)
      if uname ~= '' then ok = string.find(r.username or '', uname, 1, true) ~= nil end
      if ok and ip ~= '' then ok = string.find(r.ip or '', ip, 1, true) ~= nil end
    end
    if ok then
      if total >= offset and total < offset + limit then emit(id, row) end
      total = total + 1
    end
  end
  start = start + 500
end
out[1] = tostring(total)
return out
"#,
    )
});
