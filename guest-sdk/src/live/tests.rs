//! The wire form's properties: merging the diff of A→B into A gives B (as
//! the browser's merge code does it, through [`Mirror`]), the diff of A→A
//! is empty, templates cross a connection once, and the fixtures that
//! `public/js/live.js` is tested against (`tests/fixtures/live/cases.json`)
//! are what this code produces.

use std::collections::HashSet;
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::diff::Encoder;
use super::{Html, Mirror, raw};
use crate::html;

/// A row of a list: the key and what it shows.
#[derive(Debug, Clone)]
struct Row {
    key: u8,
    text: String,
    done: bool,
    wide: bool,
}

/// A page of a test component: a title, an optional banner, a keyed list.
#[derive(Debug, Clone)]
struct Page {
    title: String,
    banner: Option<String>,
    rows: Vec<Row>,
    table: bool,
}

fn render_row(row: &Row) -> Html {
    if row.wide {
        html!("<li class=\"wide\">{}<b>{}</b></li>", &row.text, if row.done { "✓" } else { "" })
    } else {
        html!("<li class=\"{}\">{}</li>", if row.done { "done" } else { "open" }, &row.text)
    }
}

fn render(page: &Page) -> Html {
    let banner = match &page.banner {
        Some(text) => html!("<p class=\"banner\">{}</p>", text),
        None => Html::empty(),
    };
    let rows = Html::list(page.rows.iter().map(|row| (row.key, render_row(row))));
    if page.table {
        html!(
            "<h1>{}</h1>{}<table>{}</table>",
            &page.title,
            banner,
            Html::list(page.rows.iter().map(|row| (row.key, html!("<tr><td>{}</td></tr>", &row.text))))
        )
    } else {
        html!("<h1>{}</h1>{}<ul>{}</ul>", &page.title, banner, rows)
    }
}

fn row() -> impl Strategy<Value = Row> {
    (0..12_u8, "[a-c<&\"]{0,3}", any::<bool>(), any::<bool>()).prop_map(|(key, text, done, wide)| Row {
        key,
        text,
        done,
        wide,
    })
}

fn page() -> impl Strategy<Value = Page> {
    (
        "[xy]{0,2}",
        proptest::option::of("[a-b]{1,2}"),
        proptest::collection::vec(row(), 0..10),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(title, banner, rows, table)| {
            let mut seen = HashSet::new();
            let rows = rows.into_iter().filter(|row| seen.insert(row.key)).collect();
            Page { title, banner, rows, table }
        })
}

/// `full` of `a`, then the diff to each of `next`, as the runtime sends them.
fn messages(a: &Html, next: &[Html]) -> (Value, Vec<Value>) {
    let mut sent = HashSet::new();
    let mut encoder = Encoder::new(&mut sent);
    let tree = encoder.full(a);
    let full = json!({"t": "full", "cid": "c1", "p": encoder.templates, "r": tree});
    let mut diffs = Vec::new();
    let mut previous = a;
    for b in next {
        let mut encoder = Encoder::new(&mut sent);
        let mut diff = json!({"t": "diff", "cid": "c1"});
        if let Some(d) = encoder.diff(previous, b) {
            diff["d"] = d;
        }
        if !encoder.templates.is_empty() {
            diff["p"] = Value::Object(encoder.templates);
        }
        diffs.push(diff);
        previous = b;
    }
    (full, diffs)
}

proptest! {
    #[test]
    fn merging_the_diff_of_a_to_b_into_a_gives_b(a in page(), b in page(), c in page()) {
        let (a, b, c) = (render(&a), render(&b), render(&c));
        let (full, diffs) = messages(&a, &[b.clone(), c.clone()]);
        let mut mirror = Mirror::default();
        mirror.apply(&full).unwrap();
        prop_assert_eq!(mirror.html().unwrap(), a.to_html());
        mirror.apply(&diffs[0]).unwrap();
        prop_assert_eq!(mirror.html().unwrap(), b.to_html());
        mirror.apply(&diffs[1]).unwrap();
        prop_assert_eq!(mirror.html().unwrap(), c.to_html());
    }

    #[test]
    fn the_diff_of_a_render_to_itself_is_empty(a in page()) {
        let a = render(&a);
        let mut sent = HashSet::new();
        let mut encoder = Encoder::new(&mut sent);
        encoder.full(&a);
        prop_assert_eq!(encoder.diff(&a, &a.clone()), None);
    }
}

#[test]
fn every_dynamic_value_is_escaped_and_raw_html_only_on_request() {
    let hostile = "<script>alert('x')</script>&\"";
    let html = html!("<p title=\"{}\">{}{}</p>", hostile, hostile, raw("<br>"));
    assert_eq!(
        html.to_html(),
        "<p title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;<br></p>"
    );
}

#[test]
fn a_keyed_row_carries_its_key_on_its_first_element() {
    let rows = Html::list([(7, html!("<li class=\"x\">{}</li>", "a")), (8, html!("  <tr>{}</tr>", "b"))]);
    assert_eq!(html!("{}", rows).to_html(), "<li data-key=\"7\" class=\"x\">a</li>  <tr data-key=\"8\">b</tr>");
}

