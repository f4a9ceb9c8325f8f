use cache_runtime::cached;

#[cached(key = "user:<id>", lock = "no")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
