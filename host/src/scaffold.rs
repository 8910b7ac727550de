//! `switchboard new NAME`: a plugin crate that builds, passes its test (the
//! test kit's) and runs under `switchboard dev` as generated.
//!
//! Inside the Switchboard workspace (a folder its `plugins/*` members glob
//! covers) the crate is a workspace member and uses the workspace's
//! dependencies. Anywhere else it is a workspace of its own that names the
//! SDK and the host by path, with the Switchboard workspace's lock file and
//! release profile, so that it resolves the same versions and, sharing a
//! target folder, reuses the same build.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Where this binary's sources are: the SDK and the kit are found there.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The Rust templates: (name, `src/lib.rs`, `tests/<name>.rs`).
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("echo", include_str!("../templates/echo/lib.rs"), include_str!("../templates/echo/test.rs")),
    ("chat", include_str!("../templates/chat/lib.rs"), include_str!("../templates/chat/test.rs")),
];

/// The JavaScript template (`--template js`): an echo built with componentize-js.
const JAVASCRIPT: &[(&str, &str)] = &[
    ("plugin.js", include_str!("../templates/js/plugin.js")),
    ("build.mjs", include_str!("../templates/js/build.mjs")),
    ("package.json", include_str!("../templates/js/package.json")),
    (".gitignore", "node_modules/\ndist/\n"),
];

/// Names cargo or Rust keep for themselves.
const RESERVED: &[&str] = &["std", "core", "alloc", "test", "proc_macro", "self", "super", "crate", "build"];

/// What `switchboard new` was asked for.
#[derive(Debug)]
pub(crate) struct New {
    pub(crate) name: String,
    pub(crate) template: String,
    /// The folder the crate's folder is created in.
    pub(crate) parent: PathBuf,
    /// The Switchboard sources (the SDK, the host); this binary's own by default.
    pub(crate) switchboard: Option<PathBuf>,
}

/// What `switchboard new` made.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) dir: PathBuf,
    /// What to run next: its tests (or, for JavaScript, its build).
    pub(crate) next_step: String,
}

/// Create the crate.
pub(crate) fn create(new: &New) -> anyhow::Result<Created> {
    check_name(&new.name)?;
    let rust = TEMPLATES.iter().find(|(name, _, _)| *name == new.template);
    if rust.is_none() && new.template != "js" {
        let known: Vec<&str> = TEMPLATES.iter().map(|(name, _, _)| *name).chain(["js"]).collect();
        bail!("no template {:?}; there are: {}", new.template, known.join(", "));
    }
    let sources = new.switchboard.clone().unwrap_or_else(|| PathBuf::from(SOURCES));
    let sources = std::fs::canonicalize(&sources)
        .ok()
        .filter(|sources| sources.join("guest-sdk/Cargo.toml").is_file())
        .with_context(|| {
            format!("cannot find the Switchboard sources at {}; pass --switchboard PATH", sources.display())
        })?;
    std::fs::create_dir_all(&new.parent).with_context(|| format!("cannot create {}", new.parent.display()))?;
    let parent = std::fs::canonicalize(&new.parent)?;
    let dir = parent.join(&new.name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let member = parent == sources.join("plugins");
    let files: Vec<(String, String)> = match rust {
        Some((_, lib, test)) => vec![
            ("Cargo.toml".to_owned(), manifest(&new.name, &sources, member)),
            ("src/lib.rs".to_owned(), fill(lib, &new.name)),
            (format!("tests/{}.rs", new.name.replace('-', "_")), fill(test, &new.name)),
            (".gitignore".to_owned(), "/target\n".to_owned()),
        ],
        None => {
            // In the workspace, relative (the folder is committed); elsewhere absolute.
            let wit = if member { "../../wit".to_owned() } else { sources.join("wit").display().to_string() };
            let wit = format!("{wit:?}");
            JAVASCRIPT
                .iter()
                .map(|(file, text)| ((*file).to_owned(), fill(text, &new.name).replace("{{wit}}", &wit)))
                .collect()
        }
    };
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = files.iter().try_for_each(|(file, text)| write(&dir.join(file), text));
    let locked = if member || rust.is_none() { Ok(()) } else { copy_lock(&sources, &dir) };
    if let Err(error) = written.and(locked) {
        // Half a crate would stop `cargo` in the whole workspace: none at all.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(error);
    }
    // In the workspace, `--workspace`: a `-p` build resolves other features
    // than the server's build and would compile wasmtime again.
    let next_step = if rust.is_none() {
        format!("build it: cd {} && npm install && npm run build", dir.display())
    } else if member {
        format!("test it: cargo test --release --workspace --test {}", new.name.replace('-', "_"))
    } else {
        format!("test it: cargo test --release --manifest-path {}", dir.join("Cargo.toml").display())
    };
    Ok(Created { dir, next_step })
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("{name:?} is not a valid plugin name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter");
    }
    if RESERVED.contains(&name) {
        bail!("{name:?} is reserved by cargo or Rust; choose another name");
    }
    Ok(())
}

/// The template with the plugin's name and type name filled in.
fn fill(template: &str, name: &str) -> String {
    let type_name: String = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    template.replace("{{name}}", name).replace("{{type}}", &type_name)
}

fn manifest(name: &str, sources: &Path, member: bool) -> String {
    let package = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n"
    );
    if member {
        return package
            + "[dependencies]\nswitchboard-sdk.workspace = true\n\n\
               [dev-dependencies]\nswitchboard.workspace = true\ntokio.workspace = true\n";
    }
    let path = |folder: &str| sources.join(folder).display().to_string();
    package
        + &format!(
            "[dependencies]\nswitchboard-sdk = {{ path = {:?} }}\n\n\
             [dev-dependencies]\nswitchboard = {{ path = {:?} }}\n\
             tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n\n\
             # A workspace of its own, built as the Switchboard workspace builds\n\
             # (its profiles): sharing a target folder with it reuses its build.\n\
             [workspace]\n\n[profile.release]\ndebug = \"line-tables-only\"\n\n\
             # `switchboard dev` builds plugins with this one: small and fast to load.\n\
             [profile.plugin]\ninherits = \"release\"\nopt-level = \"s\"\nlto = true\n\
             codegen-units = 1\ndebug = false\nstrip = true\n\n\
             # The host's tungstenite, patched for permessage-deflate.\n\
             [patch.crates-io]\ntungstenite = {{ path = {:?} }}\n",
            path("guest-sdk"),
            path("host"),
            path("vendor/tungstenite"),
        )
}

fn copy_lock(sources: &Path, dir: &Path) -> anyhow::Result<()> {
    let lock = sources.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock")).with_context(|| format!("cannot copy {}", lock.display()))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_crate_and_plugin_names() {
        for good in ["shout", "my-plugin", "a1_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Shout", "1st", "-x", "a b", "é", "test", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_type_name_is_the_name_in_camel_case() {
        assert_eq!(fill("struct {{type}}; // {{name}}", "my-fine_plugin"), "struct MyFinePlugin; // my-fine_plugin");
    }
}
