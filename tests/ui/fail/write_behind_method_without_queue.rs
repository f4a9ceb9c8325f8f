use cache_runtime::{cached, Cache};

struct Shop {
    cache: Cache,
}

impl Shop {
    #[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, cache = self.cache, handle = STOCK)]
    async fn set_stock(&self, sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
        let _ = (sku, qty);
        Ok(())
    }
}

fn main() {}
