use cache_runtime::cached;

#[cached(strategy = "read_through", key = "user:<name>", ttl = 60, handle = USERS)]
async fn user(name: &str) -> String {
    name.to_uppercase()
}

fn main() {}
