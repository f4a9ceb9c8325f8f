//! Leases, case by case, on both backends: what happens to a load in
//! flight when its key is written, when it fails, hangs or is cancelled,
//! how long the others wait for it, and what `lock = false` leaves out.
//! Caches made from one `Shared` backend stand for separate processes.

mod support;

use cache_runtime::{cached, Cache, CacheBuilder};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, Shared};
use tokio::sync::{oneshot, Barrier};
use tokio::task::JoinHandle;

/// A process: its cache, and a source whose loads can be held or fail.
struct App {
    cache: Cache,
    loads: AtomicU64,
    /// When set, the next load waits here until released.
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    fail: AtomicBool,
    /// Callers of `get_unlocked` meet here inside the body.
    barrier: Barrier,
}

/// A load in flight that holds its key's lease until released (or, if
/// never released, until aborted: a hung or cancelled load).
struct Held {
    call: JoinHandle<Result<u64, String>>,
    release: oneshot::Sender<()>,
}

impl App {
    async fn new(backend: &Shared, builder: CacheBuilder) -> Arc<App> {
        Arc::new(App {
            cache: backend.cache_with(builder).await,
            loads: AtomicU64::new(0),
            gate: Mutex::new(None),
            fail: AtomicBool::new(false),
            barrier: Barrier::new(UNLOCKED_CALLERS),
        })
    }

    async fn source(&self, id: u64) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        if self.fail.load(SeqCst) {
            return Err("database down".into());
        }
        Ok(id * 10)
    }

    #[cached(key = "item:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<u64, String> {
        self.source(id).await
    }

    #[cached(key = "short:<id>", lease_ttl = "2s", lease_wait = "30s", cache = self.cache)]
    async fn get_short_lease(&self, id: u64) -> Result<u64, String> {
        self.source(id).await
    }

    #[cached(key = "impatient:<id>", lease_wait = "500ms", cache = self.cache)]
    async fn get_impatient(&self, id: u64) -> Result<u64, String> {
        self.source(id).await
    }

    #[cached(key = "plain:<id>", ttl = 60, cache = self.cache, lock = false)]
    async fn get_unlocked(&self, id: u64) -> Result<u64, String> {
        self.barrier.wait().await;
        self.source(id).await
    }

    /// Starts a `get(id)` and returns once its load runs, holding the lease.
    async fn hold(self: &Arc<Self>, id: u64) -> Held {
        self.hold_call(move |app| async move { app.get(id).await })
            .await
    }

    /// Starts `call` and returns once its load runs, holding the lease.
    async fn hold_call<F, Fut>(self: &Arc<Self>, call: F) -> Held
    where
        F: FnOnce(Arc<App>) -> Fut,
        Fut: Future<Output = Result<u64, String>> + Send + 'static,
    {
        let (release, gate) = oneshot::channel();
        *self.gate.lock().unwrap() = Some(gate);
        let before = self.loads.load(SeqCst);
        let call = tokio::spawn(call(Arc::clone(self)));
        while self.loads.load(SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Held { call, release }
    }
}

const UNLOCKED_CALLERS: usize = 20;

fn short_wait() -> CacheBuilder {
    Cache::builder()
        .lease_ttl(Duration::from_secs(60))
        .lease_wait(Duration::from_millis(300))
}

async fn a_write_cancels_the_lease_of_a_load_in_flight(backend: &Shared) {
    let a = App::new(backend, Cache::builder()).await;
    let b = App::new(backend, Cache::builder()).await;
    let held = a.hold(1).await;
    b.cache
        .set("item:1", &99u64, Duration::from_secs(60))
        .await
        .unwrap();
    held.release.send(()).unwrap();
    assert_eq!(held.call.await.unwrap(), Ok(10), "a answers with its load");
    assert_eq!(a.cache.stats().lease_lost, 1, "but may not store it");
    assert_eq!(b.get(1).await, Ok(99), "the write stays");
    assert_eq!(b.loads.load(SeqCst), 0);
}

async fn a_caller_waits_at_most_lease_wait_then_loads_unstored(backend: &Shared) {
    let a = App::new(backend, Cache::builder()).await;
    let b = App::new(backend, short_wait()).await;
    let held = a.hold(1).await;
    assert_eq!(b.get(1).await, Ok(10), "b answers from its own load");
    let stats = b.cache.stats();
    assert_eq!(
        (stats.lease_waits, stats.wait_timeouts, stats.loads),
        (1, 1, 1)
    );
    assert_eq!(
        b.cache.get::<u64>("item:1").await,
        None,
        "not stored: the lease is a's"
    );
    held.call.abort();
}

async fn a_waiter_in_the_same_process_waits_at_most_lease_wait(backend: &Shared) {
    let a = App::new(backend, short_wait()).await;
    let held = a.hold(1).await;
    assert_eq!(a.get(1).await, Ok(10));
    let stats = a.cache.stats();
    assert_eq!((stats.wait_timeouts, stats.loads), (1, 2), "{stats:?}");
    held.call.abort();
}

async fn a_failed_load_releases_its_lease_at_once(backend: &Shared) {
    let a = App::new(backend, Cache::builder()).await;
    let b = App::new(backend, Cache::builder()).await;
    a.fail.store(true, SeqCst);
    assert_eq!(a.get(1).await, Err("database down".into()));
    assert_eq!(b.get(1).await, Ok(10));
    assert_eq!(
        b.cache.stats().lease_waits,
        0,
        "b was granted the lease without waiting for its TTL"
    );
    assert_eq!(a.get(1).await, Ok(10), "b stored its load");
    assert_eq!(a.loads.load(SeqCst), 1);
}

