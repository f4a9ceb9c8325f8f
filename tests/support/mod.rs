//! Test support: a `redis-server` of the test's own on a free loopback
//! port, stopped when dropped, and a fake database that counts its loads.
#![allow(dead_code)] // each test binary uses a part of it

pub mod child;
mod redis_server;
pub mod stampede;
pub mod stock;

pub use redis_server::RedisServer;

use cache_runtime::{Cache, MemoryStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// A cached row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub struct DbError;

/// A fake database: rows in a map, a count of reads, a switch that makes
/// every call fail, and the most reads seen in flight at once.
#[derive(Default)]
pub struct Db {
    rows: Mutex<HashMap<u64, String>>,
    pub loads: AtomicUsize,
    pub failing: AtomicBool,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Db {
    pub fn with_rows(rows: &[(u64, &str)]) -> Self {
        let db = Db::default();
        for (id, name) in rows {
            db.put(*id, name);
        }
        db
    }

    pub fn put(&self, id: u64, name: &str) {
        self.rows.lock().unwrap().insert(id, name.to_owned());
    }

    pub fn loads(&self) -> usize {
        self.loads.load(SeqCst)
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, SeqCst);
    }

    /// Reads a row; yields to the scheduler so that concurrent callers
    /// really overlap.
    pub async fn read(&self, id: u64) -> Result<Option<User>, DbError> {
        self.loads.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        if self.failing.load(SeqCst) {
            return Err(DbError);
        }
        Ok(self.rows.lock().unwrap().get(&id).map(|name| User {
            id,
            name: name.clone(),
        }))
    }

    pub fn write(&self, id: u64, name: &str) -> Result<(), DbError> {
        if self.failing.load(SeqCst) {
            return Err(DbError);
        }
        self.put(id, name);
        Ok(())
    }
}

/// An in-memory cache with jitter off, so TTLs are exact.
pub fn memory() -> Cache {
    Cache::builder().ttl_jitter(0.0).memory()
}

/// A Redis cache on `server` with jitter off.
pub async fn redis(server: &RedisServer) -> Cache {
    Cache::builder()
        .ttl_jitter(0.0)
        .redis(&server.url())
        .await
        .expect("connect to the test redis-server")
}

/// Where the caches of a multi-cache test live: every cache made by
/// [`Shared::cache`] shares the entries and leases, and has its own
/// in-flight loads, as processes sharing one Redis do.
pub enum Shared {
    Memory(MemoryStore),
    Redis(RedisServer),
}

impl Shared {
    /// A fresh `redis-server`.
    pub fn redis() -> Shared {
        Shared::Redis(RedisServer::start())
    }

    /// The `redis-server` of a Redis backend.
    pub fn server(&self) -> &RedisServer {
        match self {
            Shared::Redis(server) => server,
            Shared::Memory(_) => panic!("a memory backend has no server"),
        }
    }

    /// A new cache on the shared backend (jitter off).
    pub async fn cache(&self) -> Cache {
        self.cache_with(Cache::builder()).await
    }

    /// A new cache on the shared backend from `builder` (jitter off).
    pub async fn cache_with(&self, builder: cache_runtime::CacheBuilder) -> Cache {
        let builder = builder.ttl_jitter(0.0);
        match self {
            Shared::Memory(store) => builder.memory_store(store),
            Shared::Redis(server) => builder
                .redis(&server.url())
                .await
                .expect("connect to the test redis-server"),
        }
    }
}

/// Runs a scenario `async fn name(backend: &Shared)` once on a shared
/// memory store and once on a fresh `redis-server`.
#[macro_export]
macro_rules! on_shared_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let store = cache_runtime::MemoryStore::new(100_000);
                super::$scenario(&$crate::support::Shared::Memory(store)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let server = $crate::support::RedisServer::start();
                super::$scenario(&$crate::support::Shared::Redis(server)).await;
            }
        }
    )*};
}

/// Runs a scenario `async fn name(cache: Cache, server: Option<&RedisServer>)`
/// once on the in-memory backend and once on a fresh `redis-server`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario($crate::support::memory(), None).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let server = $crate::support::RedisServer::start();
                let cache = $crate::support::redis(&server).await;
                super::$scenario(cache, Some(&server)).await;
            }
        }
    )*};
}

/// Runs `n` copies of `call` as concurrent tokio tasks and returns their
/// results in order.
pub async fn concurrently<S, T, F, Fut>(n: usize, shared: &std::sync::Arc<S>, call: F) -> Vec<T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(std::sync::Arc<S>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(call(std::sync::Arc::clone(shared))))
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("caller task panicked"));
    }
    results
}
