//! The Redis backend: one multiplexed connection (`ConnectionManager`, which
//! reconnects by itself after a failure), shared by every clone of the cache.
//! Every call is bounded by the cache's operation timeout.
//!
//! The lease of key `K` lives at `{K}:lease`. Keys never contain braces
//! (values are escaped, templates and namespaces may not hold them), so
//! the braces are a Redis Cluster hash tag that puts the lease in `K`'s own
//! slot, and no value key (they start with the namespace) can be a lease
//! key (they start with `{`). A lease key holds its token in decimal; or,
//! once its holder answered without storing, `=` and the answer's bytes;
//! or, after a failed background refresh, `!` (a throttle, which `acquire`
//! takes over and `SET NX` does not).
//! The lease scripts are loaded at connect and run by `EVALSHA`, loading
//! themselves again on `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).

use super::{Acquire, Backend, BackendError, Token};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script, Value};
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: value, lease. ARGV: token, lease TTL (ms). Returns the entry's
/// bytes, 1 (lease granted), 0 (wait), or {2, answer} (the lease ended
/// with an answer).
const ACQUIRE_LUA: &str = r"local v = redis.call('GET', KEYS[1])
if v then return v end
local lease = redis.call('GET', KEYS[2])
if not lease or string.sub(lease, 1, 1) == '!' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1
end
if string.sub(lease, 1, 1) == '=' then return {2, string.sub(lease, 2)} end
return 0";

/// KEYS: value, lease. ARGV: token, value (empty: delete the entry), TTL
/// (ms). Returns 1 when done.
const FILL_LUA: &str = r"if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[2])
return 1";

/// KEYS: value, lease, version. ARGV: value, TTL (ms), version (20 digits,
/// so that versions compare as strings). The version key holds the version
/// and the SHA-1 of the value stored with it. Returns 1 when stored, 0 when
/// the key holds a newer version (then the value and lease are deleted
/// unless the value is the one stored with it).
const SET_VERSIONED_LUA: &str = r"local held = redis.call('GET', KEYS[3])
if held and string.sub(held, 1, 20) > ARGV[3] then
  local v = redis.call('GET', KEYS[1])
  if not v or redis.sha1hex(v) ~= string.sub(held, 21) then redis.call('DEL', KEYS[1], KEYS[2]) end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3] .. redis.sha1hex(ARGV[1]), 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1";

/// KEYS: lease. ARGV: token.
const RELEASE_LUA: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// KEYS: lease. ARGV: token, marker, window (ms). Ends the lease with a
/// marker (an answer or a throttle) if the token holds it.
const MARK_LUA: &str = r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1";

const SCRIPTS: [&str; 5] = [
    ACQUIRE_LUA,
    FILL_LUA,
    RELEASE_LUA,
    MARK_LUA,
    SET_VERSIONED_LUA,
];
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE_LUA));
static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(FILL_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
static MARK: LazyLock<Script> = LazyLock::new(|| Script::new(MARK_LUA));
static SET_VERSIONED: LazyLock<Script> = LazyLock::new(|| Script::new(SET_VERSIONED_LUA));

/// The key of `key`'s lease.
pub(crate) fn lease_key(key: &str) -> String {
    beside(key, "lease")
}

/// The key `{key}:<what>`, in `key`'s cluster slot.
pub(super) fn beside(key: &str, what: &str) -> String {
    let mut beside = String::with_capacity(key.len() + 3 + what.len());
    beside.push('{');
    beside.push_str(key);
    beside.push_str("}:");
    beside.push_str(what);
    beside
}

/// A Redis server reached through one multiplexed, self-reconnecting
/// connection.
pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to `url`. Fails when the URL is invalid or the server cannot
    /// be reached within `connect_timeout`.
    pub(crate) async fn connect(
        url: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, BackendError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // Each call is bounded by `call`'s own timeout: one timer per
            // call, not two (a second one cost ~5% on the hit path).
            .set_response_timeout(None)
            // Reconnect attempts happen in the background; a call made
            // meanwhile fails fast and the body answers.
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = bounded(
            connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await??;
        let backend = RedisBackend { conn, timeout };
        backend.load_scripts().await;
        Ok(backend)
    }

    /// Loads the lease scripts, so that the first misses need not find
    /// them missing. Best effort: a server that lost them (restarted,
    /// flushed) gets them again on first use.
    async fn load_scripts(&self) {
        let mut pipe = redis::pipe();
        for source in SCRIPTS {
            pipe.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
        }
        let loaded = self
            .call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await;
        if let Err(e) = loaded {
            tracing::error!(error = %e, "redis refused the lease scripts: misses will not be stored until it accepts EVALSHA and SCRIPT LOAD (or set lock = false)");
        }
    }

    /// Ends the lease of `key` with `marker` for `window`, if `token` holds it.
    async fn mark(
        &self,
        key: &str,
        token: Token,
        marker: &[u8],
        window: Duration,
    ) -> Result<(), BackendError> {
        let mut invocation = MARK.prepare_invoke();
        invocation
            .key(lease_key(key))
            .arg(token.0)
            .arg(marker)
            .arg(millis(window));
        self.call(|mut conn| async move { invocation.invoke_async::<()>(&mut conn).await })
            .await
    }

    /// Runs `f` on a handle of the shared connection, within the timeout.
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        Ok(bounded(self.timeout, f(self.conn.clone())).await??)
    }

    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, BackendError> {
        self.call(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }
}

async fn bounded<F: Future>(limit: Duration, fut: F) -> Result<F::Output, BackendError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| BackendError::Timeout(limit))
}

