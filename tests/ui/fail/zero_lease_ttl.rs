use cache_runtime::cached;

#[cached(key = "user:<id>", lease_ttl = 0)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
