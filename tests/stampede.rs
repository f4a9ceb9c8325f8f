//! Stampedes across processes: 4 processes × 250 concurrent callers miss
//! one cold key at once, its body takes 100 ms, and it runs once. On Redis
//! the processes are real (`lease-worker` children, killed with SIGKILL in
//! the crash case); on the in-memory backend they are 4 caches sharing one
//! memory store, each with its own in-flight loads, as processes have.

mod support;

use cache_runtime::{Cache, MemoryStore};
use futures::future::join_all;
use std::process::Command;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::child::ChildProcess;
use support::stampede::Node;
use support::RedisServer;

const PROCESSES: usize = 4;
const CALLERS: usize = 250;
const ROUNDS: u64 = 20;
const BODY: Duration = Duration::from_millis(100);

/// What one process saw in one round.
#[derive(Debug, Default, Clone, Copy)]
struct Done {
    /// Callers that got the round's value.
    answered: u64,
    /// Body runs.
    loads: u64,
    lease_waits: u64,
    coalesced: u64,
    hits: u64,
    wait_timeouts: u64,
}

/// Checks one round: every caller answered, the body ran `loads` times in
/// all, nobody gave up waiting. Returns the lease waits, to show that the
/// processes did overlap.
fn check(round: u64, done: &[Done], callers: usize, loads: u64) -> u64 {
    let sum = |f: fn(&Done) -> u64| done.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|d| d.loads + d.coalesced + d.hits),
        callers as u64,
        "round {round}: each caller is answered by its own load, another's, or a hit: {done:?}"
    );
    assert_eq!(
        sum(|d| d.answered),
        callers as u64,
        "round {round}: every caller gets the value: {done:?}"
    );
    assert_eq!(sum(|d| d.loads), loads, "round {round}: {done:?}");
    assert_eq!(sum(|d| d.wait_timeouts), 0, "round {round}: {done:?}");
    sum(|d| d.lease_waits)
}

/// A `lease-worker` child process (see `tests/worker/lease_worker.rs`).
struct Worker(ChildProcess);

impl Worker {
    fn spawn(server: &RedisServer, lease_ttl: Duration, lease_wait: Duration) -> Worker {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lease-worker"));
        command
            .args([server.url(), CALLERS.to_string(), ms(BODY)])
            .args([ms(lease_ttl), ms(lease_wait)]);
        let worker = Worker(ChildProcess::spawn(&mut command, "lease-worker"));
        worker.expect("ready");
        worker
    }

    /// `PROCESSES` workers on `server`.
    fn spawn_all(server: &RedisServer, lease_ttl: Duration, lease_wait: Duration) -> Vec<Worker> {
        (0..PROCESSES)
            .map(|_| Worker::spawn(server, lease_ttl, lease_wait))
            .collect()
    }

    fn send(&mut self, command: &str) {
        self.0.send(command);
    }

    /// The numbers of the next line, which must start with `word`.
    fn expect(&self, word: &str) -> Vec<u64> {
        self.0.expect_numbers(word)
    }

    fn done(&self, round: u64) -> Done {
        let n = self.expect("done");
        assert_eq!(n.len(), 7, "{n:?}");
        assert_eq!(n[0], round);
        Done {
            answered: n[1],
            loads: n[2],
            lease_waits: n[3],
            coalesced: n[4],
            hits: n[5],
            wait_timeouts: n[6],
        }
    }

    fn kill(&mut self) {
        self.0.kill();
    }
}

/// `<command> <n> <start> <args>` for every worker, starting together 50 ms
/// from now.
fn start_together(workers: &mut [Worker], command: &str, round: u64, args: &str) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start = (now + Duration::from_millis(50)).as_millis();
    for worker in workers {
        worker.send(&format!("{command} {round} {start} {args}"));
    }
}

/// `round <n> <start>` for every worker, starting together.
fn start_round(workers: &mut [Worker], round: u64) {
    start_together(workers, "round", round, "");
}

#[test]
fn four_processes_on_redis_run_the_body_once_per_stampede() {
    let server = RedisServer::start();
    let mut workers = Worker::spawn_all(&server, Duration::from_secs(5), Duration::from_secs(6));
    let mut waits = 0;
    for round in 0..ROUNDS {
        start_round(&mut workers, round);
        let done: Vec<Done> = workers.iter().map(|w| w.done(round)).collect();
        waits += check(round, &done, PROCESSES * CALLERS, 1);
    }
    println!(
        "redis: {ROUNDS} stampedes of {PROCESSES} processes x {CALLERS} callers: 1 load each, {waits} lease waits"
    );
    // How many overlap depends on how the processes are scheduled (about
    // 3 a round): at least one must, for the test to mean anything.
    assert!(
        waits >= 1,
        "the processes must overlap for this test to mean anything: {waits} lease waits in {ROUNDS} rounds"
    );
}

