use cache_runtime::cached;

#[cached(key = "user:<id>", ttl = 1.5)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
