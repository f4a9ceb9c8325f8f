//! Every return shape: `T`, `Option<T>`, `Result<T, E>`,
//! `Result<Option<T>, E>` and the `io::Result<T>` alias. Values are cached,
//! `None` is cached as a null, `Err` never is.

use cache_runtime::{cached, Cache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user {id}"),
    }
}

#[derive(Debug, PartialEq)]
struct NotFound;

#[cached(key = "plain:<id>", cache = c)]
async fn plain(c: &Cache, id: u64) -> User {
    user(id)
}

#[cached(key = "opt:<id>", cache = c)]
async fn opt(c: &Cache, id: u64) -> Option<User> {
    (id != 0).then(|| user(id))
}

#[cached(key = "res:<id>", cache = c)]
async fn res(c: &Cache, id: u64) -> Result<User, NotFound> {
    if id == 0 {
        Err(NotFound)
    } else {
        Ok(user(id))
    }
}

#[cached(key = "res_opt:<id>", cache = c)]
async fn res_opt(c: &Cache, id: u64) -> Result<Option<User>, NotFound> {
    match id {
        0 => Err(NotFound),
        1 => Ok(None),
        _ => Ok(Some(user(id))),
    }
}

#[cached(key = "io:<name>", cache = c)]
async fn io_read(c: &Cache, name: &str) -> std::io::Result<Vec<u8>> {
    if name.is_empty() {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no name"))
    } else {
        Ok(name.as_bytes().to_vec())
    }
}

/// (hits, null hits, loads, load failures) of a cache.
fn counts(c: &Cache) -> (u64, u64, u64, u64) {
    let s = c.stats();
    (s.hits, s.null_hits, s.loads, s.load_failures)
}

async fn run() {
    let c = &Cache::memory();
    assert_eq!(plain(c, 7).await, user(7));
    assert_eq!(plain(c, 7).await, user(7));
    assert_eq!(counts(c), (1, 0, 1, 0), "T: the second call is a hit");

    let c = &Cache::memory();
    assert_eq!(opt(c, 7).await, Some(user(7)));
    assert_eq!(opt(c, 7).await, Some(user(7)));
    assert_eq!(opt(c, 0).await, None);
    assert_eq!(opt(c, 0).await, None);
    assert_eq!(
        counts(c),
        (1, 1, 2, 0),
        "Option: Some is a hit, None a null hit"
    );

    let c = &Cache::memory();
    assert_eq!(res(c, 7).await, Ok(user(7)));
    assert_eq!(res(c, 7).await, Ok(user(7)));
    assert_eq!(res(c, 0).await, Err(NotFound));
    assert_eq!(res(c, 0).await, Err(NotFound));
    assert_eq!(counts(c), (1, 0, 3, 2), "Result: Ok is cached, Err is not");

    let c = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(res_opt(c, 7).await, Ok(Some(user(7))));
        assert_eq!(res_opt(c, 1).await, Ok(None));
        assert_eq!(res_opt(c, 0).await, Err(NotFound));
    }
    assert_eq!(
        counts(c),
        (1, 1, 4, 2),
        "Result<Option>: Ok(Some) and Ok(None) cached, Err not"
    );

    let c = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(io_read(c, "ab").await.expect("ok"), b"ab");
        assert_eq!(
            io_read(c, "").await.expect_err("err").kind(),
            std::io::ErrorKind::NotFound
        );
    }
    assert_eq!(
        counts(c),
        (1, 0, 3, 2),
        "io::Result: Ok is cached, Err is not"
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