#[test]
fn a_killed_holder_on_redis_is_replaced_once_its_lease_expires() {
    let server = RedisServer::start();
    // Waiters outlast the lease, so one of them takes it over.
    let mut workers = Worker::spawn_all(&server, Duration::from_secs(1), Duration::from_secs(10));
    workers[0].send("hold 0");
    assert_eq!(workers[0].expect("holding"), [0]);
    start_round(&mut workers[1..], 0);
    workers[0].kill(); // mid-load, its lease still out
    let done: Vec<Done> = workers[1..].iter().map(|w| w.done(0)).collect();
    let waits = check(0, &done, (PROCESSES - 1) * CALLERS, 1);
    assert!(
        waits >= 1,
        "the survivors waited for the dead holder's lease"
    );
    let filled = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let cache = Cache::redis(&server.url()).await.unwrap();
        cache.get::<String>("stampede:0").await
    });
    assert_eq!(filled, Some(Node::value(0)), "a survivor filled the key");
}

/// `PROCESSES` caches, each with its own in-flight loads, on one memory store.
fn memory_nodes(builder: impl Fn() -> cache_runtime::CacheBuilder) -> Vec<Arc<Node>> {
    let store = MemoryStore::new(10_000);
    (0..PROCESSES)
        .map(|_| Node::new(builder().memory_store(&store), BODY))
        .collect()
}

/// Runs a round on `nodes` at once; what each saw.
async fn memory_round(nodes: &[Arc<Node>], round: u64) -> Vec<Done> {
    join_all(nodes.iter().map(|node| async move {
        let (loads, before) = (node.loads.load(SeqCst), node.cache.stats());
        let answered = node.round(round, CALLERS).await as u64;
        let after = node.cache.stats();
        Done {
            answered,
            loads: node.loads.load(SeqCst) - loads,
            lease_waits: after.lease_waits - before.lease_waits,
            coalesced: after.coalesced - before.coalesced,
            hits: after.hits - before.hits,
            wait_timeouts: after.wait_timeouts - before.wait_timeouts,
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_caches_on_one_memory_store_run_the_body_once_per_stampede() {
    let nodes = memory_nodes(Cache::builder);
    let mut waits = 0;
    for round in 0..ROUNDS {
        let done = memory_round(&nodes, round).await;
        waits += check(round, &done, PROCESSES * CALLERS, 1);
    }
    println!(
        "memory: {ROUNDS} stampedes of {PROCESSES} caches x {CALLERS} callers: 1 load each, {waits} lease waits"
    );
    assert!(waits >= 1, "{waits} lease waits in {ROUNDS} rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_holder_in_memory_is_replaced_once_its_lease_expires() {
    let nodes = memory_nodes(|| {
        Cache::builder()
            .lease_ttl(Duration::from_secs(1))
            .lease_wait(Duration::from_secs(10))
    });
    let holder = nodes[0].hold(0).await;
    let done = memory_round(&nodes[1..], 0).await;
    let waits = check(0, &done, (PROCESSES - 1) * CALLERS, 1);
    assert!(waits >= 1, "the others waited for the hung holder's lease");
    assert!(!holder.is_finished());
    holder.abort();
    assert_eq!(
        nodes[0].cache.get::<String>("stampede:0").await,
        Some(Node::value(0)),
        "another cache filled the key"
    );
}

/// Refresh-ahead across processes: 4 processes x 250 readers read one key
/// every 10 ms for 4 s. Its TTL is 2 s, refreshed at half of it, and its
/// body takes 100 ms. After the first load nobody misses (a refresh has a
/// second of slack), and the body runs once per refresh window (about every
/// 1.1 s), not once per reader or per process.
#[test]
fn four_processes_reading_a_refreshed_key_never_miss() {
    let server = RedisServer::start();
    let mut workers = Worker::spawn_all(&server, Duration::from_secs(5), Duration::from_secs(6));
    start_together(&mut workers[..1], "watch", 0, "1");
    let warm = workers[0].expect("watched");
    assert_eq!(warm[4], 1, "its first readers share one load: {warm:?}");
    assert_eq!(warm[1], warm[2], "and all got the value: {warm:?}");
    start_together(&mut workers, "watch", 0, "4000");
    let watched: Vec<Vec<u64>> = workers.iter().map(|w| w.expect("watched")).collect();
    let sum = |i: usize| watched.iter().map(|w| w[i]).sum::<u64>();
    let (right, reads, misses, loads) = (sum(1), sum(2), sum(3), sum(4));
    println!(
        "refresh ahead: {reads} reads by 4 processes over 4 s, {misses} misses, {loads} loads"
    );
    assert_eq!(right, reads, "every read got the value: {watched:?}");
    assert_eq!(misses, 0, "never a miss after the first load: {watched:?}");
    assert!(
        (2..=5).contains(&loads),
        "one load per refresh window (4 s / 1-2 s), not per reader: {loads} loads, {watched:?}"
    );
    // About 40 000 on a quiet machine; enough to show the loads are not
    // per reader (1 000 of them) even on a busy one.
    assert!(reads >= 2_000, "{reads} reads");
}
