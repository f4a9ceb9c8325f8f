//! [`Flusher`]: a task that takes a write-behind queue's entries and runs
//! the function's body for each key's latest write.
//!
//! Each round takes a batch: entries it holds that are due for a retry,
//! entries other flushers left idle (claimed), then new entries. Within the
//! batch, a key's older entries are acknowledged at once (coalesced) and
//! only its latest is tried: `begin` checks, atomically, that the entry is
//! still pending in this flusher's name, that it is still its key's latest
//! write (else it is acknowledged, superseded) and that no other flusher
//! runs the key's body (a lock). Then the body runs, in its own task (a
//! panic is a failure), within `body_timeout`; bodies of different keys
//! run concurrently. Success commits (acknowledges, gives the value its
//! TTL); failure counts an attempt and holds the entry for a retry after
//! an exponential backoff, or dead-letters it after `max_attempts`.
//!
//! A backend failure holds the entry (without counting an attempt) and
//! backs off; nothing is acknowledged that did not succeed, so a crash at
//! any point leaves the entry pending, to be claimed once idle.

use super::{FlushFn, QueueSpec};
use crate::backend::queue::{Begin, Entry, EntryId, Failure, QueueBackend, QueueKeys};
use crate::backend::{BackendError, Token};
use crate::envelope::{self, Header};
use crate::Cache;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A flusher's settings.
#[derive(Debug, Clone)]
struct Config {
    batch: usize,
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    body_timeout: Duration,
    claim_idle: Duration,
    poll: Duration,
    drain_timeout: Duration,
    consumer: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch: 100,
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            claim_idle: Duration::from_secs(90),
            poll: Duration::from_millis(50),
            drain_timeout: Duration::from_secs(30),
            consumer: None,
        }
    }
}

impl Config {
    /// How long the key lock lasts: twice the body's timeout, the longest
    /// a body runs before it is given up on (timed out, aborted, and
    /// awaited once more).
    fn lock_ttl(&self) -> Duration {
        self.body_timeout.saturating_mul(2)
    }

    /// How often idle entries are looked for.
    fn claim_every(&self) -> Duration {
        (self.claim_idle / 4).max(self.poll)
    }
}

/// The wait before retry number `attempts` (1 after the first failure):
/// `base` doubled for each attempt, at most `max`, and a random half of it
/// taken off, so that the entries of one outage do not retry in step.
pub(crate) fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let doubled = base.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let full = doubled.min(max);
    full.mul_f64(0.5 + 0.5 * fastrand::f64())
}

/// Configures a [`Flusher`] before it starts.
///
/// | setting | default |
/// |---|---|
/// | [`batch`](Self::batch) | 100 entries per round |
/// | [`max_attempts`](Self::max_attempts) | 10, then the entry is dead-lettered |
/// | [`backoff`](Self::backoff) | 100 ms doubling per attempt, at most 30 s |
/// | [`body_timeout`](Self::body_timeout) | 30 s, a timeout is a failed attempt |
/// | [`claim_idle`](Self::claim_idle) | 90 s: another flusher's entry idle this long is taken over |
/// | [`poll`](Self::poll) | 50 ms between looks at an empty queue |
/// | [`drain_timeout`](Self::drain_timeout) | 30 s: the longest [`Flusher::stop`] drains |
/// | [`consumer`](Self::consumer) | `flusher-<pid>-<random>` |
pub struct FlusherBuilder<O: 'static, A: 'static> {
    cache: Cache,
    spec: QueueSpec,
    owner: Arc<O>,
    flush: FlushFn<O, A>,
    config: Config,
}

