use cache_runtime::cached;

#[cached(strategy = "refresh_ahead", key = "greet:<name>", ttl = 60)]
async fn greet(name: Option<&str>) -> String {
    format!("hello {}", name.unwrap_or("you"))
}

fn main() {}
