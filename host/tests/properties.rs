//! Property tests over the parsers that face input from users and files:
//! route patterns and paths, and the configuration file. Whatever they are
//! given, they answer (an error or a value) and never panic.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used, reason = "a test fails by panicking, with the reason")]

use proptest::prelude::*;
use switchboard::{Config, RoutePattern, RouteTable};

/// A path segment: mostly plain, sometimes percent-encoded or odd.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_-]{1,8}", "%[0-9A-Fa-f]{2}[a-z]{0,3}", "[^/?#]{1,6}",]
}

/// One of `choices`, taken literally (plain strings are regexes to proptest).
fn literal(choices: &[&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(choices.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_pattern_and_path_is_handled(pattern in "\\PC{0,40}", path in "\\PC{0,60}") {
        if let Ok(pattern) = RoutePattern::parse(&pattern) {
            let mut table = RouteTable::default();
            table.insert(pattern, "p", ()).expect("an empty table takes any pattern");
            let _ = table.find(&path);
        }
    }

    #[test]
    fn a_param_captures_exactly_its_segment(prefix in "[a-z]{1,8}", value in segment()) {
        let mut table = RouteTable::default();
        table.insert(RoutePattern::parse(&format!("/{prefix}/:id")).expect("valid"), "p", ()).expect("insert");
        let path = format!("/{prefix}/{value}");
        let found = table.find(&path).expect("the pattern matches");
        let decoded = percent_encoding::percent_decode_str(&value).decode_utf8_lossy().into_owned();
        prop_assert_eq!(found.params, vec![("id".to_owned(), decoded)]);
        let longer = format!("{path}/more");
        prop_assert!(table.find(&longer).is_none());
    }

    #[test]
    fn any_config_text_is_handled(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn config_like_text_is_handled(
        table in literal(&["", "[limits]\n", "[keepalive]\n", "[plugin.x.limits]\n", "[auth]\n"]),
        key in literal(&["listen", "plugins", "watch", "max_message_size", "send_queue", "ping_interval", "secret"]),
        value in literal(&["0", "-1", "1e99", "\"\"", "\"1s\"", "true", "[]", "{}", "\"127.0.0.1:0\"", "99999999999999999999"]),
    ) {
        let _ = Config::from_toml(&format!("{table}{key} = {value}\n"));
    }
}