impl<O, A> fmt::Debug for FlusherBuilder<O, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlusherBuilder")
            .field("queue", &self.spec.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<O, A> FlusherBuilder<O, A>
where
    O: Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(cache: Cache, spec: QueueSpec, owner: Arc<O>, flush: FlushFn<O, A>) -> Self {
        FlusherBuilder {
            cache,
            spec,
            owner,
            flush,
            config: Config::default(),
        }
    }

    /// The most entries it holds at once (at least 1), those waiting for a
    /// retry included; a round runs the bodies of its distinct keys
    /// concurrently.
    pub fn batch(mut self, entries: usize) -> Self {
        self.config.batch = entries.max(1);
        self
    }

    /// Attempts before an entry is dead-lettered (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// The wait after a first failure, doubled after each next one, at
    /// most `max`; each wait loses a random part of up to half.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff = base.max(Duration::from_millis(1));
        self.config.max_backoff = max.max(self.config.backoff);
        self
    }

    /// The longest a body may run; past it, it is cancelled and counts as
    /// a failed attempt. A key's lock lasts twice this long (a body that
    /// does not stop when cancelled keeps it until it returns).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long another flusher's entry must sit idle before this one
    /// takes it over (its flusher died or froze). Keep it above twice the
    /// body timeout and the longest backoff: an entry taken over from a
    /// live flusher is safe (the key's lock still orders its writes), but
    /// its body may run twice.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.config.claim_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// How long to wait before looking again at a queue that had nothing.
    pub fn poll(mut self, interval: Duration) -> Self {
        self.config.poll = interval.max(Duration::from_millis(1));
        self
    }

    /// The longest [`Flusher::stop`] keeps flushing before it stops.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// The name this flusher takes its entries under; unique per running
    /// flusher (two flushers with one name would take each other's
    /// entries for their own).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config.consumer = Some(name.into());
        self
    }

    /// Starts the flusher as a task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(self) -> Flusher {
        let consumer =
            self.config.consumer.clone().unwrap_or_else(|| {
                format!("flusher-{}-{:08x}", std::process::id(), fastrand::u32(..))
            });
        let counters = Arc::new(Counters::default());
        let (stop, stopping) = watch::channel(false);
        let run = Run {
            keys: self.spec.keys(&self.cache),
            ttl: self.spec.ttl(&self.cache),
            cache: self.cache,
            spec: self.spec,
            owner: self.owner,
            flush: self.flush,
            config: self.config,
            consumer: consumer.clone(),
            counters: Arc::clone(&counters),
            backoffs: Mutex::default(),
            args: PhantomData,
        };
        let task = tokio::spawn(Arc::new(run).main(stopping));
        Flusher {
            consumer,
            counters,
            stop,
            task: Some(task),
        }
    }
}

