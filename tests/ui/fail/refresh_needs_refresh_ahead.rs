use cache_runtime::cached;

#[cached(key = "user:<id>", ttl = 60, refresh = 0.8)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
