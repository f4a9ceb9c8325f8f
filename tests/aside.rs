//! Cache-aside through `#[cached]` and `#[invalidates]`, every scenario on
//! both backends: the in-memory one and a `redis-server` started per test.

mod support;

use cache_runtime::{cached, invalidates, Cache};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Db, DbError, RedisServer, User};
use tokio::sync::oneshot;

struct Repo {
    cache: Cache,
    db: Db,
    /// When set, the next `get_held` says when it has read its row, then
    /// keeps it until released.
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Repo {
    fn new(cache: Cache, rows: &[(u64, &str)]) -> Arc<Self> {
        Arc::new(Repo {
            cache,
            db: Db::with_rows(rows),
            hold: Mutex::new(None),
        })
    }

    /// `get` with the same key, whose load can be held after it read the row.
    #[cached(key = "user:<id>", ttl = 60, null_ttl = 20, cache = self.cache)]
    async fn get_held(&self, id: u64) -> Result<Option<User>, DbError> {
        let row = self.db.read(id).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some((read, release)) = hold {
            let _ = read.send(());
            let _ = release.await;
        }
        row
    }

    #[cached(key = "user:<id>", ttl = 60, null_ttl = 20, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.read(id).await
    }

    #[cached(key = "user-nonull:<id>", ttl = 60, null_ttl = 0, cache = self.cache)]
    async fn get_no_null(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.read(id).await
    }

    #[invalidates("user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.db.write(id, name)
    }

    #[cached(key = "pair:<a>:<b>", ttl = "1m", cache = self.cache)]
    async fn pair(&self, a: &str, b: &str) -> String {
        self.db
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{a}|{b}")
    }

    #[cached(ttl = 60, cache = self.cache)]
    async fn double(&self, n: u32) -> u32 {
        self.db
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        n * 2
    }

    #[cached(ttl = 60, cache = self.cache)]
    async fn triple(&self, n: u32) -> u32 {
        self.db
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        n * 3
    }
}

fn ada() -> Option<User> {
    Some(User {
        id: 1,
        name: "Ada".into(),
    })
}

async fn hits_misses_and_loads(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(1, "Ada")]);
    assert_eq!(repo.get(1).await, Ok(ada()));
    assert_eq!(repo.get(1).await, Ok(ada()));
    assert_eq!(repo.get(1).await, Ok(ada()));
    assert_eq!(repo.db.loads(), 1, "one load, then hits");
    let stats = repo.cache.stats();
    assert_eq!((stats.misses, stats.loads, stats.hits), (1, 1, 2));
}

async fn invalidation_after_a_successful_write(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(1, "Ada")]);
    assert_eq!(repo.get(1).await, Ok(ada()));
    repo.rename(1, "Ada Lovelace").await.unwrap();
    let renamed = Some(User {
        id: 1,
        name: "Ada Lovelace".into(),
    });
    assert_eq!(
        repo.get(1).await,
        Ok(renamed.clone()),
        "the write is visible at once"
    );
    assert_eq!(repo.db.loads(), 2);
    assert_eq!(repo.cache.stats().invalidations, 1);

    // A failed write invalidates nothing: the entry stays.
    repo.db.fail(true);
    assert_eq!(repo.rename(1, "Nobody").await, Err(DbError));
    repo.db.fail(false);
    assert_eq!(repo.get(1).await, Ok(renamed));
    assert_eq!(repo.db.loads(), 2, "still cached after the failed write");
    assert_eq!(repo.cache.stats().invalidations, 1);
}

async fn none_is_cached_for_null_ttl(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[]);
    assert_eq!(repo.get(404).await, Ok(None));
    assert_eq!(repo.get(404).await, Ok(None));
    assert_eq!(repo.db.loads(), 1, "the None was cached");
    assert_eq!(repo.cache.stats().null_hits, 1);
    let ttl = repo
        .cache
        .ttl("user:404")
        .await
        .expect("null marker stored");
    assert!(
        ttl <= Duration::from_secs(20) && ttl > Duration::from_secs(15),
        "{ttl:?}"
    );

    // null_ttl = 0: None is not cached.
    assert_eq!(repo.get_no_null(404).await, Ok(None));
    assert_eq!(repo.get_no_null(404).await, Ok(None));
    assert_eq!(repo.db.loads(), 3);
    assert_eq!(repo.cache.ttl("user-nonull:404").await, None);
}

