//! Stream numbering and history in Redis: one script assigns the next offset, appends to the
//! stream's Redis stream (XADD, MAXLEN) and publishes the push on the bus — atomically, so every
//! node sees a stream's pushes in offset order.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: offset, epoch, history. ARGV: candidate epoch, maxlen, history ttl ms, meta ttl ms,
/// event, raw data, bus channel, bus message head (a JSON object without its closing brace).
pub static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
end
local offset = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if tonumber(ARGV[2]) > 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], offset .. '-1', 'e', ARGV[5], 'd', ARGV[6], 't', ms)
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
redis.call('PUBLISH', ARGV[7], ARGV[8] .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}')
return {offset, epoch}
"#,
    )
});

/// Redis keys of one stream.
pub struct StreamKeys {
    /// Offset counter.
    pub offset: String,
    /// Epoch.
    pub epoch: String,
    /// History (a Redis stream whose ids are `<offset>-1`).
    pub history: String,
}

impl StreamKeys {
    /// Keys of `stream` under `prefix`.
    pub fn new(prefix: &str, stream: &str) -> Self {
        StreamKeys {
            offset: format!("{prefix}:stream:{stream}:offset"),
            epoch: format!("{prefix}:stream:{stream}:epoch"),
            history: format!("{prefix}:stream:{stream}:history"),
        }
    }
}
