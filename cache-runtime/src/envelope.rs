//! The bytes stored per entry: a small versioned header, then the payload
//! encoded with bincode 2 (serde). Public so that other code (a migration
//! script, a test, a tool reading Redis) can read and write entries exactly
//! as the cache does:
//!
//! ```
//! use cache_runtime::envelope::{self, Decoded, Header};
//!
//! let header = Header { written_at_ms: 1_790_000_000_000, fresh_ms: 60_000, load_ms: 3 };
//! let bytes = envelope::encode_value(&vec![1u32, 2, 3], &header).unwrap();
//! assert_eq!(bytes.len(), envelope::HEADER_LEN + 4);
//! assert_eq!(envelope::decode::<Vec<u32>>(&bytes).unwrap(), Decoded::Value(vec![1, 2, 3]));
//! assert_eq!(envelope::header(&bytes).unwrap(), header);
//! ```
//!
//! ```text
//! byte 0       format (2)
//! byte 1       kind: 0 = value, 1 = null marker (a cached `None`)
//! bytes 2..8   written at, Unix milliseconds (48 bits, little endian)
//! bytes 8..13  fresh for, milliseconds: the TTL it was written with (40 bits)
//! bytes 13..15 how long its load took, milliseconds (16 bits, saturating)
//! bytes 15..   payload (value only): bincode 2, standard config
//! ```
//!
//! Fifteen bytes of overhead per entry. The times let a reader tell a fresh
//! entry from a stale one kept for its grace period (`stale`), and decide
//! when to refresh it early (`refresh`, XFetch, which weighs how long the
//! load took). An entry whose format byte is not ours (format 1 included:
//! it had no times), whose kind is unknown or whose payload does not
//! decode into the expected type is reported as [`DecodeError`]; the caller
//! treats it as a miss and deletes it. Decoding is bounded by [`DECODE_LIMIT`], so a hostile length
//! prefix cannot make it allocate without bound, and by
//! [`MAX_DEPTH`](crate::depth::MAX_DEPTH) levels of nesting, so hostile
//! bytes cannot make it recurse until the stack overflows.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The envelope format this build writes and reads.
pub const FORMAT: u8 = 2;
const KIND_VALUE: u8 = 0;
const KIND_NULL: u8 = 1;
/// Bytes of header before the payload: the envelope's whole overhead.
pub const HEADER_LEN: usize = 15;
const HEADER: usize = HEADER_LEN;

/// What an entry's header says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// When it was written: Unix milliseconds, as the writing cache's clock
    /// read them.
    pub written_at_ms: u64,
    /// How long it is fresh after it was written (its TTL, without any
    /// stale grace), in milliseconds.
    pub fresh_ms: u64,
    /// How long the load that produced it took, in milliseconds (at most
    /// 65 535).
    pub load_ms: u64,
}

impl Header {
    /// The Unix millisecond at which the entry turns stale.
    pub fn fresh_until_ms(&self) -> u64 {
        self.written_at_ms.saturating_add(self.fresh_ms)
    }

    fn bytes(&self, kind: u8) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = FORMAT;
        h[1] = kind;
        h[2..8].copy_from_slice(&self.written_at_ms.min(MAX_48).to_le_bytes()[..6]);
        h[8..13].copy_from_slice(&self.fresh_ms.min(MAX_40).to_le_bytes()[..5]);
        h[13..15].copy_from_slice(&(self.load_ms.min(u64::from(u16::MAX)) as u16).to_le_bytes());
        h
    }
}

const MAX_48: u64 = (1 << 48) - 1;
const MAX_40: u64 = (1 << 40) - 1;

