//! One participant of the stampede tests: a cache, and callers of one cold
//! key per round whose body counts its runs and takes a set time. The
//! cross-process tests run one per process (`tests/worker`); the in-memory
//! ones run several caches on one memory store in the test's process.

use cache_runtime::{cached, Cache};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

pub struct Node {
    pub cache: Cache,
    /// How many times the body ran in this node.
    pub loads: AtomicU64,
    body: Duration,
    /// While set, the body never finishes: a holder that hangs, or that
    /// the test kills mid-load.
    hang: AtomicBool,
}

impl Node {
    pub fn new(cache: Cache, body: Duration) -> Arc<Node> {
        Arc::new(Node {
            cache,
            loads: AtomicU64::new(0),
            body,
            hang: AtomicBool::new(false),
        })
    }

    pub fn value(round: u64) -> String {
        format!("value-{round}")
    }

    #[cached(key = "stampede:<round>", ttl = 60, cache = self.cache)]
    pub async fn get(&self, round: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        if self.hang.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.body).await;
        Node::value(round)
    }

    /// The same value, refreshed ahead: a 2 s TTL, refreshed once half of
    /// it has passed.
    #[cached(strategy = "refresh_ahead", key = "ahead:<round>", ttl = 2, refresh = 0.5, cache = self.cache)]
    pub async fn ahead(self: Arc<Self>, round: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        tokio::time::sleep(self.body).await;
        Node::value(round)
    }

    /// `callers` concurrent readers of `ahead(round)`, each reading every
    /// 10 ms until `until`; how many reads got the round's value, of how
    /// many.
    pub async fn watch(
        self: &Arc<Self>,
        round: u64,
        callers: usize,
        until: tokio::time::Instant,
    ) -> (usize, usize) {
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..callers {
            let node = Arc::clone(self);
            readers.spawn(async move {
                let (mut right, mut reads) = (0, 0);
                loop {
                    right +=
                        usize::from(Arc::clone(&node).ahead(round).await == Node::value(round));
                    reads += 1;
                    if tokio::time::Instant::now() >= until {
                        return (right, reads);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        readers
            .join_all()
            .await
            .into_iter()
            .fold((0, 0), |(r, n), (right, reads)| (r + right, n + reads))
    }

    /// `callers` concurrent calls of `get(round)`; how many got its value.
    pub async fn round(self: &Arc<Self>, round: u64, callers: usize) -> usize {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..callers {
            let node = Arc::clone(self);
            calls.spawn(async move { node.get(round).await });
        }
        let answers = calls.join_all().await;
        answers.iter().filter(|v| **v == Node::value(round)).count()
    }

    /// Starts one caller whose load never finishes, and returns once its
    /// body runs (so it holds the lease of `round`'s key).
    pub async fn hold(self: &Arc<Self>, round: u64) -> tokio::task::JoinHandle<String> {
        self.hang.store(true, SeqCst);
        let before = self.loads.load(SeqCst);
        let node = Arc::clone(self);
        let holder = tokio::spawn(async move { node.get(round).await });
        while self.loads.load(SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.hang.store(false, SeqCst);
        holder
    }
}
