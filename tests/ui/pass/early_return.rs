//! `?` and early `return` in the body return from the function, as written;
//! the cache sees the value they return.

use cache_runtime::{cached, invalidates, Cache};

#[derive(Debug, PartialEq)]
enum Error {
    Parse,
    Negative,
}

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error::Parse
    }
}

#[cached(key = "parse:<text>", cache = c)]
async fn parse(c: &Cache, text: &str) -> Result<u64, Error> {
    if text.is_empty() {
        return Ok(0);
    }
    let n: i64 = text.parse()?;
    if n < 0 {
        return Err(Error::Negative);
    }
    Ok(n as u64)
}

#[cached(key = "first:<text>", cache = c)]
async fn first_word(c: &Cache, text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    if word == "skip" {
        return None;
    }
    Some(word.to_owned())
}

#[invalidates("parse:<text>", cache = c)]
async fn reparse(c: &Cache, text: &str) -> Result<(), Error> {
    text.parse::<i64>()?;
    Ok(())
}

async fn run() {
    let c = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(parse(c, "").await, Ok(0));
        assert_eq!(parse(c, "42").await, Ok(42));
        assert_eq!(parse(c, "-1").await, Err(Error::Negative));
        assert_eq!(parse(c, "x").await, Err(Error::Parse));
    }
    let stats = c.stats();
    assert_eq!(
        (stats.loads, stats.hits, stats.load_failures),
        (6, 2, 4),
        "early Ok cached, Err not"
    );

    assert_eq!(reparse(c, "x").await, Err(Error::Parse));
    assert_eq!(
        c.stats().invalidations,
        0,
        "`?` returned Err: nothing invalidated"
    );
    assert_eq!(reparse(c, "42").await, Ok(()));
    assert_eq!(c.stats().invalidations, 1);

    let c = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(first_word(c, "hi there").await.as_deref(), Some("hi"));
        assert_eq!(first_word(c, "  ").await, None);
        assert_eq!(first_word(c, "skip it").await, None);
    }
    let stats = c.stats();
    assert_eq!((stats.loads, stats.hits, stats.null_hits), (3, 1, 2));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
