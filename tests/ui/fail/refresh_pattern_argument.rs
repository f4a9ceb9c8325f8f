use cache_runtime::cached;

#[cached(strategy = "refresh_ahead", key = "sum", ttl = 60)]
async fn sum((a, b): (u64, u64)) -> u64 {
    a + b
}

fn main() {}