#[test]
#[should_panic(expected = "must start with an element")]
fn a_keyed_row_without_an_element_is_refused() {
    let _ = Html::list([(1, html!("text {}", 1))]);
}

#[test]
fn statics_cross_the_wire_once_and_a_one_row_change_sends_that_row_only() {
    let page = |changed: &str| Page {
        title: "t".into(),
        banner: None,
        rows: (0..12)
            .map(|key| Row {
                key,
                text: if key == 5 { changed.into() } else { format!("row {key}") },
                done: false,
                wide: false,
            })
            .collect(),
        table: false,
    };
    let (a, b) = (render(&page("row 5")), render(&page("changed")));
    let (full, diffs) = messages(&a, std::slice::from_ref(&b));
    assert!(full["p"].as_object().is_some_and(|p| p.len() >= 2), "the full render carries its templates");
    assert_eq!(diffs[0].get("p"), None, "no template twice");
    assert_eq!(diffs[0]["d"], json!({"2": {"kc": 12, "k": {"5": {"2": "changed"}}}}));
}

#[test]
fn keyed_moves_are_old_indexes() {
    let rows = |keys: &[u8]| Page {
        title: String::new(),
        banner: None,
        rows: keys.iter().map(|&key| Row { key, text: key.to_string(), done: false, wide: false }).collect(),
        table: false,
    };
    let (a, b) = (render(&rows(&[1, 2, 3])), render(&rows(&[3, 1, 2, 4])));
    let (_, diffs) = messages(&a, std::slice::from_ref(&b));
    let list = &diffs[0]["d"]["2"];
    assert_eq!(list["kc"], 4);
    assert_eq!(list["k"]["0"], 2, "row 3 moved from index 2");
    assert_eq!(list["k"]["1"], 0);
    assert_eq!(list["k"]["2"], 1);
    assert!(list["k"]["3"].get("s").is_some(), "row 4 is new");
}

/// The cases `public/js/live.js` is tested against: one render, then each
/// change in turn.
fn fixture_cases() -> Vec<(&'static str, Vec<Page>)> {
    let row = |key: u8, text: &str| Row { key, text: text.into(), done: false, wide: false };
    let base = Page {
        title: "Todo".into(),
        banner: None,
        rows: vec![row(1, "milk"), row(2, "eggs"), row(3, "tea")],
        table: false,
    };
    let with = |change: &dyn Fn(&mut Page)| {
        let mut page = base.clone();
        change(&mut page);
        page
    };
    vec![
        ("text slot changes", vec![base.clone(), with(&|p| p.title = "Todo <2>".into())]),
        (
            "a nested node appears, changes and goes",
            vec![
                base.clone(),
                with(&|p| p.banner = Some("saved".into())),
                with(&|p| p.banner = Some("saved & synced".into())),
                base.clone(),
            ],
        ),
        ("a row is appended", vec![base.clone(), with(&|p| p.rows.push(row(4, "jam")))]),
        (
            "a row is deleted",
            vec![
                base.clone(),
                with(&|p| {
                    p.rows.remove(1);
                }),
            ],
        ),
        ("rows move unchanged", vec![base.clone(), with(&|p| p.rows.reverse())]),
        (
            "a row moves and changes",
            vec![
                base.clone(),
                with(&|p| {
                    let mut first = p.rows.remove(0);
                    first.done = true;
                    p.rows.push(first);
                }),
            ],
        ),
        ("a row changes in place", vec![base.clone(), with(&|p| p.rows[1].text = "brown eggs".into())]),
        ("a row's template changes", vec![base.clone(), with(&|p| p.rows[2].wide = true)]),
        ("the root's template changes, then back", vec![base.clone(), with(&|p| p.table = true), base.clone()]),
        ("the list empties and fills", vec![base.clone(), with(&|p| p.rows.clear()), base.clone()]),
        ("nothing changes", vec![base.clone(), base.clone()]),
    ]
}

#[test]
fn the_javascript_fixtures_are_what_this_code_produces() {
    let cases: Vec<Value> = fixture_cases()
        .into_iter()
        .map(|(name, pages)| {
            let renders: Vec<Html> = pages.iter().map(render).collect();
            let (full, diffs) = messages(&renders[0], &renders[1..]);
            let mut mirror = Mirror::default();
            mirror.apply(&full).unwrap();
            for diff in &diffs {
                mirror.apply(diff).unwrap();
            }
            assert_eq!(mirror.html().unwrap(), renders[renders.len() - 1].to_html(), "{name}");
            json!({"name": name, "full": full, "diffs": diffs, "html": renders.iter().map(Html::to_html).collect::<Vec<_>>()})
        })
        .collect();
    let text = serde_json::to_string_pretty(&cases).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/live/cases.json");
    if std::env::var_os("UPDATE_LIVE_FIXTURES").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale: run UPDATE_LIVE_FIXTURES=1 cargo test -p switchboard-sdk fixtures",
        path.display()
    );
}
