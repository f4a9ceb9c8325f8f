//! Redis failing under a running application: killed, frozen, unreachable.
//! Reads keep answering from the body; writes keep succeeding; the cache
//! comes back by itself. Counts, never timings, are asserted; the waits
//! that exist are bounded polls for the server to come back.

mod support;

use cache_runtime::{cached, invalidates, Cache, CacheBuilder};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Db, DbError, RedisServer, User};

struct Repo {
    cache: Cache,
    db: Db,
    /// When set, a load waits until this many misses were counted: a caller
    /// counts its miss and joins the load in flight without yielding in
    /// between, so then every caller has joined.
    gate: AtomicU64,
}

impl Repo {
    #[cached(key = "user:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.read(id).await
    }

    #[cached(key = "gated:<id>", ttl = 60, cache = self.cache)]
    async fn gated(&self, id: u64) -> Result<Option<User>, DbError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cache.stats().misses < self.gate.load(SeqCst) && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        self.db.read(id).await
    }

    #[cached(key = "plain:<id>", ttl = 60, cache = self.cache, lock = false)]
    async fn get_unlocked(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.read(id).await
    }

    #[invalidates("user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.db.write(id, name)
    }
}

async fn repo(server: &RedisServer, failures: u32, cooldown: Duration) -> Arc<Repo> {
    let cache = Cache::builder()
        .timeout(Duration::from_millis(200))
        .circuit_breaker(failures, cooldown)
        .redis(&server.url())
        .await
        .expect("connect");
    Arc::new(Repo {
        cache,
        db: Db::with_rows(&[(1, "Ada")]),
        gate: AtomicU64::new(0),
    })
}

/// A repo whose cache connects as the ACL user `app`, given `rules`.
async fn as_app(server: &RedisServer, rules: &[&str], builder: CacheBuilder) -> Repo {
    let _: () = server.query(redis::cmd("ACL").arg("SETUSER").arg("app").arg(rules));
    let cache = builder
        .redis(&format!("redis://app:pw@127.0.0.1:{}/", server.port()))
        .await
        .expect("connect as app");
    Repo {
        cache,
        db: Db::with_rows(&[(1, "Ada")]),
        gate: AtomicU64::new(0),
    }
}

fn ada(name: &str) -> Result<Option<User>, DbError> {
    Ok(Some(User {
        id: 1,
        name: name.into(),
    }))
}

