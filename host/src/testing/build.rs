//! Building a plugin crate for `wasm32-wasip2`, for its own tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use parking_lot::Mutex;

use super::KitError;

/// Build the plugin crate at `crate_dir` (usually
/// `env!("CARGO_MANIFEST_DIR")`) for `wasm32-wasip2` with
/// `cargo build --release`, and return the path of its `.wasm`. Built once
/// per test binary; tests that run at the same time wait for that build.
/// Needs the target: `rustup target add wasm32-wasip2`.
pub fn build_plugin(crate_dir: impl AsRef<Path>) -> Result<PathBuf, KitError> {
    static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let manifest = crate_dir.as_ref().join("Cargo.toml");
    let mut built = BUILT.lock();
    if let Some(wasm) = built.get_or_insert_with(HashMap::new).get(&manifest) {
        return Ok(wasm.clone());
    }
    let wasm = build(&manifest)?;
    built.get_or_insert_with(HashMap::new).insert(manifest, wasm.clone());
    Ok(wasm)
}

fn build(manifest: &Path) -> Result<PathBuf, KitError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| KitError::Build(format!("cannot run cargo: {error}")))?;
    if !output.status.success() {
        return Err(KitError::Build(format!(
            "cargo build of {} failed (see above; is the target installed? `rustup target add wasm32-wasip2`)",
            manifest.display()
        )));
    }
    let manifest = manifest.canonicalize().unwrap_or_else(|_| manifest.to_owned());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["manifest_path"].as_str().is_some_and(|path| Path::new(path) == manifest))
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| file.extension().is_some_and(|ext| ext == "wasm"))
        .ok_or_else(|| KitError::Build(format!("{} built no .wasm: is it a cdylib?", manifest.display())))
}
