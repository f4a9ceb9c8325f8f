//! Write-behind queues on Redis: a stream per queue with the consumer
//! group `flushers`, and Lua scripts that make each step atomic (see
//! `queue` for the keys). Entries are `XDEL`eted once acknowledged, so the
//! stream holds exactly the writes not yet flushed.
//!
//! Stream fields: `k` the cache key, `a` the arguments, `v` the value.
//! Dead letters add `i` (the entry's id), `e` (the error), `n` (attempts)
//! and `t` (when it failed, Unix ms).
//!
//! The enqueue script writes the value key and the stream in one step: on
//! one server that makes a write acknowledged exactly when both are done.
//! (On a Redis Cluster they live in different slots; that needs two steps.)

use super::queue::{
    Begin, Dead, Depth, Entry, EntryId, Failure, QueueBackend, QueueKeys, Replayed, GROUP,
    MARKER_RETENTION,
};
use super::redis::{beside, lease_key, millis, unexpected, RedisBackend};
use super::{BackendError, Token};
use bytes::Bytes;
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: value, lease, marker, stream. ARGV: value, key, args.
const ENQUEUE_LUA: &str = r"local id = redis.call('XADD', KEYS[4], '*', 'k', ARGV[2], 'a', ARGV[3], 'v', ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], id .. ' ' .. KEYS[4])
redis.call('DEL', KEYS[2])
return id";

/// KEYS: stream, attempts, marker, lock. ARGV: group, consumer, id, token,
/// lock TTL (ms).
const BEGIN_LUA: &str = r"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 'lost' end
local m = redis.call('GET', KEYS[3])
if m ~= ARGV[3] .. ' ' .. KEYS[1] then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
  return 'superseded'
end
if not redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[5]) then return 'busy' end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 'go'";

/// KEYS: stream, attempts. ARGV: group, ids... Returns how many were
/// pending.
const ACK_LUA: &str = r"local acked = 0
for i = 2, #ARGV do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return acked";

/// KEYS: stream, attempts, value, marker, lease, lock. ARGV: group, id,
/// value, TTL (ms), token, marker retention (ms).
const COMMIT_LUA: &str = r"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[4]) == ARGV[2] .. ' ' .. KEYS[1] then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  redis.call('DEL', KEYS[5])
end
if redis.call('GET', KEYS[6]) == ARGV[5] then redis.call('DEL', KEYS[6]) end
return 1";

/// KEYS: attempts, lock, stream. ARGV: id, token, hold (ms), group.
/// Returns the attempts so far, or 0 when the entry is no longer pending.
const FAIL_LUA: &str = r"if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
if #redis.call('XPENDING', KEYS[3], ARGV[4], ARGV[1], ARGV[1], 1) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)";

/// KEYS: stream, attempts, dead, value, marker, lock. ARGV: group, id, key,
/// args, value, error, attempts, the token of the lock to release ('' for
/// none). Returns 1 when dead-lettered, 0 when superseded (acknowledged
/// only). The failure time is the server's, as the entry ids are.
const BURY_LUA: &str = r"local latest = redis.call('GET', KEYS[5]) == ARGV[2] .. ' ' .. KEYS[1]
if latest then
  local t = redis.call('TIME')
  local at = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('XADD', KEYS[3], '*', 'i', ARGV[2], 'k', ARGV[3], 'a', ARGV[4], 'v', ARGV[5], 'e', ARGV[6], 'n', ARGV[7], 't', at)
  redis.call('DEL', KEYS[4])
  redis.call('PERSIST', KEYS[5])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if ARGV[8] ~= '' and redis.call('GET', KEYS[6]) == ARGV[8] then redis.call('DEL', KEYS[6]) end
if latest then return 1 end
return 0";

