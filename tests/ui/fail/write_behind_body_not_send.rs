// A flusher runs bodies on any thread: one holding an `Rc` across an
// `.await` is an error.
use cache_runtime::cached;
use std::rc::Rc;

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, handle = STOCK)]
async fn set_stock(sku: u64, qty: u32) -> Result<(), cache_runtime::Error> {
    let local = Rc::new(qty);
    tokio::task::yield_now().await;
    let _ = (sku, local);
    Ok(())
}

fn main() {}
