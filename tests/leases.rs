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

/// A process: its cache, and a source whose loads can be held, slow or fail.
struct App {
    cache: Cache,
    loads: AtomicU64,
    /// Loads running now, and the most that ever ran at once.
    running: AtomicU64,
    peak: AtomicU64,
    /// How long each load takes, in milliseconds.
    delay_ms: AtomicU64,
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
            running: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            gate: Mutex::new(None),
            fail: AtomicBool::new(false),
            barrier: Barrier::new(UNLOCKED_CALLERS),
        })
    }

    async fn source(&self, id: u64) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        let running = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(running, SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        let delay = self.delay_ms.load(SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.running.fetch_sub(1, SeqCst);
        if self.fail.load(SeqCst) {
            return Err("database down".into());
        }
        Ok(id * 10)
    }

    #[cached(key = "none:<id>", ttl = 60, null_ttl = 0, cache = self.cache)]
    async fn get_none(&self, id: u64) -> Option<u64> {
        self.source(id).await.ok().filter(|_| false)
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
    let answers = support::concurrently(20, &b, |b| async move { b.get(1).await }).await;
    assert!(answers.iter().all(|r| *r == Ok(10)), "{answers:?}");
    let stats = b.cache.stats();
    assert_eq!(
        (
            stats.lease_waits,
            stats.wait_timeouts,
            stats.loads,
            stats.coalesced
        ),
        (1, 1, 1, 19),
        "b's leader gave up on a's lease and loaded once for its 20 callers"
    );
    assert_eq!(
        b.cache.get::<u64>("item:1").await,
        None,
        "not stored: the lease is a's"
    );
    held.call.abort();
}

/// A load that outlasts `lease_wait` is still shared by every caller of
/// this process: they wait for the body they would have run themselves.
async fn waiters_in_this_process_share_a_load_that_outlasts_lease_wait(backend: &Shared) {
    let a = App::new(backend, short_wait()).await;
    let held = a.hold(1).await;
    let waiters = tokio::spawn({
        let a = Arc::clone(&a);
        async move { support::concurrently(20, &a, |a| async move { a.get(1).await }).await }
    });
    // Twice lease_wait: a waiter with a deadline would have loaded by now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    held.release.send(()).unwrap();
    assert_eq!(held.call.await.unwrap(), Ok(10));
    let answers = waiters.await.unwrap();
    assert!(answers.iter().all(|r| *r == Ok(10)), "{answers:?}");
    let stats = a.cache.stats();
    assert_eq!((stats.loads, stats.wait_timeouts), (1, 0), "{stats:?}");
}

/// Past `lease_wait`, a slow failing source still sees one load at a time.
async fn a_slow_failing_source_sees_one_load_at_a_time(backend: &Shared) {
    let app = App::new(backend, short_wait()).await;
    app.fail.store(true, SeqCst);
    app.delay_ms.store(50, SeqCst);
    let answers = support::concurrently(10, &app, |app| async move { app.get(1).await }).await;
    assert!(answers.iter().all(Result::is_err));
    assert_eq!(app.loads.load(SeqCst), 10, "each caller its own error");
    assert_eq!(app.peak.load(SeqCst), 1, "taking turns, 500 ms in all");
}

/// A `None` that is not cached is still loaded once for the callers that
/// wait for it in every process: the holder leaves it in its lease.
async fn an_uncached_none_is_shared_with_the_callers_waiting_for_it(backend: &Shared) {
    let mut apps = Vec::new();
    for _ in 0..4 {
        let app = App::new(backend, Cache::builder()).await;
        app.delay_ms.store(100, SeqCst);
        apps.push(app);
    }
    let rounds = apps
        .iter()
        .map(|app| support::concurrently(25, app, |app| async move { app.get_none(1).await }));
    let answers: Vec<Option<u64>> = futures::future::join_all(rounds)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(answers, vec![None; 100]);
    let loads: u64 = apps.iter().map(|a| a.loads.load(SeqCst)).sum();
    assert_eq!(loads, 1, "one load, not one per process in turn");
    assert_eq!(apps[0].cache.ttl("none:1").await, None, "and not stored");
}

/// ... and to no one who comes after it: they load, as for any uncached
/// result, and may find the row that was written meanwhile.
async fn an_uncached_none_reaches_only_the_callers_that_waited_for_it(backend: &Shared) {
    let [a, b, c] = [(); 3].map(|()| App::new(backend, Cache::builder()));
    let (a, b, c) = (a.await, b.await, c.await);
    let held = a
        .hold_call(|a| async move { a.get_none(1).await.ok_or_else(|| "none".to_string()) })
        .await;
    let waiter = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.get_none(1).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.cache.stats().lease_waits == 0 {
        assert!(Instant::now() < deadline, "b never waited for a's lease");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    held.release.send(()).unwrap();
    assert_eq!(held.call.await.unwrap(), Err("none".into()));
    assert_eq!(waiter.await.unwrap(), None);
    assert_eq!(
        b.loads.load(SeqCst),
        0,
        "b waited for a's load: it shares it"
    );
    assert_eq!(c.get_none(1).await, None);
    assert_eq!(c.loads.load(SeqCst), 1, "c came after it: c loads");
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
    waiters_in_this_process_share_a_load_that_outlasts_lease_wait,
    a_slow_failing_source_sees_one_load_at_a_time,
    an_uncached_none_is_shared_with_the_callers_waiting_for_it,
    an_uncached_none_reaches_only_the_callers_that_waited_for_it,
    a_failed_load_releases_its_lease_at_once,
    lock_false_is_plain_cache_aside,
);

const LEASE_KEY: &str = "{cache:v1:item:1}:lease";

fn exists(server: &RedisServer, key: &str) -> bool {
    server.query::<u32>(redis::cmd("EXISTS").arg(key)) == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_lease_is_a_key_beside_the_value_and_dies_with_it() {
    let backend = Shared::redis();
    let server = backend.server();
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
    let backend = Shared::redis();
    let server = backend.server();
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

/// Polls until the lease of `item:1` is gone, for at most 10 s (its TTL is
/// 60 s: only a release removes it in time).
async fn lease_released(server: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(server, LEASE_KEY) {
        assert!(Instant::now() < deadline, "the lease was never released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn long_lease() -> CacheBuilder {
    Cache::builder().lease_ttl(Duration::from_secs(60))
}

/// A lease request cancelled on its way may still be granted on the
/// server: the lease is released anyway, not left for its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_lease_request_cancelled_in_flight_is_released() {
    let backend = Shared::redis();
    let server = backend.server();
    let a = App::new(&backend, long_lease().timeout(Duration::from_secs(5))).await;
    // Reads pass; scripts wait until the pause ends.
    server.query::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(10_000).arg("WRITE"));
    let call = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.get(1).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // the request is on its way
    call.abort();
    server.query::<()>(redis::cmd("CLIENT").arg("UNPAUSE"));
    lease_released(server).await;
    assert_eq!(a.loads.load(SeqCst), 0, "the cancelled call never loaded");
}

/// A lease request that timed out may still be granted once the server
/// answers again: the lease is released anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_lease_request_that_timed_out_is_released() {
    let backend = Shared::redis();
    let server = backend.server();
    let a = App::new(&backend, long_lease()).await;
    server.freeze();
    assert_eq!(a.get(1).await, Ok(10), "the body answers");
    server.thaw();
    lease_released(server).await;
    let b = App::new(&backend, long_lease()).await;
    assert_eq!(b.get(1).await, Ok(10));
    assert_eq!(b.cache.stats().lease_waits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_scripts_run_by_sha_and_reload_after_a_flush() {
    let backend = Shared::redis();
    let server = backend.server();
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
}