/// KEYS: dead, stream, value, lease, marker. ARGV: dead letter id, the
/// entry's id, key. Returns {0} missing, {1} superseded, {2, id} queued.
const REPLAY_LUA: &str = r"local d = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #d == 0 then return {0} end
if redis.call('GET', KEYS[5]) ~= ARGV[2] .. ' ' .. KEYS[2] then return {1} end
local f = d[1][2]
local fields = {}
for i = 1, #f, 2 do fields[f[i]] = f[i + 1] end
local id = redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'a', fields['a'], 'v', fields['v'])
redis.call('SET', KEYS[3], fields['v'])
redis.call('SET', KEYS[5], id .. ' ' .. KEYS[2])
redis.call('DEL', KEYS[4])
redis.call('XDEL', KEYS[1], ARGV[1])
return {2, id}";

/// KEYS: stream, dead. ARGV: group. Returns {entries, pending, oldest id
/// or '', dead letters, the server's time in ms}.
const DEPTH_LUA: &str = r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
local pending = 0
if type(p) == 'table' and p.err == nil then pending = p[1] end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = ''
if #first > 0 then oldest = first[1][1] end
return {redis.call('XLEN', KEYS[1]), pending, oldest, redis.call('XLEN', KEYS[2]), now}";

/// KEYS: dead, marker. ARGV: dead letter id, the entry's id, marker
/// retention (ms), the queue's stream. Returns 1 when deleted.
const DISCARD_LUA: &str = r"if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[2] .. ' ' .. ARGV[4] then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1";

/// KEYS: stream. ARGV: group, idle (ms). Removes the consumers that hold
/// nothing and were idle that long.
const REAP_LUA: &str = r"local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local reaped = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    reaped = reaped + 1
  end
end
return reaped";

/// KEYS: lock. ARGV: token, TTL (ms). Returns 1 when the token holds it.
const HOLD_LUA: &str = r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

/// KEYS: stream. ARGV: group, consumer. Removes the consumer when nothing
/// is pending in its name.
const LEAVE_LUA: &str = r"local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return #p";

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_LUA));
static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(ACK_LUA));
static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(COMMIT_LUA));
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(FAIL_LUA));
static BURY: LazyLock<Script> = LazyLock::new(|| Script::new(BURY_LUA));
static REPLAY: LazyLock<Script> = LazyLock::new(|| Script::new(REPLAY_LUA));
static DEPTH: LazyLock<Script> = LazyLock::new(|| Script::new(DEPTH_LUA));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(LEAVE_LUA));
static DISCARD: LazyLock<Script> = LazyLock::new(|| Script::new(DISCARD_LUA));
static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(REAP_LUA));
static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(HOLD_LUA));

fn marker_key(key: &str) -> String {
    beside(key, "wb")
}

fn lock_key(key: &str) -> String {
    beside(key, "wbl")
}

fn bulk(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    bulk(value).and_then(|b| String::from_utf8(b).ok())
}

fn id_of(value: Value) -> Option<EntryId> {
    text(value)?.parse().ok()
}

fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// A stream entry's fields and their values.
type Fields = Vec<(String, Vec<u8>)>;

/// An entry's fields, by name.
fn fields(value: Value) -> Option<Fields> {
    let Value::Array(items) = value else {
        return None;
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        out.push((text(name)?, bulk(value)?));
    }
    Some(out)
}

fn field(fields: &mut [(String, Vec<u8>)], name: &str) -> Option<Vec<u8>> {
    fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::mem::take(v))
}

/// `[id, [field, value, ...]]` as a queued entry and its other fields.
fn entry(value: Value) -> Option<(Entry, Fields)> {
    let Value::Array(pair) = value else {
        return None;
    };
    let [id, body] = <[Value; 2]>::try_from(pair).ok()?;
    let id = id_of(id)?;
    let mut fields = fields(body)?;
    let key = String::from_utf8(field(&mut fields, "k")?).ok()?;
    let args = Bytes::from(field(&mut fields, "a")?);
    let value = Bytes::from(field(&mut fields, "v")?);
    Some((
        Entry {
            id,
            key,
            args,
            value,
        },
        fields,
    ))
}

