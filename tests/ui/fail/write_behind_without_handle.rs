use cache_runtime::cached;

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty)]
async fn set_stock(sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
    let _ = (sku, qty);
    Ok(())
}

fn main() {}
