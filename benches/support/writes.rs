//! The write strategies under benchmark (`examples/bench.rs`): one write
//! of a profile through each, with a body that does nothing (no
//! database), so that what is timed is the cache's part of a write; and
//! the hand-written cache write it compares with: encode, `SET` with a TTL.

use super::{bincode_config, DbError, Profile, TTL_SECS};
use cache_runtime::{cached, invalidates, Cache};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::fmt;
use std::sync::Arc;

#[derive(Debug)]
pub struct WriteError;

impl From<cache_runtime::Error> for WriteError {
    fn from(_: cache_runtime::Error) -> Self {
        WriteError
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("write failed")
    }
}

pub struct Writes {
    pub cache: Cache,
    hand: Option<ConnectionManager>,
}

impl Writes {
    /// Writes on `cache`; the hand-written side on Redis at `url`, if any.
    pub async fn new(cache: Cache, url: Option<&str>) -> Arc<Writes> {
        let hand = match url {
            Some(url) => {
                let client = redis::Client::open(url).expect("redis url");
                Some(ConnectionManager::new(client).await.expect("connect"))
            }
            None => None,
        };
        Arc::new(Writes { cache, hand })
    }

    #[cached(strategy = "write_through", key = "wt:<id>", ttl = 3600, cache = self.cache)]
    pub async fn write_through(&self, id: u64) -> Result<Profile, DbError> {
        Ok(Profile::sample(id))
    }

    #[invalidates("wt:<id>", cache = self.cache)]
    pub async fn invalidate(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        Ok(())
    }

    #[cached(
        strategy = "write_behind",
        key = "wb:<id>",
        value = Profile::sample(id),
        ttl = 3600,
        queue = "bench",
        cache = self.cache,
        handle = BEHIND
    )]
    pub async fn write_behind(&self, id: u64) -> Result<(), WriteError> {
        let _ = id;
        Ok(())
    }

    /// The cache write people add by hand after a database write.
    pub async fn hand_set(&self, id: u64) {
        let mut conn = self.hand.clone().expect("a Redis connection");
        let bytes =
            bincode::serde::encode_to_vec(Profile::sample(id), bincode_config()).expect("encodes");
        let _: redis::RedisResult<()> = conn.set_ex(format!("hand:wt:{id}"), bytes, TTL_SECS).await;
    }

    /// The invalidation people add by hand after a database write.
    pub async fn hand_del(&self, id: u64) {
        let mut conn = self.hand.clone().expect("a Redis connection");
        let _: redis::RedisResult<()> = conn.del(format!("hand:wt:{id}")).await;
    }
}
