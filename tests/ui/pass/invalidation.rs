//! `#[invalidates("a:<id>", "b:<id>", cache = ...)]` on methods and free
//! functions deletes every listed key, and only when the body succeeds:
//! `Err` and `None` leave the entries in place.

use cache_runtime::{cached, invalidates, Cache};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

struct Users {
    cache: Cache,
    version: AtomicU64,
}

impl Users {
    #[cached(key = "name:<id>", cache = self.cache)]
    async fn name(&self, id: u64) -> String {
        format!("name {id} v{}", self.version.load(SeqCst))
    }

    #[cached(key = "card:<id>", cache = self.cache)]
    async fn card(&self, id: u64) -> String {
        format!("card {id} v{}", self.version.load(SeqCst))
    }

    #[invalidates("name:<id>", "card:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, ok: bool) -> Result<(), String> {
        if !ok {
            return Err(format!("cannot rename {id}"));
        }
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }

    #[invalidates("name:<id>", "card:<id>", cache = self.cache)]
    async fn set_version(&mut self, id: u64, version: u64) -> Result<u64, String> {
        *self.version.get_mut() = version;
        Ok(id)
    }

    #[invalidates("name:<id>", cache = self.cache)]
    async fn touch(&self, id: u64, found: bool) -> Option<u64> {
        self.version.fetch_add(1, SeqCst);
        found.then_some(id)
    }
}

#[invalidates("name:<id>", "card:<id>", cache = users.cache)]
async fn reset(users: &Users, id: u64) {
    let _ = id;
    users.version.store(100, SeqCst);
}

async fn run() {
    let mut users = Users {
        cache: Cache::memory(),
        version: AtomicU64::new(0),
    };
    let loads = || users.cache.stats().loads;
    assert_eq!(users.name(1).await, "name 1 v0");
    assert_eq!(users.card(1).await, "card 1 v0");
    assert_eq!(users.name(2).await, "name 2 v0");
    assert_eq!(loads(), 3);

    assert_eq!(users.rename(1, false).await, Err("cannot rename 1".into()));
    assert_eq!(users.name(1).await, "name 1 v0", "Err: the entry stays");
    assert_eq!(users.card(1).await, "card 1 v0");
    assert_eq!((loads(), users.cache.stats().invalidations), (3, 0));

    assert_eq!(users.rename(1, true).await, Ok(()));
    assert_eq!(users.name(1).await, "name 1 v1", "Ok: both keys deleted");
    assert_eq!(users.card(1).await, "card 1 v1");
    assert_eq!(users.name(2).await, "name 2 v0", "other ids untouched");
    assert_eq!((loads(), users.cache.stats().invalidations), (5, 2));

    assert_eq!(users.touch(1, false).await, None);
    assert_eq!(users.name(1).await, "name 1 v1", "None: the entry stays");
    assert_eq!(users.touch(1, true).await, Some(1));
    assert_eq!(users.name(1).await, "name 1 v3", "Some: deleted");
    assert_eq!((loads(), users.cache.stats().invalidations), (6, 3));

    reset(&users, 2).await;
    assert_eq!(
        users.name(2).await,
        "name 2 v100",
        "an infallible body always invalidates"
    );
    assert_eq!(users.card(2).await, "card 2 v100");
    assert_eq!((loads(), users.cache.stats().invalidations), (8, 5));

    assert_eq!(users.set_version(2, 7).await, Ok(2));
    assert_eq!(
        users.name(2).await,
        "name 2 v7",
        "&mut self: invalidated too"
    );
    assert_eq!(users.card(2).await, "card 2 v7");
    assert_eq!(users.cache.stats().invalidations, 7);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
