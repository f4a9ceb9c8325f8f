//! The write-behind function of the cross-process tests: stock per SKU,
//! whose body writes to a "database" that is a second `redis-server`
//! (`db:stock:<sku>`, and `db:body_runs` counts every run), so that writer
//! and flusher processes share it. The tests write through it; the
//! `write-behind-worker` processes (`tests/worker`) run its flushers.

use cache_runtime::{cached, Cache};
use redis::aio::ConnectionManager;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub enum StockError {
    Down,
    Db(redis::RedisError),
    Cache(cache_runtime::Error),
}

impl From<cache_runtime::Error> for StockError {
    fn from(e: cache_runtime::Error) -> Self {
        StockError::Cache(e)
    }
}

impl fmt::Display for StockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StockError::Down => f.write_str("database down"),
            StockError::Db(e) => write!(f, "database: {e}"),
            StockError::Cache(e) => write!(f, "cache: {e}"),
        }
    }
}

pub struct Stock {
    pub cache: Cache,
    db: ConnectionManager,
    /// How long each database write takes on top of its round trip.
    delay: Duration,
    /// While set, every database write fails at once.
    pub down: AtomicBool,
}

impl Stock {
    pub async fn new(cache: Cache, db_url: &str, delay: Duration) -> Arc<Stock> {
        let client = redis::Client::open(db_url).expect("database url");
        let db = ConnectionManager::new(client)
            .await
            .expect("connect to the database");
        Arc::new(Stock {
            cache,
            db,
            delay,
            down: AtomicBool::new(false),
        })
    }

    #[cached(
        strategy = "write_behind",
        key = "stock:<sku>",
        value = qty,
        ttl = 300,
        queue = "stock",
        cache = self.cache,
        handle = STOCK
    )]
    pub async fn set_stock(&self, sku: u32, qty: u64) -> Result<(), StockError> {
        if self.down.load(SeqCst) {
            return Err(StockError::Down);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        redis::pipe()
            .atomic()
            .set(format!("db:stock:{sku}"), qty)
            .ignore()
            .incr("db:body_runs", 1)
            .ignore()
            .query_async::<()>(&mut self.db.clone())
            .await
            .map_err(StockError::Db)
    }
}
