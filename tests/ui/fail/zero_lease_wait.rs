use cache_runtime::cached;

#[cached(key = "user:<id>", lease_wait = "0s")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
