//! Tuple fields in placeholders: `<pair.0>`, `<pair.1>`.

use cache_runtime::{cached, Cache};

#[cached(key = "pair:<pair.0>:<pair.1>", cache = c)]
async fn join(c: &Cache, pair: (u64, String)) -> String {
    format!("{}-{}", pair.0, pair.1)
}

struct Wrapper(u32, (bool, char));

#[cached(key = "nested:<w.1.0>:<w.1.1>:<w.0>", cache = c)]
async fn nested(c: &Cache, w: &Wrapper) -> String {
    format!("{}{}{}", w.0, w.1 .0, w.1 .1)
}

async fn run() {
    let c = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(join(c, (1, "a".into())).await, "1-a");
        assert_eq!(join(c, (1, "b".into())).await, "1-b");
        assert_eq!(join(c, (2, "a".into())).await, "2-a");
        assert_eq!(nested(c, &Wrapper(4, (true, 'z'))).await, "4truez");
    }
    let stats = c.stats();
    assert_eq!((stats.loads, stats.hits), (4, 4));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
