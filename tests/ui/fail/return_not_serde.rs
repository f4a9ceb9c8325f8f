// Both errors are on `User` in the return type, none in generated code. It
// should be ONE error: rustc reports the missing `Serialize` and
// `Deserialize` separately until the blanket `impl Cacheable` in
// cache-runtime is marked `#[diagnostic::do_not_recommend]` (Rust 1.85).
use cache_runtime::cached;

struct User {
    id: u64,
}

#[cached(key = "user:<id>")]
async fn user(id: u64) -> User {
    User { id }
}

fn main() {}
