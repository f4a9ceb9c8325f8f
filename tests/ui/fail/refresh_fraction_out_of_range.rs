use cache_runtime::cached;

#[cached(strategy = "refresh_ahead", key = "user:<id>", ttl = 60, refresh = 1.5)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
