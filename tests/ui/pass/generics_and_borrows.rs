//! Generic parameters, lifetimes, borrowed arguments, `impl Trait`
//! arguments and `where` clauses are kept as written.

use cache_runtime::{cached, Cache, KeyPart};
use std::fmt::Display;

#[cached(key = "show:<x>", cache = c)]
async fn show<T: KeyPart + Display>(c: &Cache, x: T) -> String {
    format!("<{x}>")
}

#[cached(key = "greet:<name>", cache = c)]
async fn greet<'a>(c: &'a Cache, name: &'a str) -> String {
    format!("hello, {name}")
}

#[cached(key = "len:<s>", cache = c)]
async fn len_of(c: &Cache, s: &str) -> usize {
    s.len()
}

#[cached(key = "debug:<x>", cache = c)]
async fn debug(c: &Cache, x: impl cache_runtime::KeyPart + std::fmt::Debug) -> String {
    format!("{x:?}")
}

#[cached(key = "double:<n>", cache = c)]
async fn double<N>(c: &Cache, n: N) -> u64
where
    N: KeyPart + Into<u64> + Copy,
{
    n.into() * 2
}

struct Named<'a> {
    name: &'a str,
}

#[cached(key = "named:<n.name>", cache = c)]
async fn named<'a, 'b: 'a>(c: &'b Cache, n: &'a Named<'b>) -> String {
    n.name.to_uppercase()
}

async fn run() {
    let c = &Cache::memory();
    assert_eq!(show(c, 5u8).await, "<5>");
    assert_eq!(show(c, String::from("x")).await, "<x>");
    assert_eq!(
        show(c, "x").await,
        "<x>",
        "same key text as the String: a hit"
    );

    let owned = String::from("ada");
    assert_eq!(greet(c, &owned).await, "hello, ada");
    assert_eq!(greet(c, "ada").await, "hello, ada");
    assert_eq!(len_of(c, "four").await, 4);
    assert_eq!(len_of(c, "four").await, 4);
    assert_eq!(debug(c, 'q').await, "'q'");
    assert_eq!(debug(c, 'q').await, "'q'");
    assert_eq!(double(c, 21u32).await, 42);
    assert_eq!(double(c, 21u8).await, 42);
    let n = Named { name: "bo" };
    assert_eq!(named(c, &n).await, "BO");
    assert_eq!(named(c, &Named { name: "bo" }).await, "BO");

    let stats = c.stats();
    assert_eq!((stats.loads, stats.hits), (7, 6));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
