use cache_runtime::cached;

struct Query {
    id: u64,
}

#[cached(key = "query:<q>")]
async fn search(q: Query) -> u64 {
    q.id
}

fn main() {}
