// One error, on the expression, with our message: a `String` orders as
// text, which is no version.
use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: u64,
    etag: String,
}

#[cached(strategy = "write_through", key = "row:<row.id>", version = row.etag)]
async fn save(row: Row) -> Result<Row, String> {
    Ok(row)
}

fn main() {}
