//! What the benchmarks (`benches/cache.rs`) and the `bench` example share:
//! the cached value, and the clients compared: ours (an annotated
//! function), the hand-written equivalent on the same kind of connection,
//! the `cached` crate's `#[concurrent_cached]` with its async Redis store,
//! and moka's in-memory cache.
#![allow(dead_code)] // each binary uses a part of it

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

pub use redis_server::RedisServer;

use cache_runtime::{cached, Cache};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::Duration;

/// How long every client keeps an entry.
pub const TTL_SECS: u64 = 3_600;

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
