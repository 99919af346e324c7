//! Assets kept gzipped in the binary (Swagger UI, the invoice font): smaller binary, unpacked
//! once when first needed.

use std::io::Read;

/// Unpacks a gzip stream.
pub fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut plain)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn round_trip_and_garbage() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"hello, hello, hello").expect("in memory");
        let gz = gz.finish().expect("in memory");
        assert_eq!(super::gunzip(&gz).expect("unpacks"), b"hello, hello, hello");
        assert!(super::gunzip(b"not gzip").is_err());
    }
}
