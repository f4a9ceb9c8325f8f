use cache_runtime::cached;

#[cached(key = "stock:<sku>", value = sku)]
async fn stock(sku: u64) -> u64 {
    sku
}

fn main() {}
