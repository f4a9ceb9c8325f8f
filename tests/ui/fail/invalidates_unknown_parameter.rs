use cache_runtime::invalidates;

#[invalidates("user:<user_id>")]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