/// Reads a little-endian integer of `bytes.len()` (at most 8) bytes.
fn le(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

/// The most bytes a payload may claim while decoding (64 MiB).
pub const DECODE_LIMIT: usize = 64 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// What an entry holds once decoded.
#[derive(Debug, PartialEq)]
pub enum Decoded<T> {
    /// A cached value.
    Value(T),
    /// A cached `None`.
    Null,
}

/// Why stored bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header.
    #[error("entry is {0} bytes, shorter than the {HEADER}-byte header")]
    Truncated(usize),
    /// Written by another format version.
    #[error("entry has format {0}, this build reads format {FORMAT}")]
    Format(u8),
    /// Neither a value nor a null marker.
    #[error("entry has unknown kind {0}")]
    Kind(u8),
    /// The payload does not decode into the requested type.
    #[error("payload does not decode: {0}")]
    Payload(#[from] bincode::error::DecodeError),
    /// The payload decoded but left bytes unread: another type wrote it.
    #[error("payload has {0} trailing bytes")]
    Trailing(usize),
}

/// Why a value could not be written.
#[derive(Debug, thiserror::Error)]
#[error("value does not encode: {0}")]
pub struct EncodeError(#[from] bincode::error::EncodeError);

/// Encodes a value into a new envelope.
pub fn encode_value<T: Serialize + ?Sized>(
    value: &T,
    header: &Header,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(&header.bytes(KIND_VALUE));
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Encodes the null marker (a cached `None`).
pub fn encode_null(header: &Header) -> Vec<u8> {
    header.bytes(KIND_NULL).to_vec()
}

/// Checks the length and format of an envelope.
fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < HEADER {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    if bytes[0] != FORMAT {
        return Err(DecodeError::Format(bytes[0]));
    }
    Ok(())
}

/// Reads an envelope's header.
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    check(bytes)?;
    Ok(Header {
        written_at_ms: le(&bytes[2..8]),
        fresh_ms: le(&bytes[8..13]),
        load_ms: le(&bytes[13..15]),
    })
}

/// Decodes an envelope.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Decoded<T>, DecodeError> {
    check(bytes)?;
    match bytes[1] {
        KIND_NULL => Ok(Decoded::Null),
        KIND_VALUE => Ok(Decoded::Value(decode_payload(&bytes[HEADER..])?)),
        other => Err(DecodeError::Kind(other)),
    }
}

/// Decodes a whole payload, within the size and depth limits.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let root = crate::depth::Root::<T>(std::marker::PhantomData);
    let (value, read) = bincode::serde::seed_decode_from_slice(root, payload, config())?;
    if read != payload.len() {
        return Err(DecodeError::Trailing(payload.len() - read));
    }
    Ok(value)
}

/// Appends one argument of a write-behind call: the payload codec, no
/// header. Arguments appended one after another decode as their tuple.
pub(crate) fn encode_args_into<A: Serialize + ?Sized>(
    arg: &A,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    bincode::serde::encode_into_std_write(arg, out, config())?;
    Ok(())
}

/// Decodes a write-behind call's arguments.
pub(crate) fn decode_args<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, DecodeError> {
    decode_payload(bytes)
}

