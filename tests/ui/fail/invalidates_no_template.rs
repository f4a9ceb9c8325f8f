use cache_runtime::invalidates;

#[invalidates]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
