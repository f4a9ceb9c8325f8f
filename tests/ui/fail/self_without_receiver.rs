use cache_runtime::cached;

#[cached(key = "user:<self.tenant>:<id>")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
