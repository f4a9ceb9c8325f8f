//! The default key (no `key =`): the function's path with its generic
//! arguments, then its arguments but `self`. Two functions with the same
//! arguments never share an entry, nor do two instantiations of a generic
//! function (type parameters, `impl Trait` arguments, a generic impl).

use cache_runtime::{cached, Cache, KeyPart};
use std::sync::LazyLock;

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);

#[cached(cache = &CACHE)]
async fn square(n: u64) -> u64 {
    n * n
}

#[cached(cache = &CACHE)]
async fn cube(n: u64) -> u64 {
    n * n * n
}

#[cached(cache = &CACHE)]
async fn size_of<T: KeyPart>(_value: T) -> usize {
    std::mem::size_of::<T>()
}

#[cached(cache = &CACHE)]
async fn parse<T>(text: &str, fallback: Option<u8>) -> Option<T>
where
    T: std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned,
{
    text.parse()
        .ok()
        .or_else(|| fallback?.to_string().parse().ok())
}

#[cached(cache = &CACHE)]
async fn type_of(value: impl KeyPart) -> String {
    std::any::type_name_of_val(&value).to_owned()
}

#[cached(cache = &CACHE)]
async fn described(id: u64, label: &str) -> String {
    format!("{id} {label}")
}

struct Width<T>(std::marker::PhantomData<T>);

impl<T> Width<T> {
    #[cached(cache = &CACHE)]
    async fn size(&self, id: u64) -> usize {
        std::mem::size_of::<T>() + id as usize
    }
}

struct Svc {
    cache: Cache,
}

impl Svc {
    #[cached(cache = self.cache)]
    async fn name(&self, id: u64, lang: &str) -> String {
        format!("name {id} {lang}")
    }

    #[cached(cache = self.cache)]
    async fn title(&self, id: u64, lang: &str) -> String {
        format!("title {id} {lang}")
    }
}

async fn run() {
    for _ in 0..2 {
        assert_eq!(square(3).await, 9);
        assert_eq!(cube(3).await, 27);
    }
    assert_eq!(
        (CACHE.stats().loads, CACHE.stats().hits),
        (2, 2),
        "square and cube: one load each"
    );

    for _ in 0..2 {
        assert_eq!(size_of(1u8).await, 1);
        assert_eq!(size_of(1u64).await, 8);
    }
    assert_eq!(
        (CACHE.stats().loads, CACHE.stats().hits),
        (4, 4),
        "u8 and u64: one load each"
    );

    for _ in 0..2 {
        assert_eq!(parse::<u8>("300", None).await, None);
        assert_eq!(parse::<u16>("300", None).await, Some(300));
        assert_eq!(parse::<u16>("x", Some(7)).await, Some(7));
        assert_eq!(parse::<u16>("x", None).await, None);
    }
    let stats = CACHE.stats();
    assert_eq!((stats.loads, stats.hits, stats.null_hits), (8, 6, 2));

    let loads = CACHE.stats().loads;
    for _ in 0..2 {
        assert_eq!(type_of(1u8).await, "u8");
        assert_eq!(type_of(1u64).await, "u64");
        assert_eq!(Width::<u8>(Default::default()).size(0).await, 1);
        assert_eq!(Width::<u64>(Default::default()).size(0).await, 8);
    }
    assert_eq!(
        CACHE.stats().loads - loads,
        4,
        "impl Trait and impl generics are part of the key"
    );

    // The key as stored: readable, escaped, and without a closure's braces.
    assert_eq!(described(4, "a:b").await, "4 a:b");
    let key = format!("{}::described:4:a\\:b", module_path!());
    assert!(CACHE.ttl(&key).await.is_some(), "{key} is not cached");

    let svc = Svc {
        cache: Cache::memory(),
    };
    for _ in 0..2 {
        assert_eq!(svc.name(1, "en").await, "name 1 en");
        assert_eq!(svc.title(1, "en").await, "title 1 en");
        assert_eq!(svc.name(1, "fr").await, "name 1 fr");
    }
    assert_eq!((svc.cache.stats().loads, svc.cache.stats().hits), (3, 3));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
