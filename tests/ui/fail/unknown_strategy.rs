use cache_runtime::cached;

#[cached(strategy = "asid", key = "user:<id>")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