async fn lock_false_is_plain_cache_aside(backend: &Shared) {
    let app = App::new(backend, Cache::builder()).await;
    // Every caller must be inside the body at once for the barrier to
    // open: with any coordination this would hang.
    let calls = support::concurrently(UNLOCKED_CALLERS, &app, |app| async move {
        tokio::time::timeout(Duration::from_secs(10), app.get_unlocked(4)).await
    })
    .await;
    assert!(calls.iter().all(|r| *r == Ok(Ok(40))), "{calls:?}");
    assert_eq!(app.loads.load(SeqCst), UNLOCKED_CALLERS as u64);
    assert_eq!(
        app.cache.get::<u64>("plain:4").await,
        Some(40),
        "and stored"
    );
}

on_shared_backends!(
    a_write_cancels_the_lease_of_a_load_in_flight,
    a_caller_waits_at_most_lease_wait_then_loads_unstored,
    a_waiter_in_the_same_process_waits_at_most_lease_wait,
    a_failed_load_releases_its_lease_at_once,
    lock_false_is_plain_cache_aside,
);

/// On tokio's paused clock (which moves only when every task waits), the
/// lease TTL and wait given in the attribute apply to the exact millisecond.
#[tokio::test(start_paused = true)]
async fn the_attributes_lease_ttl_and_lease_wait_apply() {
    let backend = Shared::Memory(cache_runtime::MemoryStore::new(100));
    let a = App::new(&backend, Cache::builder()).await;
    let b = App::new(&backend, Cache::builder()).await;

    let held = a
        .hold_call(|app| async move { app.get_short_lease(1).await })
        .await;
    let start = tokio::time::Instant::now();
    assert_eq!(b.get_short_lease(1).await, Ok(10));
    let taken_over = start.elapsed();
    assert!(
        taken_over >= Duration::from_secs(2) && taken_over <= Duration::from_millis(2_050),
        "b took the lease over when it expired, 2 s after a took it: {taken_over:?}"
    );
    assert_eq!(b.cache.stats().wait_timeouts, 0);
    assert_eq!(
        b.cache.get::<u64>("short:1").await,
        Some(10),
        "and filled it"
    );
    held.call.abort();

    let held = a
        .hold_call(|app| async move { app.get_impatient(2).await })
        .await;
    let start = tokio::time::Instant::now();
    assert_eq!(b.get_impatient(2).await, Ok(20));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(500),
        "b gave up at lease_wait"
    );
    assert_eq!(b.cache.stats().wait_timeouts, 1);
    held.call.abort();
}

const LEASE_KEY: &str = "{cache:v1:item:1}:lease";

fn exists(server: &RedisServer, key: &str) -> bool {
    server.query::<u32>(redis::cmd("EXISTS").arg(key)) == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_lease_is_a_key_beside_the_value_and_dies_with_it() {
    let backend = Shared::Redis(RedisServer::start());
    let Shared::Redis(server) = &backend else {
        unreachable!()
    };
    let a = App::new(&backend, Cache::builder()).await;
    let held = a.hold(1).await;
    assert!(exists(server, LEASE_KEY), "the holder's lease");
    let pttl: i64 = server.query(redis::cmd("PTTL").arg(LEASE_KEY));
    assert!((1..=5_000).contains(&pttl), "the lease TTL: {pttl} ms");
    a.cache.invalidate(&["item:1"]).await.unwrap();
    assert!(!exists(server, LEASE_KEY), "deleted with its key");
    held.call.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_cancelled_load_releases_its_lease() {
    let backend = Shared::Redis(RedisServer::start());
    let Shared::Redis(server) = &backend else {
        unreachable!()
    };
    let a = App::new(&backend, Cache::builder()).await;
    let held = a.hold(1).await;
    held.call.abort(); // say, the request was cancelled
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(server, LEASE_KEY) {
        assert!(Instant::now() < deadline, "the lease was never released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = App::new(&backend, Cache::builder()).await;
    assert_eq!(b.get(1).await, Ok(10));
    assert_eq!(b.cache.stats().lease_waits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_scripts_run_by_sha_and_reload_after_a_flush() {
    let backend = Shared::Redis(RedisServer::start());
    let Shared::Redis(server) = &backend else {
        unreachable!()
    };
    let a = App::new(&backend, Cache::builder()).await;
    assert_eq!(a.get(1).await, Ok(10));
    server.query::<()>(redis::cmd("SCRIPT").arg("FLUSH"));
    assert_eq!(a.get(2).await, Ok(20), "NOSCRIPT: loaded again");
    assert_eq!(a.get(2).await, Ok(20));
    assert_eq!(a.loads.load(SeqCst), 2, "both loads were stored");
    let info: String = server.query(redis::cmd("INFO").arg("commandstats"));
    // `cmdstat_evalsha:calls=6,usec=..,failed_calls=2`
    let stat = |command: &str, field: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:")))
            .and_then(|fields| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(&format!("{field}=")))?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    assert_eq!(
        stat("eval", "calls"),
        0,
        "scripts are not sent whole: {info}"
    );
    // Loaded at connect, so only the two scripts used after the flush
    // (acquire, fill) found themselves missing, once each.
    assert_eq!(stat("evalsha", "failed_calls"), 2, "{info}");
    assert_eq!(
        stat("evalsha", "calls"),
        6,
        "2 per load + 2 retries: {info}"
    );
    assert_eq!(stat("script|load", "calls"), 5, "3 at connect + 2: {info}");
}
