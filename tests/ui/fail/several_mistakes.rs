use cache_runtime::cached;

#[cached(tll = 5, key = "user:<id", ttl = 0)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
