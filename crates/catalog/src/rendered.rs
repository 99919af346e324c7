//! Cached reads kept as they are sent: the JSON body with its digest and what the answer's headers
//! need (the product's version, whether it is public). A cache hit is then a lookup and a
//! reference-counted copy of bytes; it neither decodes, encodes nor hashes the body, which cost a
//! cached list page two to three times a cached product (docs/benchmarks.md).

use bytes::{BufMut, Bytes, BytesMut};
use platform::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// First byte of a cached entry in this form. JSON never starts with it, so an entry written by an
/// older build (plain JSON, or 0xE1: no freshness) reads as a miss and is replaced, never misread.
const MAGIC: u8 = 0xE2;
/// MAGIC, digest, version, public, fresh until.
const HEAD: usize = 1 + 8 + 8 + 1 + 8;

/// One read's answer, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The JSON body.
    pub body: Bytes,
    /// FNV-1a of the body: what the ETag is made of.
    pub digest: u64,
    /// A product's editorial version (what `If-Match` compares); 0 for pages.
    pub version: i64,
    /// Shown to anyone (an active product, or a page filtered for its viewer): publicly
    /// cacheable, and visible without a staff role.
    pub public: bool,
}

impl Rendered {
    /// `value` as its JSON body.
    pub fn of<T: Serialize>(value: &T, version: i64, public: bool) -> Result<Self, Problem> {
        let body = Bytes::from(serde_json::to_vec(value).map_err(Problem::internal)?);
        Ok(Self {
            digest: digest(&body),
            body,
            version,
            public,
        })
    }

    /// The typed value again, for callers inside the process.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_json::from_slice(&self.body).map_err(Problem::internal)
    }

    /// The cache entry: a small fixed head, then the body. `fresh_until_ms` (Unix time) is when
    /// the entry expires; it is kept a while longer, to be served while one reader reloads it.
    pub fn to_entry(&self, fresh_until_ms: i64) -> Bytes {
        let mut entry = BytesMut::with_capacity(HEAD + self.body.len());
        entry.put_u8(MAGIC);
        entry.put_u64_le(self.digest);
        entry.put_i64_le(self.version);
        entry.put_u8(u8::from(self.public));
        entry.put_i64_le(fresh_until_ms);
        entry.put_slice(&self.body);
        entry.freeze()
    }

    /// A cache entry read back, with when it stops being fresh; `None` when it is not one (then
    /// it is a miss).
    pub fn from_entry(entry: Bytes) -> Option<(Self, i64)> {
        if entry.len() < HEAD || entry[0] != MAGIC {
            return None;
        }
        let word = |at: usize| -> [u8; 8] { entry[at..at + 8].try_into().unwrap_or_default() };
        let digest = u64::from_le_bytes(word(1));
        let version = i64::from_le_bytes(word(9));
        let public = entry[17] == 1;
        let fresh_until_ms = i64::from_le_bytes(word(18));
        let rendered = Self {
            body: entry.slice(HEAD..),
            digest,
            version,
            public,
        };
        Some((rendered, fresh_until_ms))
    }
}

/// FNV-1a of a response body.
pub fn digest(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_it_was_rendered() {
        let rendered = Rendered::of(&serde_json::json!({"name": "Mug", "price": 1200}), 7, true).expect("json");
        assert_eq!(rendered.digest, digest(&rendered.body));
        let (back, fresh_until) = Rendered::from_entry(rendered.to_entry(1_767_225_600_000)).expect("an entry");
        assert_eq!(back, rendered);
        assert_eq!(fresh_until, 1_767_225_600_000);
        let value: serde_json::Value = back.decode().expect("decodes");
        assert_eq!(value["price"], 1200);
        let private = Rendered::of(&"draft", -3, false).expect("json");
        assert_eq!(Rendered::from_entry(private.to_entry(-1)), Some((private, -1)));
    }

    #[test]
    fn plain_json_and_short_entries_are_misses() {
        assert_eq!(Rendered::from_entry(Bytes::from_static(br#"{"items":[]}"#)), None);
        assert_eq!(Rendered::from_entry(Bytes::from_static(&[MAGIC, 1, 2])), None);
        assert_eq!(Rendered::from_entry(Bytes::new()), None);
    }

    #[test]
    fn the_digest_is_fnv_1a() {
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
