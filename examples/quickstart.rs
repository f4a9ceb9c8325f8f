//! A tour of `#[cached]` and `#[invalidates]`: a miss, a hit, an
//! invalidation, a cached `None`, and a stampede of 200 callers on two
//! application servers collapsed into one load.
//!
//! Runs on the embedded in-memory cache with no server at all:
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! and on Redis when `REDIS_URL` is set:
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example quickstart
//! ```

use cache_runtime::{cached, invalidates, Cache, MemoryStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

/// A stand-in for a database: a map, a call counter, and 50 ms per read.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, String>>,
    reads: AtomicUsize,
}

impl Db {
    async fn fetch(&self, id: u64) -> Result<Option<User>, DbError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rows = self.rows.lock().map_err(|_| DbError)?;
        Ok(rows.get(&id).map(|name| User {
            id,
            name: name.clone(),
        }))
    }

    fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.rows
            .lock()
            .map_err(|_| DbError)?
            .insert(id, name.to_owned());
        Ok(())
    }
}

struct Users {
    db: Arc<Db>,
    cache: Cache,
}

impl Users {
    #[cached(key = "user:<id>", ttl = "5m", null_ttl = 30, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.fetch(id).await
    }

    #[invalidates("user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.db.rename(id, name)
    }
}

fn show(step: &str, users: &Users, result: &Result<Option<User>, DbError>) {
    let stats = users.cache.stats();
    println!(
        "{step:<44} -> {:<34} database reads: {}  (hits {}, null hits {}, misses {})",
        format!("{result:?}"),
        users.db.reads.load(Ordering::SeqCst),
        stats.hits,
        stats.null_hits,
        stats.misses,
    );
}

/// The cache of one application server: on Redis, or in a memory store
/// that stands in for it.
async fn connect(store: &MemoryStore) -> Result<Cache, Box<dyn std::error::Error>> {
    let builder = Cache::builder().namespace("quickstart");
    Ok(match std::env::var("REDIS_URL") {
        Ok(url) => builder.redis(&url).await?,
        Err(_) => builder.memory_store(store),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => println!("cache: Redis at {url}"),
        Err(_) => println!("cache: in memory (set REDIS_URL to use Redis)"),
    }
    let store = MemoryStore::new(10_000);
    let users = Users {
        db: Arc::default(),
        cache: connect(&store).await?,
    };
    users.db.rename(1, "Ada").map_err(|_| "seed failed")?;
    // Start clean when a Redis kept entries from an earlier run.
    users.cache.invalidate(&["user:1", "user:2"]).await?;

    show(
        "get(1): miss, reads the database",
        &users,
        &users.get(1).await,
    );
    show("get(1): hit, no database read", &users, &users.get(1).await);
    users
        .rename(1, "Ada Lovelace")
        .await
        .map_err(|_| "rename failed")?;
    println!("rename(1, \"Ada Lovelace\"): invalidates user:1");
    show(
        "get(1): miss after invalidation",
        &users,
        &users.get(1).await,
    );
    show(
        "get(2): no such user, None is cached",
        &users,
        &users.get(2).await,
    );
    show(
        "get(2): null hit, no database read",
        &users,
        &users.get(2).await,
    );

    // A second application server: its own cache handle and loads in
    // flight, the same Redis (or memory store) and the same database.
    let other = Users {
        db: Arc::clone(&users.db),
        cache: connect(&store).await?,
    };
    users.cache.invalidate(&["user:1"]).await?;
    let before = users.db.reads.load(Ordering::SeqCst);
    let callers = (0..100).map(|_| users.get(1));
    let other_callers = (0..100).map(|_| other.get(1));
    let results = futures::future::join_all(callers.chain(other_callers)).await;
    let loads = users.db.reads.load(Ordering::SeqCst) - before;
    let answered = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    println!(
        "stampede: 100 concurrent get(1) on each of 2 servers, cold key -> {answered} answered, \
         {loads} database read ({} server waited on the other's lease)",
        users.cache.stats().lease_waits + other.cache.stats().lease_waits
    );
    println!("stats: {:?}", users.cache.stats());
    Ok(())
}