async fn errors_are_never_cached(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(1, "Ada")]);
    repo.db.fail(true);
    assert_eq!(repo.get(1).await, Err(DbError));
    assert_eq!(repo.get(1).await, Err(DbError));
    assert_eq!(
        repo.cache.ttl("user:1").await,
        None,
        "nothing stored for an Err"
    );
    repo.db.fail(false);
    assert_eq!(repo.get(1).await, Ok(ada()));
    assert_eq!(repo.db.loads(), 3);
    assert_eq!(repo.cache.stats().load_failures, 2);
}

async fn ttl_is_set_on_the_entry(cache: Cache, server: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(1, "Ada")]);
    repo.get(1).await.unwrap();
    let ttl = repo.cache.ttl("user:1").await.expect("entry stored");
    assert!(
        ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(55),
        "{ttl:?}"
    );
    if let Some(server) = server {
        let pttl: i64 = server.query(redis::cmd("PTTL").arg("cache:v1:user:1"));
        assert!((55_000..=60_000).contains(&pttl), "PTTL {pttl}");
    }
}

async fn escaped_values_do_not_collide(cache: Cache, server: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[]);
    assert_eq!(repo.pair("1:admin", "x").await, "1:admin|x");
    assert_eq!(repo.pair("1", "admin:x").await, "1|admin:x");
    assert_eq!(repo.pair("1:admin", "x").await, "1:admin|x");
    assert_eq!(repo.pair("1", "admin:x").await, "1|admin:x");
    assert_eq!(repo.db.loads(), 2, "two distinct keys, each loaded once");
    if let Some(server) = server {
        let mut keys: Vec<String> = server.query(redis::cmd("KEYS").arg("cache:v1:pair:*"));
        keys.sort();
        assert_eq!(
            keys,
            [r"cache:v1:pair:1:admin\:x", r"cache:v1:pair:1\:admin:x"]
        );
    }
}

async fn default_keys_differ_per_function(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[]);
    assert_eq!(repo.double(5).await, 10);
    assert_eq!(repo.triple(5).await, 15);
    assert_eq!(repo.double(5).await, 10);
    assert_eq!(repo.triple(5).await, 15);
    assert_eq!(repo.db.loads(), 2);
}

async fn concurrent_misses_share_one_load(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(7, "Grace")]);
    let results = support::concurrently(200, &repo, |repo| async move { repo.get(7).await }).await;
    let grace = Ok(Some(User {
        id: 7,
        name: "Grace".into(),
    }));
    assert!(
        results.iter().all(|r| *r == grace),
        "every caller gets the row"
    );
    assert_eq!(repo.db.loads(), 1, "200 concurrent callers, one load");
    let stats = repo.cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.hits + stats.coalesced, 199);
}

async fn a_failing_source_sees_one_load_at_a_time(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(7, "Grace")]);
    repo.db.fail(true);
    let results = support::concurrently(50, &repo, |repo| async move { repo.get(7).await }).await;
    assert!(
        results.iter().all(|r| *r == Err(DbError)),
        "each caller gets an error"
    );
    assert_eq!(repo.db.loads(), 50, "every caller ran its own load");
    assert_eq!(
        repo.db
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "but never two at once"
    );
}

async fn undecodable_entry_is_a_miss_and_replaced(cache: Cache, server: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(3, "Linus")]);
    let linus = Ok(Some(User {
        id: 3,
        name: "Linus".into(),
    }));
    // Another type under the key (or garbage in this build's format on
    // Redis).
    let mut garbage = vec![cache_runtime::envelope::FORMAT, 0];
    garbage.extend_from_slice(b"garbage");
    match server {
        Some(server) => server.query(redis::cmd("SET").arg("cache:v1:user:3").arg(garbage)),
        None => repo
            .cache
            .set("user:3", &vec![1u8, 2, 3], Duration::from_secs(60))
            .await
            .unwrap(),
    }
    assert_eq!(repo.get(3).await, linus, "the source answers");
    assert_eq!(repo.cache.stats().decode_errors, 1);
    assert_eq!(repo.get(3).await, linus);
    assert_eq!(
        repo.db.loads(),
        1,
        "the bad entry was replaced by a good one"
    );
}