/// A list of entries; deleted ones (nil, from older servers) are skipped.
fn entries(what: &str, value: Value) -> Result<Vec<Entry>, BackendError> {
    let Value::Array(items) = value else {
        return Err(unexpected(what, &value));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if item == Value::Nil {
            continue;
        }
        let described = format!("{item:?}");
        match entry(item) {
            Some((e, _)) => out.push(e),
            None => return Err(unexpected(what, &Value::SimpleString(described))),
        }
    }
    Ok(out)
}

fn dead(value: Value) -> Option<Dead> {
    // The dead letter's own id, and the entry's fields with `i`, its id in
    // the queue.
    let (letter, mut fields) = entry(value)?;
    let mut number = |name: &str| -> Option<u64> {
        String::from_utf8(field(&mut fields, name)?)
            .ok()?
            .parse()
            .ok()
    };
    let attempts = u32::try_from(number("n")?).ok()?;
    let failed_at_ms = number("t")?;
    let queued: EntryId = String::from_utf8(field(&mut fields, "i")?)
        .ok()?
        .parse()
        .ok()?;
    let error = String::from_utf8_lossy(&field(&mut fields, "e")?).into_owned();
    Some(Dead {
        id: letter.id,
        entry: Entry {
            id: queued,
            ..letter
        },
        error,
        attempts,
        failed_at_ms,
    })
}

fn is_code(e: &BackendError, code: &str) -> bool {
    matches!(e, BackendError::Redis(e) if e.code() == Some(code))
}

impl RedisBackend {
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        self.call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }
}

impl QueueBackend for RedisBackend {
    async fn enqueue(
        &self,
        stream: &str,
        key: &str,
        value: Bytes,
        args: Bytes,
    ) -> Result<EntryId, BackendError> {
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation
            .key(key)
            .key(lease_key(key))
            .key(marker_key(key))
            .key(stream)
            .arg(value.as_ref())
            .arg(key)
            .arg(args.as_ref());
        let id: String = self.invoke(invocation).await?;
        id.parse()
            .map_err(|_| unexpected("enqueue", &Value::SimpleString(id)))
    }

