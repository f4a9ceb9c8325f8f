use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
    rows: Vec<u64>,
}

impl Repo {
    #[cached(strategy = "refresh_ahead", key = "row:<i>", ttl = 60, cache = self.cache)]
    async fn row(&self, i: usize) -> u64 {
        self.rows[i]
    }
}

fn main() {}
