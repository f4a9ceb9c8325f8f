use cache_runtime::cached;

pub struct Note(String);

#[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, handle = STOCK)]
async fn set_stock(sku: u64, qty: u32, note: Note) -> Result<(), cache_runtime::Error> {
    let _ = (sku, qty, note.0);
    Ok(())
}

fn main() {}
