//! The runtime against the code it replaces (see the README's
//! "Performance"), with criterion's statistics:
//!
//! 1. `hit`: a warm key, one caller: ours, the hand-written equivalent (GET,
//!    decode with the same codec) and the `cached` crate's Redis store.
//! 2. `throughput`: 50 tasks on warm keys sharing one connection each, the
//!    same three (criterion reports operations per second).
//! 3. `memory`: an in-memory hit, ours against moka.
//! 4. `miss`: a cold key whose body returns at once: ours (lease on)
//!    against hand-written GET + SET.
//! 5. `codec`: the envelope against raw bincode, encode and decode.
//!
//! ```text
//! cargo bench            # everything
//! cargo bench -- hit     # one group
//! ```
//!
//! The Redis groups run against a `redis-server` this process starts on a
//! free loopback port; without one installed they are skipped.

mod support;

use cache_runtime::{envelope, Cache};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Client, Ours, Profile, RedisServer, WARM};
use tokio::runtime::Runtime;

/// Concurrent tasks of the throughput group.
const TASKS: u64 = 50;

/// A counter for `iter` closures: the next id, modulo `modulo`.
fn ids(start: u64, modulo: u64) -> impl Fn() -> u64 {
    let i = Cell::new(start);
    move || {
        i.set(i.get() + 1);
        i.get() % modulo
    }
}

/// One call of `client` per iteration, one caller.
fn one_caller<C: Client>(
    group: &mut BenchmarkGroup<WallTime>,
    name: &str,
    rt: &Runtime,
    client: &C,
    id: impl Fn() -> u64,
) {
    group.bench_function(name, |b| {
        b.to_async(rt).iter(|| client.get(id()));
    });
}

/// `iters` calls of `client` spread over `TASKS` concurrent tasks.
fn spread_over_tasks<C: Client>(
    group: &mut BenchmarkGroup<WallTime>,
    name: &str,
    rt: &Runtime,
    client: &Arc<C>,
) {
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let client = Arc::clone(client);
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let client = Arc::clone(&client);
                        let share = iters / TASKS + u64::from(t < iters % TASKS);
                        tokio::spawn(async move {
                            for i in 0..share {
                                let _ = client.get((t + i * TASKS) % WARM).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("benchmark task panicked");
                }
                start.elapsed()
            }
        });
    });
}

fn redis_groups(c: &mut Criterion) {
    let Some(server) = RedisServer::try_start() else {
        eprintln!("redis-server is not installed: skipping the Redis benchmarks");
        return;
    };
    let rt = support::runtime(2);
    let (ours, hand, theirs) = rt.block_on(support::connect_and_warm(&server.url()));

    let mut group = c.benchmark_group("hit");
    one_caller(&mut group, "ours", &rt, &*ours, ids(0, WARM));
    one_caller(&mut group, "hand-written", &rt, &*hand, ids(0, WARM));
    one_caller(&mut group, "cached crate", &rt, &*theirs, ids(0, WARM));
    group.finish();

    if let Some(line) = support::redis_benchmark(&server) {
        println!("throughput: redis-benchmark -c 50 -t get on the same server: {line}");
    }
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    spread_over_tasks(&mut group, "ours", &rt, &ours);
    spread_over_tasks(&mut group, "hand-written", &rt, &hand);
    spread_over_tasks(&mut group, "cached crate", &rt, &theirs);
    group.finish();

    // Cold keys: each call a new id, never read before.
    let mut group = c.benchmark_group("miss");
    one_caller(
        &mut group,
        "ours (lease on)",
        &rt,
        &*ours,
        ids(1 << 32, u64::MAX),
    );
    one_caller(
        &mut group,
        "hand-written GET + SET",
        &rt,
        &*hand,
        ids(1 << 32, u64::MAX),
    );
    group.finish();
}

fn memory_group(c: &mut Criterion) {
    let rt = support::runtime(1);
    let ours = Ours {
        cache: Cache::memory(),
    };
    let moka = support::moka();
    rt.block_on(async {
        for id in 0..WARM {
            ours.profile(id).await.unwrap();
            moka.insert(id, Profile::sample(id)).await;
        }
    });
    let mut group = c.benchmark_group("memory");
    one_caller(&mut group, "ours", &rt, &ours, ids(0, WARM));
    let next = ids(0, WARM);
    group.bench_function("moka get", |b| {
        b.to_async(&rt).iter(|| {
            let id = next();
            let moka = &moka;
            async move { moka.get(&id).await }
        });
    });
    group.finish();
}

fn codec_group(c: &mut Criterion) {
    let profile = Profile::sample(42);
    let header = support::header();
    let config = support::bincode_config();
    let entry = envelope::encode_value(&profile, &header).expect("encodes");
    let raw = bincode::serde::encode_to_vec(&profile, config).expect("encodes");
    println!(
        "codec: an entry is {} bytes: {} of payload, {} of envelope (goal: <= 16)",
        entry.len(),
        raw.len(),
        entry.len() - raw.len()
    );
    let mut group = c.benchmark_group("codec");
    group.bench_function("encode/envelope", |b| {
        b.iter(|| envelope::encode_value(std::hint::black_box(&profile), &header));
    });
    group.bench_function("encode/raw bincode", |b| {
        b.iter(|| bincode::serde::encode_to_vec(std::hint::black_box(&profile), config));
    });
    group.bench_function("decode/envelope", |b| {
        b.iter(|| envelope::decode::<Profile>(std::hint::black_box(&entry)));
    });
    group.bench_function("decode/raw bincode", |b| {
        b.iter(|| {
            bincode::serde::decode_from_slice::<Profile, _>(std::hint::black_box(&raw), config)
        });
    });
    group.finish();
}

criterion_group!(benches, redis_groups, memory_group, codec_group);
criterion_main!(benches);
