use cache_runtime::{cached, KeyPart};

#[cached(strategy = "read_through", key = "item:<id>", ttl = 60, handle = ITEMS)]
async fn item<T: KeyPart + Clone + Send + 'static>(id: T) -> u64 {
    let _ = id;
    1
}

fn main() {}