    async fn join(&self, q: &QueueKeys) -> Result<(), BackendError> {
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&q.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.run::<()>(&create).await {
            Err(e) if is_code(&e, "BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn read(
        &self,
        q: &QueueKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&q.stream)
            .arg(">");
        let reply: Value = match self.run(&read).await {
            Err(e) if is_code(&e, "NOGROUP") => {
                self.join(q).await?;
                self.run(&read).await?
            }
            other => other?,
        };
        match reply {
            Value::Nil => Ok(Vec::new()),
            Value::Array(streams) => {
                let mut out = Vec::new();
                for stream in streams {
                    let Value::Array(pair) = stream else {
                        return Err(unexpected("XREADGROUP", &stream));
                    };
                    if let Some(list) = pair.into_iter().nth(1) {
                        out.extend(entries("XREADGROUP", list)?);
                    }
                }
                Ok(out)
            }
            // RESP3 servers answer with a map of streams.
            Value::Map(streams) => {
                let mut out = Vec::new();
                for (_, list) in streams {
                    out.extend(entries("XREADGROUP", list)?);
                }
                Ok(out)
            }
            other => Err(unexpected("XREADGROUP", &other)),
        }
    }

    async fn newest(&self, q: &QueueKeys) -> Result<Option<EntryId>, BackendError> {
        let mut last = redis::cmd("XREVRANGE");
        last.arg(&q.stream).arg("+").arg("-").arg("COUNT").arg(1);
        let reply: Value = self.run(&last).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("XREVRANGE", &reply));
        };
        match items.into_iter().next() {
            None => Ok(None),
            Some(Value::Array(item)) => match item.into_iter().next().and_then(id_of) {
                Some(id) => Ok(Some(id)),
                None => Err(unexpected("XREVRANGE", &Value::Nil)),
            },
            Some(other) => Err(unexpected("XREVRANGE", &other)),
        }
    }

    async fn claim(
        &self,
        q: &QueueKeys,
        consumer: &str,
        idle: Duration,
        count: usize,
        cursor: EntryId,
    ) -> Result<(Vec<Entry>, EntryId), BackendError> {
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim
            .arg(&q.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(millis(idle))
            .arg(cursor.to_string())
            .arg("COUNT")
            .arg(count);
        let reply: Value = match self.run(&claim).await {
            Err(e) if is_code(&e, "NOGROUP") => return Ok((Vec::new(), EntryId::default())),
            other => other?,
        };
        let Value::Array(parts) = reply else {
            return Err(unexpected("XAUTOCLAIM", &reply));
        };
        let mut parts = parts.into_iter();
        let (Some(next), Some(list)) = (parts.next(), parts.next()) else {
            return Err(unexpected("XAUTOCLAIM", &Value::Nil));
        };
        let next = id_of(next).unwrap_or_default();
        Ok((entries("XAUTOCLAIM", list)?, next))
    }

    async fn begin(
        &self,
        q: &QueueKeys,
        consumer: &str,
        entry: &Entry,
        token: Token,
        lock_ttl: Duration,
    ) -> Result<Begin, BackendError> {
        let mut invocation = BEGIN.prepare_invoke();
        invocation
            .key(&q.stream)
            .key(&q.attempts)
            .key(marker_key(&entry.key))
            .key(lock_key(&entry.key))
            .arg(GROUP)
            .arg(consumer)
            .arg(entry.id.to_string())
            .arg(token.0)
            .arg(millis(lock_ttl));
        let reply: String = self.invoke(invocation).await?;
        match reply.as_str() {
            "go" => Ok(Begin::Go),
            "busy" => Ok(Begin::Busy),
            "superseded" => Ok(Begin::Superseded),
            "lost" => Ok(Begin::Lost),
            _ => Err(unexpected("begin", &Value::SimpleString(reply))),
        }
    }

    async fn ack(&self, q: &QueueKeys, ids: &[EntryId]) -> Result<u64, BackendError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = ACK.prepare_invoke();
        invocation.key(&q.stream).key(&q.attempts).arg(GROUP);
        for id in ids {
            invocation.arg(id.to_string());
        }
        self.invoke(invocation).await
    }

    async fn commit(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        value: Bytes,
        ttl: Duration,
        token: Token,
    ) -> Result<(), BackendError> {
        let mut invocation = COMMIT.prepare_invoke();
        invocation
            .key(&q.stream)
            .key(&q.attempts)
            .key(&entry.key)
            .key(marker_key(&entry.key))
            .key(lease_key(&entry.key))
            .key(lock_key(&entry.key))
            .arg(GROUP)
            .arg(entry.id.to_string())
            .arg(value.as_ref())
            .arg(millis(ttl))
            .arg(token.0)
            .arg(millis(MARKER_RETENTION));
        self.invoke(invocation).await
    }

    async fn fail(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        token: Token,
        hold: Duration,
    ) -> Result<Option<u32>, BackendError> {
        let mut invocation = FAIL.prepare_invoke();
        invocation
            .key(&q.attempts)
            .key(lock_key(&entry.key))
            .key(&q.stream)
            .arg(entry.id.to_string())
            .arg(token.0)
            .arg(millis(hold))
            .arg(GROUP);
        let attempts: u64 = self.invoke(invocation).await?;
        Ok((attempts > 0).then(|| u32::try_from(attempts).unwrap_or(u32::MAX)))
    }

    async fn bury(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        failure: &Failure<'_>,
        release: Option<Token>,
    ) -> Result<bool, BackendError> {
        let mut invocation = BURY.prepare_invoke();
        invocation
            .key(&q.stream)
            .key(&q.attempts)
            .key(&q.dead)
            .key(&entry.key)
            .key(marker_key(&entry.key))
            .key(lock_key(&entry.key))
            .arg(GROUP)
            .arg(entry.id.to_string())
            .arg(&entry.key)
            .arg(entry.args.as_ref())
            .arg(entry.value.as_ref())
            .arg(failure.error)
            .arg(failure.attempts)
            .arg(release.map_or(String::new(), |t| t.0.to_string()));
        let buried: u64 = self.invoke(invocation).await?;
        Ok(buried == 1)
    }

    async fn depth(&self, q: &QueueKeys) -> Result<Depth, BackendError> {
        let mut invocation = DEPTH.prepare_invoke();
        invocation.key(&q.stream).key(&q.dead).arg(GROUP);
        let reply: Value = self.invoke(invocation).await?;
        let Value::Array(parts) = reply else {
            return Err(unexpected("queue depth", &reply));
        };
        let [entries, pending, oldest, dead, now] = <[Value; 5]>::try_from(parts)
            .map_err(|parts| unexpected("queue depth", &Value::Array(parts)))?;
        Ok(Depth {
            entries: int(&entries).unwrap_or(0),
            pending: int(&pending).unwrap_or(0),
            oldest: id_of(oldest),
            dead: int(&dead).unwrap_or(0),
            now_ms: int(&now).ok_or_else(|| unexpected("queue depth", &now))?,
        })
    }

    async fn dead_letters(&self, q: &QueueKeys, count: usize) -> Result<Vec<Dead>, BackendError> {
        let mut range = redis::cmd("XRANGE");
        range.arg(&q.dead).arg("-").arg("+").arg("COUNT").arg(count);
        let reply: Value = self.run(&range).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("dead letters", &reply));
        };
        items
            .into_iter()
            .map(|item| {
                let described = format!("{item:?}");
                dead(item).ok_or_else(|| unexpected("dead letter", &Value::SimpleString(described)))
            })
            .collect()
    }

    async fn replay(&self, q: &QueueKeys, dead: &Dead) -> Result<Replayed, BackendError> {
        let key = &dead.entry.key;
        let mut invocation = REPLAY.prepare_invoke();
        invocation
            .key(&q.dead)
            .key(&q.stream)
            .key(key)
            .key(lease_key(key))
            .key(marker_key(key))
            .arg(dead.id.to_string())
            .arg(dead.entry.id.to_string())
            .arg(key);
        let reply: Value = self.invoke(invocation).await?;
        let described = format!("{reply:?}");
        let Value::Array(parts) = reply else {
            return Err(unexpected("replay", &Value::SimpleString(described)));
        };
        let mut parts = parts.into_iter();
        match (parts.next().as_ref().and_then(int), parts.next()) {
            (Some(0), _) => Ok(Replayed::Missing),
            (Some(1), _) => Ok(Replayed::Superseded),
            (Some(2), Some(id)) => id_of(id)
                .map(Replayed::Queued)
                .ok_or_else(|| unexpected("replay", &Value::SimpleString(described))),
            _ => Err(unexpected("replay", &Value::SimpleString(described))),
        }
    }

    async fn discard(&self, q: &QueueKeys, dead: &Dead) -> Result<bool, BackendError> {
        let mut invocation = DISCARD.prepare_invoke();
        invocation
            .key(&q.dead)
            .key(marker_key(&dead.entry.key))
            .arg(dead.id.to_string())
            .arg(dead.entry.id.to_string())
            .arg(millis(MARKER_RETENTION))
            .arg(&q.stream);
        let deleted: u64 = self.invoke(invocation).await?;
        Ok(deleted == 1)
    }

    async fn leave(&self, q: &QueueKeys, consumer: &str) -> Result<(), BackendError> {
        let mut invocation = LEAVE.prepare_invoke();
        invocation.key(&q.stream).arg(GROUP).arg(consumer);
        match self.invoke::<u64>(invocation).await {
            Err(e) if is_code(&e, "NOGROUP") => Ok(()),
            other => other.map(drop),
        }
    }

    async fn reap(&self, q: &QueueKeys, idle: Duration) -> Result<(), BackendError> {
        let mut invocation = REAP.prepare_invoke();
        invocation.key(&q.stream).arg(GROUP).arg(millis(idle));
        self.invoke::<u64>(invocation).await.map(drop)
    }

    async fn hold(
        &self,
        _: &QueueKeys,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut invocation = HOLD.prepare_invoke();
        invocation.key(lock_key(key)).arg(token.0).arg(millis(ttl));
        let held: u64 = self.invoke(invocation).await?;
        Ok(held == 1)
    }
}