async fn schema_version_separates_entries(cache: Cache, server: Option<&RedisServer>) {
    let v1 = Repo::new(cache, &[(1, "Ada")]);
    v1.get(1).await.unwrap();
    let Some(server) = server else {
        // Two in-memory caches never share entries; the prefix still moves.
        assert_eq!(
            Cache::builder()
                .namespace("app")
                .schema_version(2)
                .memory()
                .prefix(),
            "app:v2:"
        );
        return;
    };
    let v2 = Repo::new(
        Cache::builder()
            .schema_version(2)
            .redis(&server.url())
            .await
            .unwrap(),
        &[(1, "Ada")],
    );
    v2.get(1).await.unwrap();
    assert_eq!(v2.db.loads(), 1, "v2 does not read v1's bytes");
    let exists: u32 = server.query(
        redis::cmd("EXISTS")
            .arg("cache:v1:user:1")
            .arg("cache:v2:user:1"),
    );
    assert_eq!(exists, 2);
}

async fn programmatic_api(cache: Cache, _: Option<&RedisServer>) {
    let ttl = Duration::from_secs(30);
    cache.set("greeting", "hello", ttl).await.unwrap();
    assert_eq!(
        cache.get::<String>("greeting").await.as_deref(),
        Some("hello")
    );
    cache.invalidate(&["greeting"]).await.unwrap();
    assert_eq!(cache.get::<String>("greeting").await, None);
    let loaded = cache
        .aside("answer", ttl, async { Ok::<_, DbError>(Some(42u64)) })
        .await;
    let cached = cache
        .aside("answer", ttl, async { Ok::<_, DbError>(Some(0u64)) })
        .await;
    assert_eq!((loaded, cached), (Ok(Some(42)), Ok(Some(42))));
}

/// Reader A loads the old row and is held; a write lands and invalidates;
/// reader B, who starts after the write, must see the new row (not wait for
/// A's load), and A's old row must not be stored when A finishes.
async fn a_load_that_raced_a_write_is_not_stored(cache: Cache, _: Option<&RedisServer>) {
    let repo = Repo::new(cache, &[(1, "Ada")]);
    let (read_tx, read) = oneshot::channel();
    let (release, held) = oneshot::channel();
    *repo.hold.lock().unwrap() = Some((read_tx, held));
    let a = tokio::spawn({
        let repo = Arc::clone(&repo);
        async move { repo.get_held(1).await }
    });
    read.await.expect("A read its row");
    repo.rename(1, "Ada Lovelace").await.unwrap();
    let fresh = Some(User {
        id: 1,
        name: "Ada Lovelace".into(),
    });
    let after = tokio::time::timeout(Duration::from_secs(10), repo.get(1)).await;
    assert_eq!(
        after.ok(),
        Some(Ok(fresh.clone())),
        "a read after the write sees it, without waiting for A"
    );
    release.send(()).unwrap();
    assert_eq!(a.await.unwrap(), Ok(ada()), "A answers with what it read");
    assert_eq!(
        repo.cache.get::<User>("user:1").await,
        fresh,
        "A's old row was not stored"
    );
    assert_eq!(repo.get(1).await, Ok(fresh));
    assert_eq!(repo.db.loads(), 2);
}

on_both_backends!(
    a_load_that_raced_a_write_is_not_stored,
    hits_misses_and_loads,
    invalidation_after_a_successful_write,
    none_is_cached_for_null_ttl,
    errors_are_never_cached,
    ttl_is_set_on_the_entry,
    escaped_values_do_not_collide,
    default_keys_differ_per_function,
    concurrent_misses_share_one_load,
    a_failing_source_sees_one_load_at_a_time,
    undecodable_entry_is_a_miss_and_replaced,
    schema_version_separates_entries,
    programmatic_api,
);

/// Expiry on the in-memory backend, with tokio's clock paused: the entry is
/// served until its TTL and loaded again after it.
#[tokio::test(start_paused = true)]
async fn memory_entries_expire_at_their_ttl() {
    let repo = Repo::new(support::memory(), &[(1, "Ada")]);
    repo.get(1).await.unwrap();
    tokio::time::advance(Duration::from_millis(59_999)).await;
    repo.get(1).await.unwrap();
    assert_eq!(repo.db.loads(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    repo.get(1).await.unwrap();
    assert_eq!(repo.db.loads(), 2, "expired at 60 s");
}
