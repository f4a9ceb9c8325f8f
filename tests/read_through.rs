//! Read-through: the function is the loader of its key space, and other
//! code reads that key space through the handle the attribute defines,
//! never naming the function, and invalidates it by key arguments.

mod support;

use cache_runtime::{cached, invalidates, Cache};
use futures::future::join_all;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use support::{Db, DbError, Shared, User};

static CACHE: LazyLock<Cache> = LazyLock::new(support::memory);
static DB: LazyLock<Db> = LazyLock::new(|| Db::with_rows(&[(7, "Grace"), (8, "Alan")]));

/// The loader. Nothing below names it: they read through `USERS`.
#[cached(strategy = "read_through", key = "user:<id>", ttl = 60, cache = &CACHE, handle = USERS)]
async fn load_user(id: u64) -> Result<Option<User>, DbError> {
    DB.read(id).await
}

/// A call site in one part of the application...
mod profile_page {
    pub async fn title(id: u64) -> String {
        match super::USERS.get(id).await {
            Ok(Some(user)) => format!("Profile of {}", user.name),
            _ => "Unknown user".into(),
        }
    }
}

/// ... and one in another.
mod audit_log {
    pub async fn line(id: u64) -> String {
        let name = super::USERS.get(id).await.ok().flatten().map(|u| u.name);
        format!("user {id}: {}", name.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_call_sites_that_never_name_the_loader_share_one_load() {
    let titles = join_all((0..50).map(|_| profile_page::title(7)));
    let lines = join_all((0..50).map(|_| audit_log::line(7)));
    let (titles, lines) = tokio::join!(titles, lines);
    assert!(titles.iter().all(|t| t == "Profile of Grace"), "{titles:?}");
    assert!(lines.iter().all(|l| l == "user 7: Grace"), "{lines:?}");
    assert_eq!(DB.loads(), 1, "one load between the two call sites");

    // Invalidate by key arguments: the handle builds `user:7` itself.
    DB.put(7, "Grace Hopper");
    USERS.invalidate(7).await.unwrap();
    assert_eq!(profile_page::title(7).await, "Profile of Grace Hopper");
    assert_eq!(DB.loads(), 2);
    assert_eq!(
        CACHE.get::<User>("user:7").await.unwrap().name,
        "Grace Hopper"
    );
}

/// Several key arguments: the handle takes them as a tuple.
#[cached(strategy = "read_through", key = "member:<team>:<id>", ttl = 60, cache = &CACHE, handle = MEMBERS)]
async fn load_member(team: String, id: u64) -> String {
    format!("{team}/{id}")
}

#[tokio::test]
async fn a_handle_of_several_arguments_takes_a_tuple() {
    assert_eq!(MEMBERS.get(("core".to_string(), 3)).await, "core/3");
    assert_eq!(
        CACHE.get::<String>("member:core:3").await.as_deref(),
        Some("core/3")
    );
    MEMBERS.invalidate(("core".to_string(), 3)).await.unwrap();
    assert_eq!(CACHE.get::<String>("member:core:3").await, None);
}

/// A repository whose loader is a method: the handle is a method too,
/// bound to the instance (its database and cache).
struct Accounts {
    cache: Cache,
    db: Db,
    reads: AtomicU64,
}

impl Accounts {
    #[cached(strategy = "read_through", key = "account:<id>", ttl = 60, cache = self.cache, handle = by_id)]
    async fn load(&self, id: u64) -> Result<Option<User>, DbError> {
        self.reads.fetch_add(1, SeqCst);
        self.db.read(id).await
    }

    /// A write elsewhere, invalidating the same key space by template.
    #[invalidates("account:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.db.write(id, name)
    }
}

async fn a_method_handle_reads_through_the_instance(backend: &Shared) {
    let accounts = Arc::new(Accounts {
        cache: backend.cache().await,
        db: Db::with_rows(&[(1, "Ada")]),
        reads: AtomicU64::new(0),
    });
    let answers =
        support::concurrently(40, &accounts, |a| async move { a.by_id().get(1).await }).await;
    let ada = Ok(Some(User {
        id: 1,
        name: "Ada".into(),
    }));
    assert!(answers.iter().all(|a| *a == ada), "{answers:?}");
    assert_eq!(accounts.reads.load(SeqCst), 1, "40 readers, one load");

    accounts.rename(1, "Ada Lovelace").await.unwrap();
    let renamed = accounts.by_id().get(1).await.unwrap().unwrap();
    assert_eq!(
        renamed.name, "Ada Lovelace",
        "#[invalidates] reaches the handle's entries"
    );
    accounts.by_id().invalidate(1).await.unwrap();
    accounts.by_id().get(1).await.unwrap();
    assert_eq!(accounts.reads.load(SeqCst), 3);
}

on_shared_backends!(a_method_handle_reads_through_the_instance);
