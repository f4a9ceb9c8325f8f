use cache_runtime::cached;

#[cached(strategy = "write_through", key = "n:<n>", lease_ttl = "2s")]
async fn save(n: u64) -> Result<u64, String> {
    Ok(n)
}

fn main() {}