/// Calls `get(1)` until it is answered from the cache, for at most 15 s.
async fn wait_for_a_hit(repo: &Repo) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let hits = repo.cache.stats().hits;
    while repo.cache.stats().hits == hits {
        assert!(
            Instant::now() < deadline,
            "the cache never came back: {:?}",
            repo.cache.stats()
        );
        repo.get(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_reads_answer_from_the_body() {
    let mut server = RedisServer::start();
    let repo = repo(&server, 3, Duration::from_millis(200)).await;
    assert_eq!(repo.get(1).await, ada("Ada"));
    assert_eq!(repo.get(1).await, ada("Ada"));
    assert_eq!(repo.db.loads(), 1);

    server.kill();
    for _ in 0..10 {
        assert_eq!(
            repo.get(1).await,
            ada("Ada"),
            "the body answers while Redis is down"
        );
    }
    assert_eq!(repo.db.loads(), 11, "every read went to the source");
    // A write still succeeds; its invalidation is what fails.
    assert_eq!(repo.rename(1, "Ada Lovelace").await, Ok(()));
    let stats = repo.cache.stats();
    assert!(stats.errors >= 3, "failures are counted: {stats:?}");
    assert!(stats.skipped > 0, "the breaker opened: {stats:?}");
    assert_eq!(repo.get(1).await, ada("Ada Lovelace"));

    // Back up, empty: the connection is re-established and caching resumes.
    server.restart();
    wait_for_a_hit(&repo).await;
    assert_eq!(repo.get(1).await, ada("Ada Lovelace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_timeouts_then_the_breaker_skips_it() {
    let server = RedisServer::start();
    let repo = repo(&server, 2, Duration::from_secs(600)).await;
    assert_eq!(repo.get(1).await, ada("Ada"));

    server.freeze();
    for _ in 0..6 {
        assert_eq!(repo.get(1).await, ada("Ada"));
    }
    let stats = repo.cache.stats();
    assert_eq!(stats.errors, 2, "two timeouts open the breaker: {stats:?}");
    assert!(stats.skipped >= 4, "then Redis is skipped: {stats:?}");
    assert_eq!(repo.db.loads(), 7);
    server.thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_during_an_outage_still_share_one_load() {
    let mut server = RedisServer::start();
    let repo = repo(&server, 3, Duration::from_secs(600)).await;
    server.kill();
    repo.gate.store(100, SeqCst);
    let results =
        support::concurrently(100, &repo, |repo| async move { repo.gated(1).await }).await;
    assert!(
        results.iter().all(|r| *r == ada("Ada")),
        "every caller gets the row"
    );
    assert_eq!(repo.db.loads(), 1, "single-flight does not depend on Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_server_is_an_error_not_a_hang() {
    let port = {
        let server = RedisServer::start();
        server.port()
    }; // stopped: nothing listens there now
    let result = Cache::builder()
        .connect_timeout(Duration::from_secs(2))
        .redis(&format!("redis://127.0.0.1:{port}/"))
        .await;
    assert!(result.is_err());
    let bad_url = Cache::redis("http://not-redis").await;
    assert!(bad_url.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_carries_password_and_database() {
    let server = RedisServer::start();
    let _: () = server.query(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("s3cret"),
    );
    let wrong = Cache::redis(&format!("redis://:wrong@127.0.0.1:{}/", server.port())).await;
    assert!(wrong.is_err(), "a wrong password is refused at connect");
    let cache = Cache::redis(&format!("redis://:s3cret@127.0.0.1:{}/3", server.port()))
        .await
        .expect("password from the URL");
    cache.set("k", &1u8, Duration::from_secs(60)).await.unwrap();
    let mut conn = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/3", server.port()))
        .unwrap()
        .get_connection()
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("cache:v1:k")
        .query(&mut conn)
        .unwrap();
    assert!(exists, "written to database 3");
}

/// A write whose invalidation fails (here: the cache's Redis user may not
/// `DEL` for a while) must not leave this process reading the old entry once
/// Redis accepts deletes again: the failed delete is delivered first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invalidation_is_delivered_before_the_next_read() {
    let server = RedisServer::start();
    let acl = |rules: &[&str]| {
        let _: () = server.query(redis::cmd("ACL").arg("SETUSER").arg("app").arg(rules));
    };
    let everything = ["on", ">pw", "~*", "&*", "+@all"];
    let breaker = Cache::builder().circuit_breaker(1_000, Duration::from_secs(600));
    let repo = as_app(&server, &everything, breaker).await;
    assert_eq!(repo.get(1).await, ada("Ada"));

    acl(&["-del"]);
    assert_eq!(
        repo.rename(1, "Ada Lovelace").await,
        Ok(()),
        "the write itself succeeds"
    );
    assert_eq!(
        repo.cache.stats().invalidations,
        0,
        "the delete was refused"
    );
    acl(&["+del"]);

    assert_eq!(
        repo.get(1).await,
        ada("Ada Lovelace"),
        "the old entry is never served"
    );
    assert_eq!(repo.db.loads(), 2);
    assert_eq!(
        repo.cache.stats().invalidations,
        1,
        "counted once delivered"
    );
}

/// A server whose ACL refuses scripts: leases cannot work, so misses are
/// answered by the body and not stored; `lock = false` caches as usual.
/// The refusals are the server answering, not an outage: they do not open
/// the circuit breaker for every other read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_scripts_still_answers_from_the_body() {
    let server = RedisServer::start();
    let no_scripts = ["on", ">pw", "~*", "&*", "+@all", "-@scripting"];
    // Connecting succeeds; the refusal is logged.
    let repo = as_app(&server, &no_scripts, Cache::builder()).await;
    assert_eq!(repo.get_unlocked(1).await, ada("Ada"));
    // Concurrent misses of 20 keys: their refused lease requests come in a
    // row, which would open a breaker that counted them as outages.
    let misses = futures::future::join_all((1..=20).map(|id| repo.get(id))).await;
    assert!(misses.iter().all(Result::is_ok), "the body answers");
    assert_eq!(repo.db.loads(), 21, "nothing stored without a lease");
    assert_eq!(repo.get_unlocked(1).await, ada("Ada"));
    assert_eq!(repo.db.loads(), 21, "lock = false stores as usual");
    let stats = repo.cache.stats();
    assert_eq!((stats.errors, stats.skipped), (20, 0), "{stats:?}");
}

/// A key of the wrong type errs on every call (the server answers WRONGTYPE),
/// but that is one bad key, not an outage: the breaker stays closed, and
/// every other key is still served from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_of_the_wrong_type_does_not_switch_the_cache_off() {
    let server = RedisServer::start();
    let _: () = server.query(redis::cmd("HSET").arg("cache:v1:user:2").arg("f").arg("v"));
    let repo = repo(&server, 5, Duration::from_secs(600)).await;
    repo.db.put(2, "Grace");
    assert_eq!(repo.get(1).await, ada("Ada"));
    for _ in 0..10 {
        assert!(repo.get(2).await.is_ok(), "the body answers");
    }
    assert_eq!(repo.get(1).await, ada("Ada"));
    let stats = repo.cache.stats();
    assert_eq!((stats.hits, stats.skipped), (1, 0), "{stats:?}");
    assert!(stats.errors >= 10, "each failure counted: {stats:?}");
}
