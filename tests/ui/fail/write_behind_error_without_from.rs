// One error, on the return type: `String` cannot take the queue's error.
use cache_runtime::cached;

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, handle = STOCK)]
async fn set_stock(sku: u64, qty: u32) -> Result<(), String> {
    let _ = (sku, qty);
    Ok(())
}

fn main() {}
