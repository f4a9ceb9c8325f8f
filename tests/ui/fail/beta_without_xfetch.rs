use cache_runtime::cached;

#[cached(strategy = "refresh_ahead", key = "user:<id>", ttl = 60, refresh = 0.8, beta = 2.0)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