/// A copy of an envelope with another header (same kind and payload);
/// `None` when it is not an envelope of this format.
pub(crate) fn restamp(bytes: &[u8], header: &Header) -> Option<Vec<u8>> {
    check(bytes).ok()?;
    let mut out = bytes.to_vec();
    out[..HEADER].copy_from_slice(&header.bytes(bytes[1]));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn h() -> Header {
        Header {
            written_at_ms: 1_790_000_000_123,
            fresh_ms: 300_000,
            load_ms: 42,
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn user() -> User {
        User {
            id: 42,
            name: "Ada".into(),
            tags: vec!["admin".into()],
        }
    }

    #[test]
    fn a_restamped_entry_keeps_its_kind_and_payload() {
        let later = Header {
            written_at_ms: h().written_at_ms + 5_000,
            fresh_ms: 60_000,
            load_ms: 0,
        };
        let value = restamp(&encode_value(&user(), &h()).unwrap(), &later).unwrap();
        assert_eq!(header(&value).unwrap(), later);
        assert_eq!(decode::<User>(&value).unwrap(), Decoded::Value(user()));
        let null = restamp(&encode_null(&h()), &later).unwrap();
        assert_eq!(decode::<User>(&null).unwrap(), Decoded::Null);
        assert_eq!(restamp(b"short", &later), None);
    }

    #[test]
    fn arguments_encoded_one_by_one_decode_as_their_owned_tuple() {
        let mut bytes = Vec::new();
        encode_args_into("sku-1", &mut bytes).unwrap();
        encode_args_into(&7u32, &mut bytes).unwrap();
        let args: (String, u32) = decode_args(&bytes).unwrap();
        assert_eq!(args, ("sku-1".to_string(), 7));
        assert!(
            decode_args::<(String, u32, u8)>(&bytes).is_err(),
            "another signature"
        );
    }

    #[test]
    fn value_round_trips() {
        let bytes = encode_value(&user(), &h()).unwrap();
        assert_eq!(decode::<User>(&bytes).unwrap(), Decoded::Value(user()));
        assert_eq!(header(&bytes).unwrap(), h(), "the header round-trips");
    }

    #[test]
    fn header_fields_saturate_and_older_formats_are_refused() {
        assert_eq!(h().fresh_until_ms(), 1_790_000_300_123);
        let huge = Header {
            written_at_ms: u64::MAX,
            fresh_ms: u64::MAX,
            load_ms: u64::MAX,
        };
        let read = header(&encode_null(&huge)).unwrap();
        let saturated = Header {
            written_at_ms: MAX_48,
            fresh_ms: MAX_40,
            load_ms: 65_535,
        };
        assert_eq!(read, saturated);
        assert!(MAX_40 > crate::MAX_TTL.as_millis() as u64, "any TTL fits");
        // Format 1 had no times: a miss, reloaded once.
        let mut format_1 = encode_null(&h());
        format_1[0] = 1;
        assert!(matches!(
            decode::<u8>(&format_1),
            Err(DecodeError::Format(1))
        ));
        assert!(matches!(header(&format_1), Err(DecodeError::Format(1))));
    }

    #[test]
    fn null_marker_round_trips_into_any_type() {
        let bytes = encode_null(&h());
        assert_eq!(bytes.len(), HEADER);
        assert_eq!(decode::<User>(&bytes).unwrap(), Decoded::Null);
    }

    #[test]
    fn overhead_is_the_header() {
        let raw = bincode::serde::encode_to_vec(user(), config()).unwrap();
        assert_eq!(
            encode_value(&user(), &h()).unwrap().len() - raw.len(),
            HEADER
        );
    }

    #[test]
    fn corrupt_entries_are_errors_not_panics() {
        let good = encode_value(&user(), &h()).unwrap();
        assert!(matches!(
            decode::<User>(&[]),
            Err(DecodeError::Truncated(0))
        ));
        let mut other_format = good.clone();
        other_format[0] = 9;
        assert!(matches!(
            decode::<User>(&other_format),
            Err(DecodeError::Format(9))
        ));
        let mut other_kind = good.clone();
        other_kind[1] = 7;
        assert!(matches!(
            decode::<User>(&other_kind),
            Err(DecodeError::Kind(7))
        ));
        assert!(matches!(
            decode::<User>(&good[..good.len() - 3]),
            Err(DecodeError::Payload(_))
        ));
        assert!(matches!(decode::<u8>(&good), Err(DecodeError::Trailing(_))));
        // Every truncation and every single-byte flip decodes or errs: never panics.
        for cut in 0..good.len() {
            let _ = decode::<User>(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xff;
            let _ = decode::<User>(&flipped);
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Tree {
        Leaf,
        Node(Box<Tree>),
    }

    fn tree(depth: usize) -> Tree {
        (0..depth).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
    }

    #[test]
    fn nesting_is_bounded() {
        let modest = encode_value(&tree(100), &h()).unwrap();
        assert_eq!(decode::<Tree>(&modest).unwrap(), Decoded::Value(tree(100)));
        // A million levels would overflow any thread's stack: Node is
        // variant 1, Leaf variant 0.
        let mut hostile = h().bytes(KIND_VALUE).to_vec();
        hostile.extend(std::iter::repeat_n(1u8, 1_000_000));
        hostile.push(0);
        let err = decode::<Tree>(&hostile).unwrap_err();
        assert!(err.to_string().contains("nest deeper"), "{err}");
        let nested = vec![vec![vec![Some((1u8, "x".to_string()))]]];
        let bytes = encode_value(&nested, &h()).unwrap();
        assert_eq!(
            decode::<Vec<Vec<Vec<Option<(u8, String)>>>>>(&bytes).unwrap(),
            Decoded::Value(nested)
        );
    }

    /// A byte buffer that asks for `deserialize_byte_buf`, as `bytes::Bytes`
    /// and `serde_bytes` do.
    #[derive(Debug, PartialEq)]
    struct Buf(Vec<u8>);

    impl Serialize for Buf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Buf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Buf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, b: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(b.to_vec()))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    /// Owned strings and byte buffers are decoded from the entry's borrowed
    /// bytes (one copy, no zeroed buffer): every shape still round-trips.
    #[test]
    fn strings_and_byte_buffers_round_trip() {
        let value = (
            String::new(),
            "Ada Lovelace, née Byron — 1815 ✓".to_string(),
            Buf(vec![0, 255, 7]),
            Buf(Vec::new()),
            vec!["a".to_string(); 3],
            Some('ü'),
        );
        let bytes = encode_value(&value, &h()).unwrap();
        assert_eq!(decode(&bytes).unwrap(), Decoded::Value(value));
        // Not UTF-8 where a string is expected: an error, never a panic.
        let mut bad = encode_value(&"ab".to_string(), &h()).unwrap();
        *bad.last_mut().unwrap() = 0xff;
        assert!(matches!(
            decode::<String>(&bad),
            Err(DecodeError::Payload(_))
        ));
    }

    #[test]
    fn hostile_length_prefix_is_refused_without_allocating_it() {
        // A Vec<u8> claiming u64::MAX elements.
        let mut bytes = h().bytes(KIND_VALUE).to_vec();
        bytes.push(253); // varint tag for a u64
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(DecodeError::Payload(_))
        ));
    }
}
