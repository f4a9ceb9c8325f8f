// One error, on the argument's type: the flusher must decode it.
use cache_runtime::cached;

pub struct Pool;

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, handle = STOCK)]
async fn set_stock(pool: &Pool, sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
    let _ = (pool, sku, qty);
    Ok(())
}

fn main() {}
