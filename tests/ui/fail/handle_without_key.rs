use cache_runtime::cached;

#[cached(strategy = "read_through", ttl = 60, handle = USERS)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