/// Milliseconds for `PX`, at least 1 (Redis refuses 0).
pub(super) fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A reply Redis never sends for these commands.
pub(super) fn unexpected(what: &str, reply: &Value) -> BackendError {
    BackendError::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {reply:?}"),
    )))
}

impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        // Sized up front: `redis::cmd` would grow its buffer once per hit.
        let mut get = redis::Cmd::with_capacity(2, "GET".len() + key.len());
        get.arg("GET").arg(key);
        let value: Option<Vec<u8>> = self.run(&get).await?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        // Two commands, one round trip. Not a transaction, and it needs
        // none: a fill lands either before the SET (which replaces it) or
        // after the DEL (and finds no lease).
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(lease_key(key)).ignore();
        pipe.cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("PX")
            .arg(millis(ttl))
            .ignore();
        self.call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    async fn set_versioned(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        version: u64,
    ) -> Result<bool, BackendError> {
        let mut invocation = SET_VERSIONED.prepare_invoke();
        invocation
            .key(key)
            .key(lease_key(key))
            .key(beside(key, "ver"))
            .arg(value.as_ref())
            .arg(millis(ttl))
            .arg(format!("{version:020}"));
        let stored: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(stored == 1)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        if keys.is_empty() {
            return Ok(());
        }
        // One DEL: atomic, so no holder can fill between the two deletes.
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(key).arg(lease_key(key));
        }
        self.run::<()>(&cmd).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError> {
        let ms: i64 = self.run(redis::cmd("PTTL").arg(key)).await?;
        // -2: no such key; -1: no expiry (never written by this library).
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn acquire(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<Acquire, BackendError> {
        let mut invocation = ACQUIRE.prepare_invoke();
        invocation
            .key(key)
            .key(lease_key(key))
            .arg(token.0)
            .arg(millis(ttl));
        let reply: Value = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        match reply {
            Value::BulkString(bytes) => Ok(Acquire::Value(Bytes::from(bytes))),
            Value::Int(1) => Ok(Acquire::Granted),
            Value::Int(0) => Ok(Acquire::Wait),
            Value::Array(reply) => match <[Value; 2]>::try_from(reply) {
                Ok([Value::Int(2), Value::BulkString(answer)]) => {
                    Ok(Acquire::Answer(Bytes::from(answer)))
                }
                Ok(other) => Err(unexpected("lease acquire", &Value::Array(other.into()))),
                Err(other) => Err(unexpected("lease acquire", &Value::Array(other))),
            },
            other => Err(unexpected("lease acquire", &other)),
        }
    }

    async fn fill(
        &self,
        key: &str,
        token: Token,
        value: Option<Bytes>,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        // No envelope is empty: an empty value asks for a delete.
        let value = value.unwrap_or_default();
        let mut invocation = FILL.prepare_invoke();
        invocation
            .key(key)
            .key(lease_key(key))
            .arg(token.0)
            .arg(value.as_ref())
            .arg(millis(ttl));
        let stored: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(stored == 1)
    }

    async fn release(&self, key: &str, token: Token) -> Result<(), BackendError> {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(lease_key(key)).arg(token.0);
        self.call(|mut conn| async move { invocation.invoke_async::<()>(&mut conn).await })
            .await
    }

    async fn take_lease(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let set = redis::cmd("SET")
            .arg(lease_key(key))
            .arg(token.0)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .clone();
        let taken: Option<String> = self.run(&set).await?;
        Ok(taken.is_some())
    }

    async fn throttle(
        &self,
        key: &str,
        token: Token,
        window: Duration,
    ) -> Result<(), BackendError> {
        self.mark(key, token, b"!", window).await
    }

    async fn answer(
        &self,
        key: &str,
        token: Token,
        answer: Bytes,
        window: Duration,
    ) -> Result<(), BackendError> {
        let mut marker = Vec::with_capacity(1 + answer.len());
        marker.push(b'=');
        marker.extend_from_slice(&answer);
        self.mark(key, token, &marker, window).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_shares_its_keys_cluster_slot_and_never_names_a_value() {
        let lease = lease_key(r"app:v1:user:1\:x");
        assert_eq!(lease, r"{app:v1:user:1\:x}:lease");
        // Redis Cluster hashes what is between the first `{` and the next `}`.
        let tag = &lease[1..lease.find('}').unwrap()];
        assert_eq!(tag, r"app:v1:user:1\:x");
    }
}