/// A running flusher: a task that runs a write-behind function's body for
/// the writes of its queue. Start one or many, in one process or many.
/// [`stop`](Self::stop) drains it; dropping it aborts it at once, leaving
/// what it held to be claimed by another flusher once idle (nothing is
/// lost: only succeeded bodies are acknowledged).
pub struct Flusher {
    consumer: String,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Flusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flusher")
            .field("consumer", &self.consumer)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a flusher did since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FlushStats {
    /// Entries taken: new, claimed or retried.
    pub taken: u64,
    /// Of those, entries claimed from another flusher that left them idle.
    pub claimed: u64,
    /// Times the body ran (each attempt counts).
    pub body_runs: u64,
    /// Writes flushed: their body succeeded and they were acknowledged.
    pub flushed: u64,
    /// Writes acknowledged without running the body: a newer write of
    /// their key was queued (last write wins).
    pub coalesced: u64,
    /// Bodies that failed (or timed out, or panicked) and were retried or
    /// dead-lettered.
    pub failures: u64,
    /// Writes moved to the dead letters.
    pub dead_lettered: u64,
    /// Backend calls that failed; the entries stay pending.
    pub backend_errors: u64,
    /// Entries it still held when it stopped (drain timed out): pending,
    /// for another flusher to claim once idle.
    pub left_pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    taken: AtomicU64,
    claimed: AtomicU64,
    body_runs: AtomicU64,
    flushed: AtomicU64,
    coalesced: AtomicU64,
    failures: AtomicU64,
    dead_lettered: AtomicU64,
    backend_errors: AtomicU64,
    left_pending: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl Counters {
    fn snapshot(&self) -> FlushStats {
        FlushStats {
            taken: self.taken.load(Relaxed),
            claimed: self.claimed.load(Relaxed),
            body_runs: self.body_runs.load(Relaxed),
            flushed: self.flushed.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            failures: self.failures.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            backend_errors: self.backend_errors.load(Relaxed),
            left_pending: self.left_pending.load(Relaxed),
        }
    }
}

impl Flusher {
    /// The name it takes entries under.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// What it did so far.
    pub fn stats(&self) -> FlushStats {
        self.counters.snapshot()
    }

    /// Drains, then stops: keeps flushing what it holds and the writes
    /// queued before the call (or until the drain timeout passes), leaves
    /// the consumer group if it holds nothing, and returns what it did.
    pub async fn stop(mut self) -> FlushStats {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::error!(consumer = self.consumer, error = %e, "flusher task failed");
            }
        }
        self.counters.snapshot()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A body's task, aborted when dropped: when the flusher is dropped
/// mid-body, its bodies stop with it, as a crashed process's do. (A body
/// that does not stop is taken out of it, and guarded.)
struct BodyTask(Option<JoinHandle<Result<(), String>>>);

impl Drop for BodyTask {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// A flusher's loop state.
struct Loop {
    /// The entries it holds: pending in its name, waiting for a retry.
    held: BTreeMap<EntryId, Held>,
    /// Where the scan for idle entries goes on.
    cursor: EntryId,
    next_claim: Instant,
    drain: Option<Drain>,
    failures_in_a_row: u32,
    joined: bool,
}

/// A flusher asked to stop.
struct Drain {
    /// When it stops, drained or not.
    until: Instant,
    /// The newest write queued when it began to drain, once known: it
    /// reads up to that one and no further. (An id, not a time: the ids come
    /// from the backend's clock.)
    last: Option<EntryId>,
    reading: bool,
}

/// An entry this flusher holds, and when to try it next.
struct Held {
    entry: Entry,
    due: Instant,
}

/// Why an entry's attempt failed.
#[derive(Debug, Clone, Copy)]
enum Failed {
    /// The body returned an error, panicked, or timed out and stopped.
    Body,
    /// The body timed out and did not stop when aborted (it blocks its
    /// thread): it may still write.
    Stuck,
    /// The arguments do not decode into this build's.
    Undecodable,
}

/// What trying one entry came to.
enum Tried {
    /// Done with: flushed, coalesced, dead-lettered, or no longer ours.
    Done,
    /// Try again at this time.
    Later(Instant),
}

/// A running flusher's state, shared with its body tasks.
struct Run<O: 'static, A: 'static> {
    cache: Cache,
    spec: QueueSpec,
    keys: QueueKeys,
    ttl: Duration,
    owner: Arc<O>,
    flush: FlushFn<O, A>,
    config: Config,
    consumer: String,
    counters: Arc<Counters>,
    /// Keys whose body failed, and when their writes may be tried again.
    backoffs: Mutex<HashMap<String, KeyBackoff>>,
    args: PhantomData<fn() -> A>,
}

/// A key whose body failed: its writes, the newest included, wait until
/// `due`. A database that fails sees one try per key per backoff, not one
/// per write.
struct KeyBackoff {
    failures: u32,
    due: Instant,
}

impl<O, A> Run<O, A>
where
    O: Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
{
    async fn main(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut state = Loop {
            held: BTreeMap::new(),
            cursor: EntryId::default(),
            next_claim: Instant::now(),
            drain: None,
            failures_in_a_row: 0,
            joined: false,
        };
        loop {
            if state.drain.is_none() && *stopping.borrow() {
                state.drain = Some(Drain {
                    until: Instant::now() + self.config.drain_timeout,
                    last: None,
                    reading: true,
                });
            }
            if state
                .drain
                .as_ref()
                .is_some_and(|d| Instant::now() >= d.until)
            {
                break;
            }
            let (batch, failed) = self.gather(&mut state).await;
            state.failures_in_a_row = if failed {
                state.failures_in_a_row + 1
            } else {
                0
            };
            if batch.is_empty() {
                if state.drain.is_some() && state.held.is_empty() && !failed {
                    break;
                }
                let mut wait = if failed {
                    backoff(
                        state.failures_in_a_row,
                        self.config.backoff,
                        self.config.max_backoff,
                    )
                } else {
                    self.config.poll
                };
                if let Some(due) = state.held.values().map(|h| h.due).min() {
                    wait = wait.min(due.saturating_duration_since(Instant::now()));
                }
                if state.drain.is_some() {
                    tokio::time::sleep(wait).await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stopping.changed() => {}
                    }
                }
                continue;
            }
            add(&self.counters.taken, batch.len() as u64);
            // Held until their outcome says otherwise: an entry whose
            // outcome is lost is tried again after a backoff.
            let due = Instant::now() + self.config.backoff;
            for entry in batch.values() {
                let entry = entry.clone();
                state.held.insert(entry.id, Held { entry, due });
            }
            for (id, tried) in Arc::clone(&self).round(batch).await {
                match tried {
                    Tried::Done => {
                        state.held.remove(&id);
                    }
                    Tried::Later(due) => {
                        if let Some(h) = state.held.get_mut(&id) {
                            h.due = due;
                        }
                    }
                }
            }
        }
        let left = state.held.len() as u64;
        add(&self.counters.left_pending, left);
        if left > 0 {
            tracing::warn!(
                queue = self.spec.name,
                consumer = self.consumer,
                left,
                "flusher stopped before it drained; its entries will be claimed once idle"
            );
        } else if let Err(e) = self
            .cache
            .guarded(self.cache.backend().leave(&self.keys, &self.consumer))
            .await
        {
            tracing::debug!(consumer = self.consumer, error = %e, "could not leave the consumer group");
        }
    }

    /// The next round's entries: held ones due for a retry, then entries
    /// other flushers left idle, then new ones, as long as this flusher
    /// holds fewer than `batch` (entries waiting out a backoff count: a
    /// flusher does not take the whole queue during an outage, and leaves
    /// the rest to the others). Whether a backend call failed.
    async fn gather(&self, state: &mut Loop) -> (BTreeMap<EntryId, Entry>, bool) {
        let mut batch: BTreeMap<EntryId, Entry> = BTreeMap::new();
        if !state.joined {
            match self.call(self.cache.backend().join(&self.keys)).await {
                Ok(()) => state.joined = true,
                Err(_) => return (batch, true),
            }
        }
        let mut failed = false;
        let now = Instant::now();
        let due = state.held.values().filter(|h| h.due <= now);
        for h in due.take(self.config.batch) {
            batch.insert(h.entry.id, h.entry.clone());
        }
        let room = |batch: &BTreeMap<EntryId, Entry>, held: &BTreeMap<EntryId, Held>| {
            let taken = batch.keys().filter(|id| !held.contains_key(id)).count();
            self.config.batch.saturating_sub(held.len() + taken)
        };
        let claim_room = room(&batch, &state.held);
        if now >= state.next_claim && claim_room > 0 {
            let claim = self.cache.backend().claim(
                &self.keys,
                &self.consumer,
                self.config.claim_idle,
                claim_room,
                state.cursor,
            );
            match self.call(claim).await {
                Ok((claimed, next)) => {
                    // A scan cut short (by COUNT, or by the PEL's length)
                    // goes on next round; a finished one waits a while.
                    if next == EntryId::default() && claimed.len() < claim_room {
                        state.next_claim = now + self.config.claim_every();
                        self.reap().await;
                    }
                    state.cursor = next;
                    let new = claimed.iter().filter(|e| !state.held.contains_key(&e.id));
                    add(&self.counters.claimed, new.count() as u64);
                    batch.extend(claimed.into_iter().map(|e| (e.id, e)));
                }
                Err(_) => failed = true,
            }
        }
        let read_room = room(&batch, &state.held);
        if read_room > 0 && !self.drain_reads(state).await {
            return (batch, true);
        }
        let reading = state.drain.as_ref().is_none_or(|d| d.reading);
        if read_room > 0 && reading {
            let read = self
                .cache
                .backend()
                .read(&self.keys, &self.consumer, read_room);
            match self.call(read).await {
                Ok(new) => {
                    // Draining, it flushes what was queued before the stop:
                    // once it reaches the last of those, it reads no more.
                    if let Some(drain) = &mut state.drain {
                        let past = |e: &Entry| drain.last.is_none_or(|last| e.id >= last);
                        if new.len() < read_room || new.iter().any(past) {
                            drain.reading = false;
                        }
                    }
                    batch.extend(new.into_iter().map(|e| (e.id, e)));
                }
                Err(_) => failed = true,
            }
        }
        (batch, failed)
    }

    /// Draining, learns the newest write queued so far, the last one it
    /// reads (none: it reads no more). `false` when the
    /// backend could not say; it asks again next round.
    async fn drain_reads(&self, state: &mut Loop) -> bool {
        let Some(drain) = state.drain.as_mut() else {
            return true;
        };
        if !drain.reading || drain.last.is_some() {
            return true;
        }
        match self.call(self.cache.backend().newest(&self.keys)).await {
            Ok(Some(last)) => drain.last = Some(last),
            Ok(None) => drain.reading = false,
            Err(_) => return false,
        }
        true
    }

    /// Removes consumers that hold nothing and have been idle for twice
    /// `claim_idle`: flushers that died or were dropped. (Redis may count a
    /// live flusher that found nothing to take as idle: removed, it is added
    /// back when it next takes an entry.) Best effort.
    async fn reap(&self) {
        let reap = self
            .cache
            .backend()
            .reap(&self.keys, self.config.claim_idle.saturating_mul(2));
        let _ = self.call(reap).await;
    }

    /// One round: coalesces the batch per key, then tries each key's
    /// latest entry, concurrently. Returns what became of each entry.
    async fn round(self: Arc<Self>, batch: BTreeMap<EntryId, Entry>) -> Vec<(EntryId, Tried)> {
        let mut latest: HashMap<String, Entry> = HashMap::new();
        let mut older = Vec::new();
        // In id order: a later entry of a key replaces the one before it.
        for (_, entry) in batch {
            if let Some(previous) = latest.insert(entry.key.clone(), entry) {
                older.push(previous);
            }
        }
        let mut outcomes = Vec::new();
        if !older.is_empty() {
            let ids: Vec<EntryId> = older.iter().map(|e| e.id).collect();
            match self.call(self.cache.backend().ack(&self.keys, &ids)).await {
                Ok(acked) => {
                    add(&self.counters.coalesced, acked);
                    outcomes.extend(ids.into_iter().map(|id| (id, Tried::Done)));
                }
                Err(_) => {
                    let due = Instant::now() + self.config.backoff;
                    outcomes.extend(older.into_iter().map(|e| (e.id, Tried::Later(due))));
                }
            }
        }
        let mut tasks = JoinSet::new();
        let now = Instant::now();
        // Keys not retried for a whole backoff are not failing any more,
        // or are another flusher's now: forget their failures.
        self.backoffs()
            .retain(|_, b| b.due + self.config.max_backoff > now);
        for entry in latest.into_values() {
            if let Some(due) = self.backed_off(&entry.key, now) {
                outcomes.push((entry.id, Tried::Later(due)));
                continue;
            }
            let run = Arc::clone(&self);
            tasks.spawn(async move {
                let id = entry.id;
                (id, run.try_entry(entry).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome),
                // `try_entry` does not panic (the body runs in a task of
                // its own); the entry stays held and pending regardless.
                Err(e) => tracing::error!(error = %e, "flusher task failed"),
            }
        }
        outcomes
    }

    /// Decides, runs the body, and records the result of one entry.
    async fn try_entry(self: Arc<Self>, entry: Entry) -> Tried {
        let token = Token::random();
        let begin = self.cache.backend().begin(
            &self.keys,
            &self.consumer,
            &entry,
            token,
            self.config.lock_ttl(),
        );
        match self.call(begin).await {
            Err(_) => return Tried::Later(Instant::now() + self.config.backoff),
            // The key's failures stand (a newer write of a failing key
            // fails too); `round` forgets them once they are old.
            Ok(Begin::Lost) => return Tried::Done,
            Ok(Begin::Superseded) => {
                add(&self.counters.coalesced, 1);
                return Tried::Done;
            }
            Ok(Begin::Busy) => return Tried::Later(Instant::now() + self.config.poll),
            Ok(Begin::Go) => {}
        }
        let (error, failed) = match envelope::decode_args::<A>(&entry.args) {
            Err(e) => (
                format!("the arguments do not decode (the function's arguments changed?): {e}"),
                Failed::Undecodable,
            ),
            Ok(args) => {
                add(&self.counters.body_runs, 1);
                match self.run_body(args, &entry.key, token).await {
                    Ok(()) => return self.commit(&entry, token).await,
                    Err(failure) => failure,
                }
            }
        };
        add(&self.counters.failures, 1);
        let (due, hold) = match failed {
            Failed::Body => self.back_off(&entry.key),
            // Its write may still land: the key stays locked until it
            // returns (`guard_stuck`), and is retried after that.
            Failed::Stuck => {
                let hold = self.config.lock_ttl();
                (Instant::now() + hold, hold)
            }
            // Released at once, for a flusher that can decode it.
            Failed::Undecodable => (Instant::now(), Duration::from_millis(1)),
        };
        let fail = self.cache.backend().fail(&self.keys, &entry, token, hold);
        match self.call(fail).await {
            Err(_) => Tried::Later(due),
            // Acknowledged meanwhile (superseded, by another flusher).
            Ok(None) => Tried::Done,
            Ok(Some(attempts)) if attempts >= self.config.max_attempts => {
                // A stuck body's lock stays with `guard_stuck`.
                let release = (!matches!(failed, Failed::Stuck)).then_some(token);
                self.bury(&entry, &error, attempts, release).await
            }
            Ok(Some(attempts)) => {
                tracing::warn!(
                    key = entry.key,
                    function = self.spec.function,
                    attempts,
                    error,
                    "write-behind write failed; retrying"
                );
                match failed {
                    // Left pending, unheld: it is claimed once idle, by a
                    // flusher of the build that queued it if one runs (a
                    // rolling deploy), else retried here until buried.
                    Failed::Undecodable => Tried::Done,
                    Failed::Body | Failed::Stuck => Tried::Later(due),
                }
            }
        }
    }

    /// Runs the body in a task of its own (so that a panic is a failure),
    /// within the timeout. A body that times out is aborted, and awaited
    /// for half a timeout more (the lock lasts two): an async body stops at
    /// its next `.await`. One blocking its thread does not stop, and may
    /// still write: `key` stays locked until it returns.
    async fn run_body(
        self: &Arc<Self>,
        args: A,
        key: &str,
        token: Token,
    ) -> Result<(), (String, Failed)> {
        let timeout = self.config.body_timeout;
        let mut body = BodyTask(Some(tokio::spawn((self.flush)(
            Arc::clone(&self.owner),
            args,
        ))));
        let Some(task) = body.0.as_mut() else {
            unreachable!("the task was just set");
        };
        match tokio::time::timeout(timeout, &mut *task).await {
            Ok(Ok(result)) => result.map_err(|e| (e, Failed::Body)),
            Ok(Err(e)) if e.is_panic() => Err(("the body panicked".into(), Failed::Body)),
            Ok(Err(e)) => Err((format!("the body was cancelled: {e}"), Failed::Body)),
            Err(_) => {
                task.abort();
                let message = format!("the body timed out after {timeout:?}");
                if tokio::time::timeout(timeout / 2, &mut *task).await.is_ok() {
                    return Err((message, Failed::Body));
                }
                if let Some(task) = body.0.take() {
                    self.guard_stuck(task, key.to_owned(), token);
                }
                Err((
                    format!("{message} and did not stop: it may still land"),
                    Failed::Stuck,
                ))
            }
        }
    }

    /// Keeps `key`'s flush lock until a body that would not stop returns,
    /// then releases it: no newer write of the key runs before this older
    /// one has landed, however late.
    fn guard_stuck(
        self: &Arc<Self>,
        mut task: JoinHandle<Result<(), String>>,
        key: String,
        token: Token,
    ) {
        tracing::error!(
            key,
            function = self.spec.function,
            "write-behind body did not stop at its timeout (it blocks its thread?): its key stays locked until it returns"
        );
        let run = Arc::clone(self);
        tokio::spawn(async move {
            let ttl = run.config.lock_ttl();
            loop {
                let hold = run.cache.backend().hold(&run.keys, &key, token, ttl);
                if let Ok(false) = run.call(hold).await {
                    tracing::error!(
                        key,
                        function = run.spec.function,
                        "a stuck write-behind body lost its key's lock: a newer write may land before it"
                    );
                }
                if tokio::time::timeout(ttl / 3, &mut task).await.is_ok() {
                    break;
                }
            }
            let release =
                run.cache
                    .backend()
                    .hold(&run.keys, &key, token, Duration::from_millis(1));
            let _ = run.call(release).await;
        });
    }

    /// The body succeeded: acknowledge, and give the value its TTL.
    async fn commit(&self, entry: &Entry, token: Token) -> Tried {
        let ttl = self.cache.jittered(self.ttl);
        let header = Header {
            written_at_ms: self.cache.now_ms(),
            fresh_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            load_ms: 0,
        };
        let value = envelope::restamp(&entry.value, &header)
            .map_or_else(|| entry.value.clone(), bytes::Bytes::from);
        let commit = self
            .cache
            .backend()
            .commit(&self.keys, entry, value, ttl, token);
        match self.call(commit).await {
            Ok(()) => {
                add(&self.counters.flushed, 1);
                self.backoffs().remove(&entry.key);
                Tried::Done
            }
            // The database has the write, the queue does not know: the
            // entry stays pending and its body runs again (at least once).
            Err(_) => Tried::Later(Instant::now() + self.config.backoff),
        }
    }

    /// Moves an entry to the dead letters, unless a newer write of its key
    /// supersedes it.
    async fn bury(
        &self,
        entry: &Entry,
        error: &str,
        attempts: u32,
        release: Option<Token>,
    ) -> Tried {
        tracing::error!(
            key = entry.key,
            function = self.spec.function,
            attempts,
            error,
            "write-behind write failed its last attempt; dead-lettering it"
        );
        let failure = Failure { error, attempts };
        let bury = self
            .cache
            .backend()
            .bury(&self.keys, entry, &failure, release);
        match self.call(bury).await {
            Ok(buried) => {
                // Not buried: a newer write of the key carries its state.
                let counter = if buried {
                    &self.counters.dead_lettered
                } else {
                    &self.counters.coalesced
                };
                add(counter, 1);
                self.backoffs().remove(&entry.key);
                Tried::Done
            }
            Err(_) => Tried::Later(Instant::now() + self.config.backoff),
        }
    }

    fn backoffs(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyBackoff>> {
        self.backoffs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When `key`'s writes may be tried again, if not now.
    fn backed_off(&self, key: &str, now: Instant) -> Option<Instant> {
        self.backoffs()
            .get(key)
            .map(|b| b.due)
            .filter(|due| *due > now)
    }

    /// Records a failed body of `key`: the key waits the backoff of its
    /// failures in a row (across its entries, so that newer writes of a
    /// failing key do not try at once); when, and for how long.
    fn back_off(&self, key: &str) -> (Instant, Duration) {
        let mut backoffs = self.backoffs();
        let failures = backoffs.get(key).map_or(0, |b| b.failures) + 1;
        let wait = backoff(failures, self.config.backoff, self.config.max_backoff);
        let due = Instant::now() + wait;
        backoffs.insert(key.to_owned(), KeyBackoff { failures, due });
        (due, wait)
    }

    /// A backend call behind the cache's breaker; a failure is logged and
    /// counted.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let result = self.cache.guarded(call).await;
        if let Err(e) = &result {
            add(&self.counters.backend_errors, 1);
            if !e.is_skip() {
                tracing::warn!(queue = self.spec.name, error = %e, "write-behind queue call failed; retrying");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_down_only() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempts in 1..=40 {
            let full = (base * 2u32.pow(attempts.min(20) - 1)).min(max);
            for _ in 0..50 {
                let wait = backoff(attempts, base, max);
                assert!(
                    wait <= full && wait >= full / 2,
                    "{attempts}: {wait:?} of {full:?}"
                );
            }
        }
        assert!(backoff(3, base, max) >= Duration::from_millis(200));
    }
}
