use std::io::Write;
use std::path::Path;
use std::process::Command;

/// glibc learnt packed relative relocations (DT_RELR) in 2.36.
const GLIBC_WITH_RELR: (u32, u32) = (2, 36);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    embed_openapi_document();
    if packs_relocations() {
        // A position-independent binary carries one 24-byte relocation for each pointer in its
        // read-only data (vtables, string tables): 0.9 MB of the stripped binary, against a few
        // KB packed (docs/benchmarks.md, "Binary under 26.1 MiB, lighter HTTP metrics, …").
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Only for x86_64 Linux with a glibc that can load it: the linker marks the binary as needing
/// `GLIBC_ABI_DT_RELR`, so a binary built with it against an older glibc would not start. The
/// build machine's glibc stands for the target's (native builds, and the image's cross builds,
/// whose target libc is the same Debian release's). Other targets link as before.
fn packs_relocations() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
    {
        return false;
    }
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().strip_prefix("glibc ").unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= GLIBC_WITH_RELR,
        _ => false,
    }
}

/// `openapi.json` gzipped into OUT_DIR for `api_doc`: 0.5 MB of JSON in 38 KB.
fn embed_openapi_document() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    println!("cargo:rerun-if-changed={}", source.display());
    // cargo-chef's dependency-only build (the Dockerfile) has no such file: an empty document
    // then, replaced when the real build sees the file.
    let bytes = std::fs::read(&source).unwrap_or_else(|e| {
        println!("cargo:warning=the OpenAPI document is not embedded ({e}); /openapi.json will be empty");
        Vec::new()
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).expect("gzip in memory");
    let gz = gz.finish().expect("gzip in memory");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let target = Path::new(&out).join("openapi.json.gz");
    std::fs::write(&target, gz).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}
