use cache_runtime::cached;

#[cached(key = "user:<id>")]
async fn user(id: u64) -> impl std::fmt::Display {
    id
}

fn main() {}
