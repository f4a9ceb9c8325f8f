use cache_runtime::{cached, Cache};

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, cache = cache, handle = STOCK)]
async fn set_stock(cache: &Cache, sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
    let _ = (cache, sku, qty);
    Ok(())
}

fn main() {}
