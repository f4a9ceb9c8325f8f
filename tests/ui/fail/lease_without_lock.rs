use cache_runtime::cached;

#[cached(key = "user:<id>", lock = false, lease_ttl = "2s", lease_wait = 5)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
