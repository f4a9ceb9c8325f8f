use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
    reads: u64,
}

impl Repo {
    #[cached(key = "reads", ttl = 60, stale = "1m", cache = self.cache)]
    async fn reads(&mut self) -> u64 {
        self.reads += 1;
        self.reads
    }
}

fn main() {}
