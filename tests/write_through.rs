//! Write-through on both backends: a write stores what it wrote, beats a
//! load in flight, leaves the cache alone when it fails, and, with
//! `version`, never lets an older row replace a newer one when two
//! writers' cache writes arrive in the opposite order to their commits.
//! Two `App`s on one backend stand for two processes sharing a database.

mod support;

use cache_runtime::{cached, Cache};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::Shared;
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    /// Set by the database on every commit: one more than the last.
    version: u64,
    updated_at: SystemTime,
}

fn row(id: u64, name: &str) -> Row {
    Row {
        id,
        name: name.into(),
        version: 0,
        updated_at: UNIX_EPOCH,
    }
}

/// A value whose encoding fails, as a type with a broken `Serialize` does.
#[derive(Debug, Deserialize)]
struct Unencodable(#[allow(dead_code)] u64);

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value does not encode"))
    }
}

/// A database shared by the apps: rows, a count of reads, a failure switch.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, Row>>,
    versions: AtomicU64,
    fail: AtomicBool,
}

impl Db {
    fn commit(&self, mut row: Row) -> Result<Row, String> {
        if self.fail.load(SeqCst) {
            return Err("database down".into());
        }
        row.version = self.versions.fetch_add(1, SeqCst) + 1;
        row.updated_at = UNIX_EPOCH + Duration::from_millis(1_790_000_000_000 + row.version);
        self.rows.lock().unwrap().insert(row.id, row.clone());
        Ok(row)
    }
}

/// A process: its cache, the shared database, and gates that hold a load
/// after it read, or a write after it committed, until released.
struct App {
    cache: Cache,
    db: Arc<Db>,
    reads: AtomicU64,
    read_gate: Mutex<Option<oneshot::Receiver<()>>>,
    write_gate: Mutex<Option<oneshot::Receiver<()>>>,
}

impl App {
    async fn new(backend: &Shared, db: &Arc<Db>) -> Arc<App> {
        Arc::new(App {
            cache: backend.cache().await,
            db: Arc::clone(db),
            reads: AtomicU64::new(0),
            read_gate: Mutex::new(None),
            write_gate: Mutex::new(None),
        })
    }

    async fn wait_at(gate: &Mutex<Option<oneshot::Receiver<()>>>) {
        let gate = gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
    }

    #[cached(key = "row:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<Option<Row>, String> {
        self.reads.fetch_add(1, SeqCst);
        let found = self.db.rows.lock().unwrap().get(&id).cloned();
        Self::wait_at(&self.read_gate).await;
        Ok(found)
    }

    /// Commits `row`, then waits at the write gate, if set.
    async fn commit(&self, row: Row) -> Result<Row, String> {
        let stored = self.db.commit(row)?;
        Self::wait_at(&self.write_gate).await;
        Ok(stored)
    }

    #[cached(strategy = "write_through", key = "row:<row.id>", ttl = 60, cache = self.cache)]
    async fn save(&self, row: Row) -> Result<Row, String> {
        self.commit(row).await
    }

    /// `row` in `version` names the returned row, not the argument.
    #[cached(
        strategy = "write_through",
        key = "row:<row.id>",
        ttl = 60,
        version = row.version,
        cache = self.cache
    )]
    async fn save_versioned(&self, row: Row) -> Result<Row, String> {
        self.commit(row).await
    }

    /// Stores `row` as given, versioned by its update time (a closure).
    #[cached(
        strategy = "write_through",
        key = "row:<row.id>",
        ttl = 60,
        version = |r| r.updated_at,
        cache = self.cache
    )]
    async fn put_at(&self, row: Row) -> Result<Row, String> {
        Ok(row)
    }

    #[cached(strategy = "write_through", key = "row:<id>", ttl = 60, cache = self.cache)]
    async fn remove(&self, id: u64) -> Result<Option<Row>, String> {
        self.db.rows.lock().unwrap().remove(&id);
        Ok(None)
    }

    #[cached(strategy = "write_through", key = "row:<id>", ttl = 60, cache = self.cache)]
    async fn save_unencodable(&self, id: u64) -> Result<Unencodable, String> {
        Ok(Unencodable(id))
    }

    /// Starts `write` and returns once it committed, held before it
    /// returns (and so before its cache write) until released.
    async fn hold_write<F, Fut>(self: &Arc<Self>, write: F) -> Held
    where
        F: FnOnce(Arc<App>) -> Fut,
        Fut: std::future::Future<Output = Result<Row, String>> + Send + 'static,
    {
        let (release, gate) = oneshot::channel();
        *self.write_gate.lock().unwrap() = Some(gate);
        let before = self.db.versions.load(SeqCst);
        let call = tokio::spawn(write(Arc::clone(self)));
        while self.db.versions.load(SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Held { call, release }
    }
}

