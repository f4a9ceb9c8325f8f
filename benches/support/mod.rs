//! What the benchmarks (`benches/cache.rs`) and the `bench` example share:
//! the cached value, and the clients compared: ours (an annotated
//! function), the hand-written equivalent on the same kind of connection,
//! the `cached` crate's `#[concurrent_cached]` with its async Redis store,
//! and moka's in-memory cache.
#![allow(dead_code)] // each binary uses a part of it

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

pub use redis_server::RedisServer;

pub mod writes;

use cache_runtime::{cached, Cache};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long every client keeps an entry.
pub const TTL_SECS: u64 = 3_600;
/// Warm keys the hit benchmarks cycle through.
pub const WARM: u64 = 1_000;

/// A cache client under test: reads the profile of `id` through its cache.
pub trait Client: Send + Sync + 'static {
    fn get(&self, id: u64) -> impl Future<Output = Result<Profile, DbError>> + Send;
}

impl Client for Ours {
    fn get(&self, id: u64) -> impl Future<Output = Result<Profile, DbError>> + Send {
        self.profile(id)
    }
}

impl Client for HandWritten {
    fn get(&self, id: u64) -> impl Future<Output = Result<Profile, DbError>> + Send {
        self.profile(id)
    }
}

/// The `cached` crate's function, as a client.
pub struct Theirs;

impl Client for Theirs {
    fn get(&self, id: u64) -> impl Future<Output = Result<Profile, DbError>> + Send {
        theirs_profile(id)
    }
}

/// The three Redis clients on `url`, their first `WARM` keys stored. Call
/// it on the runtime that will use them: a client's connection is a task
/// on the runtime it was made on, and only runs while that runtime does.
pub async fn connect_and_warm(url: &str) -> (Arc<Ours>, Arc<HandWritten>, Arc<Theirs>) {
    set_theirs_url(url);
    let cache = Cache::builder().redis(url).await.expect("connect to redis");
    let ours = Arc::new(Ours { cache });
    let hand = Arc::new(HandWritten::connect(url).await);
    for id in 0..WARM {
        ours.profile(id).await.expect("warm ours");
        hand.profile(id).await.expect("warm hand-written");
        theirs_profile(id).await.expect("warm the cached crate");
    }
    (ours, hand, Arc::new(Theirs))
}

/// A tokio runtime of `threads` workers (1: the current thread).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// What `redis-benchmark -c 50 -t get` reaches on the same server, for
/// reference; `None` when it is not installed.
pub fn redis_benchmark(server: &RedisServer) -> Option<String> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", "50", "-n", "100000", "-t", "get", "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` rewrites its progress line with `\r`; the last one is the result.
    let line = text
        .split(['\r', '\n'])
        .rev()
        .find(|l| l.contains("requests per second"))?;
    Some(line.trim().to_owned())
}

/// The value every benchmark caches: a user profile of 11 fields, about
/// 200 bytes once encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: u64,
    pub handle: String,
    pub display_name: String,
    pub email: String,
    pub country: String,
    pub locale: String,
    pub created_at: u64,
    pub last_seen: u64,
    pub karma: i64,
    pub verified: bool,
    pub bio: String,
}

impl Profile {
    /// The "database row" for `id`.
    pub fn sample(id: u64) -> Profile {
        Profile {
            id,
            handle: format!("user{id:08}"),
            display_name: "Ada Lovelace-Byron".into(),
            email: format!("user{id:08}@example.com"),
            country: "GB".into(),
            locale: "en-GB".into(),
            created_at: 1_700_000_000_000 + id,
            last_seen: 1_790_000_000_000 + id,
            karma: 12_345,
            verified: id & 1 == 0,
            bio: "Mathematician and writer, known for her work on the Analytical \
                  Engine; the first to publish an algorithm for it."
                .into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbError;

/// The header of the entries the codec benchmarks encode.
pub fn header() -> cache_runtime::envelope::Header {
    cache_runtime::envelope::Header {
        written_at_ms: 1_790_000_000_000,
        fresh_ms: TTL_SECS * 1_000,
        load_ms: 3,
    }
}

/// The codec every Redis client here uses for the value: bincode 2, serde,
/// standard configuration.
pub fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Ours: one annotated function.
pub struct Ours {
    pub cache: Cache,
}

impl Ours {
    #[cached(key = "profile:<id>", ttl = 3600, cache = self.cache)]
    pub async fn profile(&self, id: u64) -> Result<Profile, DbError> {
        Ok(Profile::sample(id))
    }
}

/// The cache-aside block people write by hand, on a `ConnectionManager`
/// with its default settings: GET and decode; on a miss, load, encode and
/// SET with a TTL.
#[derive(Clone)]
pub struct HandWritten {
    conn: ConnectionManager,
}

impl HandWritten {
    pub async fn connect(url: &str) -> HandWritten {
        let client = redis::Client::open(url).expect("redis url");
        let conn = ConnectionManager::new(client)
            .await
            .expect("connect to redis");
        HandWritten { conn }
    }

    pub async fn profile(&self, id: u64) -> Result<Profile, DbError> {
        let key = format!("hand:profile:{id}");
        let mut conn = self.conn.clone();
        let cached: Option<Vec<u8>> = conn.get(&key).await.unwrap_or(None);
        if let Some(bytes) = cached {
            if let Ok((profile, _)) = bincode::serde::decode_from_slice(&bytes, bincode_config()) {
                return Ok(profile);
            }
        }
        let profile = Profile::sample(id);
        if let Ok(bytes) = bincode::serde::encode_to_vec(&profile, bincode_config()) {
            let _: redis::RedisResult<()> = conn.set_ex(&key, bytes, TTL_SECS).await;
        }
        Ok(profile)
    }
}

static THEIRS_URL: OnceLock<String> = OnceLock::new();

/// Points the `cached` crate's store at `url`; call before the first
/// `theirs_profile`.
pub fn set_theirs_url(url: &str) {
    let _ = THEIRS_URL.set(url.to_owned());
}

#[cached::macros::concurrent_cached(
    map_error = r##"|_| DbError"##,
    ty = "cached::AsyncRedisCache<u64, Profile>",
    create = r##"{
        cached::AsyncRedisCache::builder("theirs:profile")
            .ttl(Duration::from_secs(TTL_SECS))
            .connection_string(THEIRS_URL.get().expect("set_theirs_url first"))
            .connection_manager(true)
            .build()
            .await
            .expect("connect the cached crate's store")
    }"##
)]
pub async fn theirs_profile(id: u64) -> Result<Profile, DbError> {
    Ok(Profile::sample(id))
}

/// moka's async cache of the same value type, keyed by id.
pub fn moka() -> moka::future::Cache<u64, Profile> {
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(TTL_SECS))
        .build()
}
