//! Methods: `cache = self.cache`, `<self.tenant>` and field paths into a
//! borrowed argument (`<q.id>` with `q: &Query`), on `&self` and on
//! `&mut self`.

use cache_runtime::{cached, Cache};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

struct Query {
    id: u64,
    lang: String,
}

struct Repo {
    cache: Cache,
    tenant: String,
    loads: AtomicUsize,
}

impl Repo {
    fn new(cache: &Cache, tenant: &str) -> Repo {
        Repo {
            cache: cache.clone(),
            tenant: tenant.into(),
            loads: AtomicUsize::new(0),
        }
    }

    #[cached(key = "<self.tenant>:query:<q.id>:<q.lang>", ttl = 60, cache = self.cache)]
    async fn find(&self, q: &Query) -> String {
        self.loads.fetch_add(1, SeqCst);
        format!("{}/{}/{}", self.tenant, q.id, q.lang)
    }

    #[cached(key = "<self.tenant>:visit:<page>", cache = self.cache)]
    async fn visit(&mut self, page: &str) -> String {
        self.tenant.push('!');
        format!("{page} by {}", self.tenant)
    }
}

async fn run() {
    let cache = Cache::memory();
    let acme = Repo::new(&cache, "acme");
    let initech = Repo::new(&cache, "initech");
    let en = Query {
        id: 1,
        lang: "en".into(),
    };
    let fr = Query {
        id: 1,
        lang: "fr".into(),
    };

    for _ in 0..3 {
        assert_eq!(acme.find(&en).await, "acme/1/en");
        assert_eq!(acme.find(&fr).await, "acme/1/fr");
        assert_eq!(initech.find(&en).await, "initech/1/en");
    }
    assert_eq!(acme.loads.load(SeqCst), 2, "one load per distinct query");
    assert_eq!(
        initech.loads.load(SeqCst),
        1,
        "tenants do not share entries"
    );
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.hits), (3, 6));

    let mut visitor = Repo::new(&cache, "v");
    assert_eq!(visitor.visit("home").await, "home by v!");
    assert_eq!(
        visitor.visit("home").await,
        "home by v!!",
        "the key reads the new tenant: a miss"
    );
    assert_eq!(visitor.visit("home").await, "home by v!!!");
    visitor.tenant = "v".into();
    assert_eq!(
        visitor.visit("home").await,
        "home by v!",
        "a hit on the first entry"
    );
    assert_eq!(visitor.tenant, "v", "a hit does not run the body");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
