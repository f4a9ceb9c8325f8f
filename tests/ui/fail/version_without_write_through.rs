use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: u64,
    rev: u64,
}

#[cached(key = "row:<id>", ttl = 60, version = row.rev)]
async fn row(id: u64) -> Row {
    Row { id, rev: 1 }
}

fn main() {}
