use cache_runtime::{invalidates, Cache};

static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Cache::memory);

#[invalidates("user:<id>", cach = &CACHE)]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
