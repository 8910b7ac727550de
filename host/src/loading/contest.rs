//! Start-up conflicts: files that claim the same plugin name or route.
//! Which file serves must not depend on how the files sort, so every party
//! of a conflict is refused, unless the configuration pins the name to one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::loading::routes::RoutePattern;
use crate::runtime::PluginInfo;

/// A file that may serve, among those loaded together at start-up.
#[derive(Debug)]
pub(crate) struct Candidate<'a> {
    pub(crate) file: &'a Path,
    pub(crate) info: &'a PluginInfo,
    /// Whether the configuration pins the plugin's name to this file.
    pub(crate) pinned: bool,
}

/// The candidates refused because they contest a name or a route with
/// another candidate, and why. A pinned candidate wins against unpinned
/// ones; otherwise every party is refused, so that which file serves never
/// depends on how the files sort.
pub(crate) fn contested(candidates: &[Candidate<'_>]) -> BTreeMap<PathBuf, String> {
    let mut refused = BTreeMap::new();
    let display =
        |candidate: &Candidate<'_>| format!("{} (plugin `{}`)", candidate.file.display(), candidate.info.name);
    for (index, one) in candidates.iter().enumerate() {
        for other in &candidates[index + 1..] {
            let clash = if one.info.name == other.info.name {
                Some(format!("the name `{}`", one.info.name))
            } else {
                one.info.routes.iter().find_map(|route| {
                    let mine = RoutePattern::parse(route).ok()?;
                    let theirs = other.info.routes.iter().filter_map(|route| RoutePattern::parse(route).ok());
                    theirs.into_iter().any(|theirs| theirs.same_shape(&mine)).then(|| format!("the route `{route}`"))
                })
            };
            let Some(clash) = clash else { continue };
            for (loser, winner) in [(one, other), (other, one)] {
                if !loser.pinned || winner.pinned {
                    let why = format!(
                        "{clash} is also claimed by {}; pin the right plugin to its file in the configuration \
                         ([plugin.NAME] file = \"...\")",
                        display(winner)
                    );
                    refused.entry(loser.file.to_owned()).or_insert(why);
                }
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, routes: &[&str]) -> PluginInfo {
        PluginInfo { name: name.into(), version: "1".into(), routes: routes.iter().map(|r| (*r).to_owned()).collect() }
    }

    fn refused(plugins: &[(&str, PluginInfo, bool)]) -> Vec<String> {
        let files: Vec<PathBuf> = plugins.iter().map(|(file, _, _)| PathBuf::from(file)).collect();
        let candidates: Vec<Candidate<'_>> = plugins
            .iter()
            .zip(&files)
            .map(|((_, info, pinned), file)| Candidate { file, info, pinned: *pinned })
            .collect();
        contested(&candidates).into_keys().map(|file| file.display().to_string()).collect()
    }

    #[test]
    fn every_party_of_a_conflict_is_refused_whatever_the_order() {
        let echo = info("echo", &["/echo"]);
        let squatter = info("squatter", &["/echo"]);
        let chat = info("chat", &["/chat/:room"]);
        let refused_both = refused(&[
            ("0.wasm", squatter.clone(), false),
            ("1.wasm", echo.clone(), false),
            ("2.wasm", chat.clone(), false),
        ]);
        assert_eq!(refused_both, ["0.wasm", "1.wasm"]);
        let reversed =
            refused(&[("0.wasm", echo.clone(), false), ("1.wasm", squatter, false), ("2.wasm", chat, false)]);
        assert_eq!(reversed, ["0.wasm", "1.wasm"]);
        assert_eq!(refused(&[("a.wasm", echo.clone(), false), ("b.wasm", echo, false)]), ["a.wasm", "b.wasm"]);
    }

    #[test]
    fn a_pinned_plugin_wins_its_conflicts() {
        let echo = info("echo", &["/echo"]);
        let squatter = info("squatter", &["/echo"]);
        let refused = refused(&[("0.wasm", squatter, false), ("1.wasm", echo.clone(), false), ("2.wasm", echo, true)]);
        assert_eq!(refused, ["0.wasm", "1.wasm"]);
    }
}
