//! docs/configuration.md documents every setting the code reads.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Misspelt names the tests and the docs use to show that typos are refused.
const EXAMPLE_TYPOS: &[&str] = &[
    "EMPORIUM_LISTN",
    "EMPORIUM_RATE_LIMIT_PER_MINUT",
    "EMPORIUM_HTST",
    "EMPORIUM_HOST_NAME",
];

/// Every `"EMPORIUM_..."` string literal in the crates' sources (but the list of known names,
/// which also holds settings other branches add).
fn settings_read_by_code() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    files.retain(|f| !f.ends_with("platform/src/config/known.rs"));
    let mut vars = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for (i, _) in text.match_indices("\"EMPORIUM_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // A prefix (`"EMPORIUM_UPSTREAM_"` + a context name) is documented by its full names.
            if name.len() > "EMPORIUM_".len()
                && !name.ends_with('_')
                && !vars.contains(&name)
                && !EXAMPLE_TYPOS.contains(&name.as_str())
            {
                vars.push(name);
            }
        }
    }
    vars.extend(["DATABASE_URL", "RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"].map(String::from));
    vars
}

#[test]
fn configuration_doc_lists_every_setting() {
    let path = workspace_root().join("docs/configuration.md");
    let table = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let vars = settings_read_by_code();
    assert!(vars.len() > 20, "found only {vars:?}");
    let missing: Vec<_> = vars.iter().filter(|v| !table.contains(&format!("| `{v}` |"))).collect();
    assert!(missing.is_empty(), "docs/configuration.md's table lacks {missing:?}");
}

/// The README no longer holds the table, so it must point readers at the page that does.
#[test]
fn readme_links_the_configuration_doc() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    assert!(
        readme.contains("(docs/configuration.md)"),
        "README does not link docs/configuration.md"
    );
}

/// Files under `dir` (recursively) that may name settings: code, scripts, docs, CI and tests.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | "node_modules" | ".git") {
                text_files(&path, out);
            }
        } else if [
            "rs", "md", "sh", "mjs", "js", "py", "toml", "yml", "yaml", "json", "txt",
        ]
        .iter()
        .any(|ext| path.extension().is_some_and(|e| e == *ext))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn every_emporium_name_used_in_the_repository_is_a_known_setting() {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["crates", "docs", "tests", "bench", ".ci", "observability", "web"] {
        text_files(&root.join(dir), &mut files);
    }
    let mut unknown = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (i, _) in text.match_indices("EMPORIUM_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // Prefixes (`EMPORIUM_UPSTREAM_` + a context, `EMPORIUM_<CONTEXT>_URL` in prose)
            // and the test suite's own variables are not settings.
            if name.ends_with('_') || name.starts_with("EMPORIUM_TEST_") || EXAMPLE_TYPOS.contains(&name.as_str()) {
                continue;
            }
            if !platform::config::KNOWN_SETTINGS.contains(&name.as_str()) {
                unknown.push(format!(
                    "{name} ({})",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                ));
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "names the binary would refuse as unknown settings; add them to platform::config::KNOWN_SETTINGS: {unknown:?}"
    );
}
