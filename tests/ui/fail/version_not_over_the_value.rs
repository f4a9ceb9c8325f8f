use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: u64,
    rev: u64,
}

#[cached(strategy = "write_through", key = "row:<row.id>", version = 5)]
async fn save(row: Row) -> Result<Row, String> {
    Ok(row)
}

fn main() {}
