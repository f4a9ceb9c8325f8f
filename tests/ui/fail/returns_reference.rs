use cache_runtime::cached;

#[cached(key = "user:<id>")]
async fn user(id: u64) -> &'static str {
    let _ = id;
    "user"
}

fn main() {}
