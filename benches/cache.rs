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
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{HandWritten, Ours, Profile, RedisServer};

/// Warm keys the hit benchmarks cycle through.
const WARM: u64 = 1_000;
/// Concurrent tasks of the throughput group.
const TASKS: u64 = 50;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Runs `iters` calls of `call` spread over `TASKS` concurrent tasks; the
/// time they took.
async fn spread<F, Fut>(iters: u64, call: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let call = call.clone();
            let share = iters / TASKS + u64::from(t < iters % TASKS);
            tokio::spawn(async move {
                for i in 0..share {
                    call((t + i * TASKS) % WARM).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("benchmark task panicked");
    }
    start.elapsed()
}

fn redis_groups(c: &mut Criterion) {
    let Some(server) = RedisServer::try_start() else {
        eprintln!("redis-server is not installed: skipping the Redis benchmarks");
        return;
    };
    let url = server.url();
    support::set_theirs_url(&url);
    // One runtime for every Redis client: a client's connection is a task
    // on the runtime it was made on, and only runs while that runtime does.
    let rt = runtime(2);
    let (ours, hand) = rt.block_on(async {
        let cache = Cache::builder()
            .redis(&url)
            .await
            .expect("connect to redis");
        let ours = Arc::new(Ours { cache });
        let hand = Arc::new(HandWritten::connect(&url).await);
        for id in 0..WARM {
            ours.profile(id).await.unwrap();
            hand.profile(id).await.unwrap();
            support::theirs_profile(id).await.unwrap();
        }
        (ours, hand)
    });

    let mut group = c.benchmark_group("hit");
    let i = Cell::new(0u64);
    let next = || {
        i.set(i.get() + 1);
        i.get() % WARM
    };
    group.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| ours.profile(next()));
    });
    group.bench_function("hand-written", |b| {
        b.to_async(&rt).iter(|| hand.profile(next()));
    });
    group.bench_function("cached crate", |b| {
        b.to_async(&rt).iter(|| support::theirs_profile(next()));
    });
    group.finish();

    if let Some(line) = redis_benchmark(&server) {
        println!("throughput: redis-benchmark -c 50 -t get on the same server: {line}");
    }
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let ours = Arc::clone(&ours);
            spread(iters, move |id| {
                let ours = Arc::clone(&ours);
                async move { drop(ours.profile(id).await) }
            })
        });
    });
    group.bench_function("hand-written", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let hand = Arc::clone(&hand);
            spread(iters, move |id| {
                let hand = Arc::clone(&hand);
                async move { drop(hand.profile(id).await) }
            })
        });
    });
    group.bench_function("cached crate", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            spread(iters, |id| async move {
                drop(support::theirs_profile(id).await)
            })
        });
    });
    group.finish();

    // Cold keys: each call a new id, never read before.
    let mut group = c.benchmark_group("miss");
    let cold = Cell::new(1u64 << 32);
    let fresh = || {
        cold.set(cold.get() + 1);
        cold.get()
    };
    group.bench_function("ours (lease on)", |b| {
        b.to_async(&rt).iter(|| ours.profile(fresh()));
    });
    group.bench_function("hand-written GET + SET", |b| {
        b.to_async(&rt).iter(|| hand.profile(fresh()));
    });
    group.finish();
}

/// What `redis-benchmark -c 50 -t get` reaches on the same server.
fn redis_benchmark(server: &RedisServer) -> Option<String> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", "50", "-n", "100000", "-t", "get", "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` rewrites its progress line with `\r`; the last one is the result.
    let line = text
        .split(['\r', '\n'])
        .rev()
        .find(|l| l.contains("requests per second"))?;
    Some(line.trim().to_owned())
}

fn memory_group(c: &mut Criterion) {
    let rt = runtime(1);
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
    let i = Cell::new(0u64);
    let next = || {
        i.set(i.get() + 1);
        i.get() % WARM
    };
    group.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| ours.profile(next()));
    });
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
    let config = support::bincode_config();
    let entry = envelope::encode_value(&profile).expect("encodes");
    let raw = bincode::serde::encode_to_vec(&profile, config).expect("encodes");
    println!(
        "codec: an entry is {} bytes: {} of payload, {} of envelope (goal: <= 16)",
        entry.len(),
        raw.len(),
        entry.len() - raw.len()
    );
    let mut group = c.benchmark_group("codec");
    group.bench_function("encode/envelope", |b| {
        b.iter(|| envelope::encode_value(std::hint::black_box(&profile)));
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
