use cache_runtime::cached;

#[cached(key = "user:<id>")]
async fn user(id: u64) {
    let _ = id;
}

fn main() {}
