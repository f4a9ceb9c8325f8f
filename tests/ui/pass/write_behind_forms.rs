//! Write-behind on a free function and a `&self` method, with borrowed
//! (`mut` too), `Option`, slice and `Path` arguments, `?` and `return` in
//! the body, a nested item with its own `self`, a `queue` name and the
//! default cache: the flusher decodes what the call queued and the body
//! sees the types it was written for. No warnings.
#![deny(warnings)]

use cache_runtime::{cached, Cache};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

static WRITTEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug)]
pub struct DbError(String);

impl From<cache_runtime::Error> for DbError {
    fn from(e: cache_runtime::Error) -> Self {
        DbError(e.to_string())
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(ok: bool) -> Result<(), DbError> {
    if ok {
        Ok(())
    } else {
        Err(DbError("refused".into()))
    }
}

/// Tags an item.
#[cached(strategy = "write_behind", key = "tags:<id>", value = tags.to_vec(), ttl = "10m", queue = "tags", handle = TAGS)]
pub async fn set_tags(id: u64, tags: &[String], mut note: Option<String>) -> Result<(), DbError> {
    check(!tags.is_empty())?;
    if let Some(n) = note.as_mut() {
        n.push('!');
    }
    WRITTEN.lock().unwrap().push(format!("{id}:{}:{note:?}", tags.join(",")));
    return Ok(());
}

struct Counter {
    cache: Cache,
    flushed: AtomicU64,
}

impl Counter {
    #[cached(strategy = "write_behind", key = "count:<name>", value = n, queue = "counts", cache = self.cache, handle = COUNT)]
    async fn set(&self, mut name: &str, n: u64, file: &std::path::Path) -> Result<(), DbError> {
        name = name.trim();
        struct Twice(u64);
        impl Twice {
            fn get(&self) -> u64 {
                self.0 * 2
            }
        }
        assert_eq!((name, file.to_str()), ("x", Some("/tmp/x")));
        self.flushed.fetch_add(Twice(n).get(), SeqCst);
        Ok(())
    }
}

/// Calls can be spawned: their futures are `Send`.
fn spawnable<F: std::future::Future + Send>(call: F) -> F {
    call
}

async fn run() {
    cache_runtime::set_default(Cache::memory());
    let flusher = TAGS.flusher().start();
    spawnable(set_tags(1, &["a".into(), "b".into()], Some("hi".into()))).await.unwrap();
    set_tags(2, &[], None).await.unwrap();
    assert_eq!(TAGS.name(), "tags");
    let cached = cache_runtime::default_cache().unwrap().get::<Vec<String>>("tags:1").await;
    assert_eq!(cached, Some(vec!["a".to_string(), "b".to_string()]));
    let report = flusher.stop().await;
    assert_eq!(report.flushed, 1);
    assert_eq!(*WRITTEN.lock().unwrap(), ["1:a,b:Some(\"hi!\")"]);

    let counter = Arc::new(Counter { cache: Cache::memory(), flushed: AtomicU64::new(0) });
    spawnable(counter.set(" x ", 7, std::path::Path::new("/tmp/x"))).await.unwrap();
    let report = Counter::COUNT.flusher_for(Arc::clone(&counter)).start().stop().await;
    assert_eq!((report.flushed, counter.flushed.load(SeqCst)), (1, 14));
    assert_eq!(Counter::COUNT.queue_for(&counter).stats().await.unwrap().depth, 0);
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
