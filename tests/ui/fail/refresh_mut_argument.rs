use cache_runtime::cached;

#[cached(strategy = "refresh_ahead", key = "len:<id>", ttl = 60)]
async fn len(id: u64, buf: &mut Vec<u8>) -> usize {
    buf.push(id as u8);
    buf.len()
}

fn main() {}