struct Held {
    call: tokio::task::JoinHandle<Result<Row, String>>,
    release: oneshot::Sender<()>,
}

async fn db_with_ada(app: &App) {
    app.db.commit(row(1, "Ada")).unwrap();
}

/// Starts `a.get(1)` and waits until it has read the database (holding
/// the lease); it goes on when the sender is used.
async fn load_held_after_its_read(
    a: &Arc<App>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<Option<Row>, String>>,
) {
    let (release, gate) = oneshot::channel();
    *a.read_gate.lock().unwrap() = Some(gate);
    let load = tokio::spawn({
        let a = Arc::clone(a);
        async move { a.get(1).await }
    });
    while a.reads.load(SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (release, load)
}

async fn a_write_stores_its_row_and_beats_a_load_in_flight(backend: &Shared) {
    let db = Arc::new(Db::default());
    let (a, b) = (App::new(backend, &db).await, App::new(backend, &db).await);
    db_with_ada(&a).await;
    // a's load reads Ada and holds the lease, then b writes Grace.
    let (release, load) = load_held_after_its_read(&a).await;
    let written = b.save(row(1, "Grace")).await.unwrap();
    assert_eq!((written.name.as_str(), written.version), ("Grace", 2));
    release.send(()).unwrap();
    let loaded = load.await.unwrap().unwrap().unwrap();
    assert_eq!(loaded.name, "Ada", "the load answers with what it read");
    assert_eq!(a.cache.stats().lease_lost, 1, "but may not store it");

    assert_eq!(b.get(1).await, Ok(Some(written)), "the write stays cached");
    assert_eq!(b.reads.load(SeqCst), 0, "a hit: the write stored it");
    let ttl = b.cache.ttl("row:1").await.unwrap();
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
}

async fn a_failed_write_leaves_the_cache_untouched(backend: &Shared) {
    let db = Arc::new(Db::default());
    let a = App::new(backend, &db).await;
    db_with_ada(&a).await;
    let ada = a.get(1).await.unwrap().unwrap();
    db.fail.store(true, SeqCst);
    assert_eq!(
        a.save(row(1, "Grace")).await,
        Err("database down".to_string())
    );
    db.fail.store(false, SeqCst);
    assert_eq!(a.get(1).await, Ok(Some(ada)), "still cached");
    assert_eq!(a.reads.load(SeqCst), 1);
    assert_eq!(a.cache.stats().write_failures, 0);
}

async fn a_none_deletes_the_key(backend: &Shared) {
    let db = Arc::new(Db::default());
    let a = App::new(backend, &db).await;
    db_with_ada(&a).await;
    a.get(1).await.unwrap();
    assert_eq!(a.remove(1).await, Ok(None));
    assert_eq!(a.get(1).await, Ok(None), "not the deleted row");
    assert_eq!(a.reads.load(SeqCst), 2, "the delete made it a miss");
}

async fn a_value_that_does_not_encode_deletes_the_key(backend: &Shared) {
    let db = Arc::new(Db::default());
    let a = App::new(backend, &db).await;
    db_with_ada(&a).await;
    a.get(1).await.unwrap();
    assert!(
        a.save_unencodable(1).await.is_ok(),
        "the database has the write: the call succeeds"
    );
    assert_eq!(a.cache.stats().write_failures, 1);
    assert_eq!(
        a.cache.get::<Row>("row:1").await,
        None,
        "the old row is gone"
    );
}

/// Two writers commit v2 then v3; v3's cache write lands first, v2's
/// after it. With `version`, v3 stays cached; without (the control), v2
/// replaces it: the race is real, and `version` is what wins it.
async fn the_newer_version_stays_when_cache_writes_cross(backend: &Shared) {
    for versioned in [true, false] {
        let db = Arc::new(Db::default());
        let (a, b) = (App::new(backend, &db).await, App::new(backend, &db).await);
        a.cache.invalidate(&["row:1"]).await.unwrap();
        let held = a
            .hold_write(move |a| async move {
                if versioned {
                    a.save_versioned(row(1, "Grace")).await
                } else {
                    a.save(row(1, "Grace")).await
                }
            })
            .await;
        let newer = if versioned {
            b.save_versioned(row(1, "Hopper")).await
        } else {
            b.save(row(1, "Hopper")).await
        }
        .unwrap();
        assert_eq!(newer.version, 2);
        held.release.send(()).unwrap();
        let older = held.call.await.unwrap().unwrap();
        assert_eq!(older.version, 1, "a committed first");

        let cached = b.get(1).await.unwrap().unwrap();
        assert_eq!(b.reads.load(SeqCst), 0);
        if versioned {
            assert_eq!(cached, newer, "the newer row stays cached");
            assert_eq!(a.cache.stats().versions_refused, 1);
        } else {
            assert_eq!(cached, older, "without `version`, the older row wins");
        }
    }
}

async fn newer_and_equal_versions_replace_older_ones_do_not(backend: &Shared) {
    let db = Arc::new(Db::default());
    let a = App::new(backend, &db).await;
    let at = |ms: u64, name: &str| Row {
        updated_at: UNIX_EPOCH + Duration::from_millis(ms),
        ..row(7, name)
    };
    a.put_at(at(2_000, "two")).await.unwrap();
    a.put_at(at(3_000, "three")).await.unwrap();
    assert_eq!(a.cache.get::<Row>("row:7").await.unwrap().name, "three");
    a.put_at(at(1_000, "one")).await.unwrap();
    assert_eq!(
        a.cache.get::<Row>("row:7").await.unwrap().name,
        "three",
        "an older time does not replace a newer one"
    );
    a.put_at(at(3_000, "three again")).await.unwrap();
    assert_eq!(
        a.cache.get::<Row>("row:7").await.unwrap().name,
        "three again",
        "the same version is written again"
    );
    // The version outlives a delete of the key: a late older write cannot
    // land after an invalidation either.
    a.cache.invalidate(&["row:7"]).await.unwrap();
    a.put_at(at(2_500, "late")).await.unwrap();
    assert_eq!(a.cache.get::<Row>("row:7").await, None);
    assert_eq!(a.cache.stats().versions_refused, 2);
}

/// A row deleted and created again, its revision starting over: the old
/// row's version outlives the delete, so the new row's writes are refused;
/// each refusal deletes what a reader cached meanwhile (it is not the
/// value stored with the newer version), so readers get the current row.
async fn a_row_created_again_is_not_served_stale(backend: &Shared) {
    let db = Arc::new(Db::default());
    let a = App::new(backend, &db).await;
    for _ in 0..5 {
        a.save_versioned(row(1, "Ada")).await.unwrap();
    }
    assert_eq!(a.remove(1).await, Ok(None), "the row is deleted");
    db.versions.store(0, SeqCst);
    a.save_versioned(row(1, "Grace")).await.unwrap();
    assert_eq!(a.get(1).await.unwrap().unwrap().name, "Grace");
    let hopper = a.save_versioned(row(1, "Hopper")).await.unwrap();
    assert_eq!(a.cache.stats().versions_refused, 2);
    assert_eq!(
        a.get(1).await,
        Ok(Some(hopper)),
        "not the row loaded before"
    );
}

/// A refused write also cancels the key's lease: a reader that read the
/// database before it ("no row") does not cache what it read.
async fn a_refused_write_cancels_the_lease(backend: &Shared) {
    let db = Arc::new(Db::default());
    let (a, b) = (App::new(backend, &db).await, App::new(backend, &db).await);
    for _ in 0..5 {
        b.save_versioned(row(1, "Ada")).await.unwrap();
    }
    b.remove(1).await.unwrap();
    db.versions.store(0, SeqCst);
    let (release, load) = load_held_after_its_read(&a).await;
    let grace = b.save_versioned(row(1, "Grace")).await.unwrap();
    release.send(()).unwrap();
    assert_eq!(load.await.unwrap(), Ok(None), "what it read");
    assert_eq!(b.get(1).await, Ok(Some(grace)), "not what it read");
}

on_shared_backends!(
    a_write_stores_its_row_and_beats_a_load_in_flight,
    a_failed_write_leaves_the_cache_untouched,
    a_none_deletes_the_key,
    a_value_that_does_not_encode_deletes_the_key,
    the_newer_version_stays_when_cache_writes_cross,
    newer_and_equal_versions_replace_older_ones_do_not,
    a_row_created_again_is_not_served_stale,
    a_refused_write_cancels_the_lease,
);

/// Redis frozen during the cache write: the call still succeeds (the
/// database has the row), the failure is counted, and the row cached
/// before the write is not served once Redis answers again: its delete
/// waited and is delivered first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_write_that_fails_deletes_the_key_once_redis_answers() {
    let server = support::RedisServer::start();
    let cache = Cache::builder()
        .ttl_jitter(0.0)
        .timeout(Duration::from_millis(200))
        .redis(&server.url())
        .await
        .unwrap();
    let db = Arc::new(Db::default());
    let a = Arc::new(App {
        cache,
        db: Arc::clone(&db),
        reads: AtomicU64::new(0),
        read_gate: Mutex::new(None),
        write_gate: Mutex::new(None),
    });
    db_with_ada(&a).await;
    a.get(1).await.unwrap();
    server.freeze();
    let written = a.save(row(1, "Grace")).await;
    server.thaw();
    assert_eq!(written.map(|r| r.name), Ok("Grace".to_string()));
    assert_eq!(a.cache.stats().write_failures, 1);
    assert_eq!(a.get(1).await.unwrap().unwrap().name, "Grace");
    assert_eq!(a.reads.load(SeqCst), 2, "loaded again, not the old row");
}
