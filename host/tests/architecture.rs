//! The architecture invariants of ARCHITECTURE.md that a build can check:
//! which layer may name what. A rule broken in `src/` fails here.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used, reason = "a test fails by panicking, with the reason")]

use std::path::{Path, PathBuf};

/// The layers of `src/`, top-down: each may use only the layers after it.
const LAYERS: &[&str] = &["testing", "net", "api", "loading", "runtime", "channel", "cluster", "storage"];

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file is UTF-8");
                files.push((path, text));
            }
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file, without its comments (a module doc may name anything).
fn code(text: &str) -> String {
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn only_the_runtime_names_wasmtime() {
    let runtime = src().join("runtime");
    let offenders: Vec<_> = sources(&src())
        .into_iter()
        .filter(|(path, text)| !path.starts_with(&runtime) && code(text).contains("wasmtime"))
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "wasmtime is named outside src/runtime/: {offenders:?}");
}

#[test]
fn layers_use_only_the_layers_below_them() {
    let mut offenders = Vec::new();
    for (index, layer) in LAYERS.iter().enumerate() {
        for (path, text) in sources(&src().join(layer)) {
            let code = code(&text);
            for above in &LAYERS[..index] {
                if code.contains(&format!("crate::{above}::")) {
                    offenders.push(format!("{} uses crate::{above}", path.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "a layer reaches up: {offenders:#?}");
}

#[test]
fn close_codes_are_chosen_in_one_place() {
    // A close frame built from a bare number anywhere but close.rs (and the
    // runtime, which passes on the plugin's own code) is a code chosen elsewhere.
    let allowed = [src().join("close.rs")];
    let offenders: Vec<_> = sources(&src())
        .into_iter()
        .filter(|(path, _)| !allowed.contains(path))
        .filter(|(_, text)| {
            let code = code(text);
            ["close_frame(1", "close(1", "abort(1", "CloseCode::from("].iter().any(|call| code.contains(call))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "close codes chosen outside src/close.rs: {offenders:?}");
}

#[test]
fn the_rule_checks_can_fail() {
    // The checks above look for these spellings: make sure they would see them.
    assert!(code("use wasmtime::Engine;").contains("wasmtime"));
    assert!(!code("//! wasmtime is the runtime").contains("wasmtime"));
    assert!(code("let x = crate::net::server::Shared;").contains("crate::net::"));
}
