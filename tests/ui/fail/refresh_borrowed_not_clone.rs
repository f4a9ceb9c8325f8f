use cache_runtime::cached;

struct Query {
    id: u64,
}

#[cached(strategy = "refresh_ahead", key = "q:<q.id>", ttl = 60)]
async fn run(q: &Query) -> u64 {
    q.id * 2
}

fn main() {}
