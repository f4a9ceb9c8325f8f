//! The stale-set race of cache-aside: reader A misses and reads the old
//! row; writer B updates the row and invalidates the key; A then stores
//! the old row, which stays until its TTL. With leases the cache never ends
//! holding an old version; with `lock = false` (plain cache-aside) it does,
//! which shows that the harness catches the race. Readers and writers use
//! different caches on one backend, as processes would, so that only the
//! lease (not this process's own bookkeeping) can prevent it.

mod support;

use cache_runtime::{cached, invalidates, Cache};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Shared;
use tokio::sync::oneshot;

/// Reads that stop after reading: one says when it has read, then waits.
type Hold = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// A "database" of rows that are version numbers. Reads take up to
/// `read_delay` after reading (the window in which a write can slip in),
/// and the next read can be held at a barrier.
#[derive(Default)]
struct Store {
    rows: Mutex<HashMap<u64, u64>>,
    read_delay: Duration,
    hold: Mutex<Option<Hold>>,
}

impl Store {
    fn version(&self, id: u64) -> u64 {
        *self.rows.lock().unwrap().get(&id).unwrap_or(&0)
    }

    async fn read(&self, id: u64) -> u64 {
        let version = self.version(id);
        let hold = self.hold.lock().unwrap().take();
        if let Some((read, release)) = hold {
            let _ = read.send(());
            let _ = release.await;
        }
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay.mul_f64(fastrand::f64())).await;
        }
        version
    }

    fn write(&self, id: u64) -> u64 {
        let mut rows = self.rows.lock().unwrap();
        let version = rows.entry(id).or_default();
        *version += 1;
        *version
    }
}

/// One process: its cache, and the functions every process runs.
struct App {
    cache: Cache,
    store: Arc<Store>,
}

impl App {
    #[cached(key = "row:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> u64 {
        self.store.read(id).await
    }

    /// The same read, as plain cache-aside.
    #[cached(key = "row:<id>", ttl = 60, cache = self.cache, lock = false)]
    async fn get_unlocked(&self, id: u64) -> u64 {
        self.store.read(id).await
    }

    async fn read(&self, id: u64, lock: bool) -> u64 {
        if lock {
            self.get(id).await
        } else {
            self.get_unlocked(id).await
        }
    }

    #[invalidates("row:<id>", cache = self.cache)]
    async fn write(&self, id: u64) -> u64 {
        self.store.write(id)
    }
}

async fn apps(backend: &Shared, store: &Arc<Store>, n: usize) -> Vec<Arc<App>> {
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(Arc::new(App {
            cache: backend.cache().await,
            store: Arc::clone(store),
        }));
    }
    apps
}

/// Forces the interleaving on row `id`: A reads version 1 and is held; B
/// writes version 2 and invalidates; A is released. What the cache holds
/// at the end.
async fn forced_race(backend: &Shared, id: u64, lock: bool) -> Option<u64> {
    let store = Arc::new(Store::default());
    store.write(id);
    let [a, b] = <[Arc<App>; 2]>::try_from(apps(backend, &store, 2).await)
        .ok()
        .unwrap();
    let (read_tx, read) = oneshot::channel();
    let (release, held) = oneshot::channel();
    *store.hold.lock().unwrap() = Some((read_tx, held));
    let reader = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.read(id, lock).await }
    });
    read.await.expect("A read its row");
    assert_eq!(b.write(id).await, 2);
    release.send(()).unwrap();
    assert_eq!(reader.await.unwrap(), 1, "A answers with what it read");
    let cached = b.cache.get::<u64>(&format!("row:{id}")).await;
    if lock {
        assert_eq!(a.cache.stats().lease_lost, 1, "A's lease was gone");
        assert_eq!(a.read(id, lock).await, 2, "the next read loads the new row");
    }
    cached
}

async fn a_load_that_read_before_a_write_never_stays_cached(backend: &Shared) {
    let with_leases = forced_race(backend, 1, true).await;
    assert_eq!(with_leases, None, "the old row was not stored");
    let plain = forced_race(backend, 2, false).await;
    assert_eq!(
        plain,
        Some(1),
        "plain cache-aside keeps the old row: the harness catches the race"
    );
}

const KEYS: u64 = 4;
const PROCESSES: usize = 4;
const READERS: usize = 16;
const READS: usize = 25;
const WRITES: usize = 10;
const RUN: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    reads: u64,
    writes: u64,
    stale: u64,
}

/// Rounds of readers and writers on `KEYS` rows from `PROCESSES` caches,
/// for `RUN`; after each round, with every task done, counts the keys whose
/// cached version is not the store's, then clears the keys for the next.
async fn randomized(backend: &Shared, lock: bool) -> Tally {
    let store = Arc::new(Store {
        read_delay: Duration::from_millis(2),
        ..Store::default()
    });
    let apps = apps(backend, &store, PROCESSES).await;
    let pick = |apps: &[Arc<App>]| Arc::clone(&apps[fastrand::usize(..apps.len())]);
    let mut tally = Tally::default();
    let start = Instant::now();
    while start.elapsed() < RUN {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..READERS {
            let app = pick(&apps);
            tasks.spawn(async move {
                for _ in 0..READS {
                    app.read(fastrand::u64(..KEYS), lock).await;
                }
            });
        }
        let app = pick(&apps);
        tasks.spawn(async move {
            for _ in 0..WRITES {
                tokio::time::sleep(Duration::from_micros(fastrand::u64(..2_000))).await;
                app.write(fastrand::u64(..KEYS)).await;
            }
        });
        tasks.join_all().await;
        tally.rounds += 1;
        tally.reads += (READERS * READS) as u64;
        tally.writes += WRITES as u64;
        for id in 0..KEYS {
            let key = format!("row:{id}");
            let cached = apps[0].cache.get::<u64>(&key).await;
            if cached.is_some_and(|v| v != store.version(id)) {
                tally.stale += 1;
            }
            apps[0].cache.invalidate(&[key]).await.unwrap();
        }
    }
    tally
}

async fn no_stale_key_survives_many_racing_reads_and_writes(backend: &Shared) {
    let name = match backend {
        Shared::Memory(_) => "memory",
        Shared::Redis(_) => "redis",
    };
    let leases = randomized(backend, true).await;
    let plain = randomized(backend, false).await;
    println!("{name}: stale keys at quiescence, with leases: {leases:?}; lock = false: {plain:?}");
    assert_eq!(leases.stale, 0, "with leases: {leases:?}");
    assert!(
        plain.stale > 0,
        "plain cache-aside must show the race here, or the harness proves nothing: {plain:?}"
    );
}

on_shared_backends!(
    a_load_that_read_before_a_write_never_stays_cached,
    no_stale_key_survives_many_racing_reads_and_writes,
);
