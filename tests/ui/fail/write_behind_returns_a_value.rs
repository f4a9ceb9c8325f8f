use cache_runtime::cached;

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, handle = STOCK)]
async fn set_stock(sku: u64, qty: u32) -> u32 {
    qty + sku as u32
}

fn main() {}
