// One error, on the value expression.
use cache_runtime::cached;

pub struct Stock(u32);

#[cached(strategy = "write_behind", key = "stock:<sku>", value = Stock(qty), handle = STOCK)]
async fn set_stock(sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
    let _ = (sku, qty);
    Ok(())
}

fn main() {}
