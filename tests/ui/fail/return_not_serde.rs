// One error, on `User` in the return type, with our message: the blanket
// `impl Cacheable` is `#[diagnostic::do_not_recommend]`, so rustc does not
// report serde's two traits separately, nor anything in generated code.
use cache_runtime::cached;

struct User {
    id: u64,
}

#[cached(key = "user:<id>")]
async fn user(id: u64) -> User {
    User { id }
}

fn main() {}
