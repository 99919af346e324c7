use std::io::Write;
use std::path::Path;

/// Swagger UI's files, gzipped into the binary: 1.9 MB of JavaScript and CSS become ~0.5 MB, in
/// the binary and on the wire (`docs.rs` serves them as they are to clients that accept gzip).
const VENDORED: &[&str] = &["swagger-ui-bundle.js", "swagger-ui.css"];

fn main() {
    // `sqlx::migrate!` embeds the migration files at compile time: rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/vendor/swagger-ui");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    for name in VENDORED {
        let source = vendor.join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        // A dependency-only build (cargo-chef's cook step in the Dockerfile) has no web/ directory:
        // an empty file then, replaced when the real build sees the file appear (a unit test
        // checks that what is embedded is the repository's file).
        let bytes = std::fs::read(&source).unwrap_or_else(|e| {
            println!("cargo:warning=Swagger UI's {name} not embedded ({e}); /docs will be blank");
            Vec::new()
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes).expect("gzip in memory");
        let gz = gz.finish().expect("gzip in memory");
        let target = Path::new(&out).join(format!("{name}.gz"));
        std::fs::write(&target, gz).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
    }
}
