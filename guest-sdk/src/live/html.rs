//! [`Html`]: what a component's `render` returns. A tree of templates whose
//! static text is known when the plugin is compiled and whose dynamic parts
//! are filled at each render, so that the wire can carry the statics once
//! and, after that, only the dynamic parts that changed.
//!
//! Every dynamic value is HTML-escaped ([`IntoSlot`]); raw HTML
//! goes in only through [`raw`]. List entries must have keys ([`Html::list`]):
//! the diff sends a moved row as its old index and a changed row as its
//! changed slots, and the browser keeps each row's DOM node.

use std::fmt::{Display, Write as _};
use std::sync::{Arc, OnceLock};

/// A template written in the plugin's code: HTML text with `{}` holes, one
/// per dynamic value. Made by [`html!`](crate::html); not built by hand.
#[derive(Debug)]
pub struct Template {
    source: &'static str,
    /// Parsed at the first render that uses it: a render costs a load and
    /// a reference count, not a lookup.
    parsed: OnceLock<Parsed>,
}

/// A template's statics and its id, shared by every render that uses it.
#[derive(Debug, Clone)]
pub(crate) struct Parsed(Arc<Statics>);

/// Parsed once per template.
#[derive(Debug)]
pub(crate) struct Statics {
    /// The id the wire names the template by: a hash of the statics (53 bits,
    /// so that JavaScript's numbers hold it), hence the same across reloads
    /// for the same text.
    pub(crate) id: u64,
    /// The text around the holes: one more than there are holes.
    pub(crate) parts: Vec<Box<str>>,
    /// This template as a keyed list's row, with a `data-key` hole on its
    /// first element (see [`keyed_template`]), made at its first such use.
    keyed: OnceLock<Parsed>,
}

impl Template {
    /// A template of `source`, whose holes are the `{}` pairs.
    pub const fn new(source: &'static str) -> Template {
        Template { source, parsed: OnceLock::new() }
    }

    /// How many `{}` holes `source` has; `html!` checks it against its
    /// arguments when the plugin compiles.
    pub const fn holes(source: &str) -> usize {
        let bytes = source.as_bytes();
        let (mut count, mut at) = (0, 0);
        while at + 1 < bytes.len() {
            if bytes[at] == b'{' && bytes[at + 1] == b'}' {
                count += 1;
                at += 2;
            } else {
                at += 1;
            }
        }
        count
    }

    fn parsed(&'static self) -> Parsed {
        self.parsed.get_or_init(|| Parsed::new(self.source.split("{}").map(Box::from).collect())).clone()
    }
}

impl Parsed {
    pub(crate) fn new(parts: Vec<Box<str>>) -> Parsed {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for part in &parts {
            for byte in part.bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Parsed(Arc::new(Statics { id: hash & ((1 << 53) - 1), parts, keyed: OnceLock::new() }))
    }

    pub(crate) fn statics(&self) -> &Statics {
        &self.0
    }
}

/// Rendered HTML: a template and the values of its holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html {
    pub(crate) template: Parsed,
    pub(crate) slots: Vec<Slot>,
}

impl PartialEq for Parsed {
    fn eq(&self, other: &Parsed) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Parsed {}

/// The value of one hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Text, already escaped (or raw HTML from [`raw`]).
    Text(String),
    /// A nested template.
    Node(Html),
    /// A keyed list: each entry's key and HTML.
    List(Vec<(String, Html)>),
}

/// HTML inserted as it is, without escaping. Only for markup the plugin
/// made itself: never pass it anything a user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(pub String);

/// Mark `html` as trusted markup (see [`Raw`]).
pub fn raw(html: impl Into<String>) -> Raw {
    Raw(html.into())
}

impl Html {
    /// `template` with `slots`; what `html!` expands to.
    #[doc(hidden)]
    pub fn from_template(template: &'static Template, slots: Vec<Slot>) -> Html {
        Html { template: template.parsed(), slots }
    }

    /// Nothing: for a branch that renders no markup.
    pub fn empty() -> Html {
        static EMPTY: Template = Template::new("");
        Html::from_template(&EMPTY, Vec::new())
    }

    /// A keyed list. Each entry is a key, unique in the list (e.g. a
    /// database id), and the entry's HTML, whose first element gets the key
    /// as its `data-key` attribute: the browser keeps a row's DOM node
    /// (and its focus) while rows move around it, when the list is the only
    /// content of its element (`<ul>{}</ul>`).
    ///
    /// # Panics
    /// When an entry's HTML does not start with an element, such as
    /// `<li …>`: the key has no element to go on. That is a mistake in the
    /// component's code, found by its first test.
    pub fn list<K: Display>(entries: impl IntoIterator<Item = (K, Html)>) -> Slot {
        Slot::List(
            entries
                .into_iter()
                .map(|(key, row)| {
                    let key = escaped(&key);
                    let keyed = Html {
                        template: keyed_template(&row.template),
                        slots: prepend(Slot::Text(key.clone()), row.slots),
                    };
                    (key, keyed)
                })
                .collect(),
        )
    }

    /// The HTML text.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) {
        let parts = &self.template.statics().parts;
        for (index, part) in parts.iter().enumerate() {
            out.push_str(part);
            match self.slots.get(index) {
                Some(Slot::Text(text)) => out.push_str(text),
                Some(Slot::Node(node)) => node.write_to(out),
                Some(Slot::List(rows)) => rows.iter().for_each(|(_, row)| row.write_to(out)),
                None => {}
            }
        }
    }
}

fn prepend(first: Slot, rest: Vec<Slot>) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(rest.len() + 1);
    slots.push(first);
    slots.extend(rest);
    slots
}

/// The template of a keyed row: `row` with a `data-key` hole added to its
/// first element's tag, made once per row template.
fn keyed_template(row: &Parsed) -> Parsed {
    let keyed = row.statics().keyed.get_or_init(|| {
        let parts = &row.statics().parts;
        let first = parts.first().map_or("", |part| &**part);
        let start = first.len() - first.trim_start().len();
        let name_end = first[start..]
            .strip_prefix('<')
            .filter(|tag| tag.starts_with(|c: char| c.is_ascii_alphabetic()))
            .map(|tag| start + 1 + tag.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(tag.len()))
            .unwrap_or_else(|| panic!("a keyed list entry must start with an element, not {first:?}"));
        let mut keyed =
            vec![format!("{} data-key=\"", &first[..name_end]).into(), format!("\"{}", &first[name_end..]).into()];
        keyed.extend(parts[1..].iter().cloned());
        Parsed::new(keyed)
    });
    keyed.clone()
}

/// The characters [`escape`] replaces.
const SPECIAL: [char; 5] = ['&', '<', '>', '"', '\''];

/// Escape text for HTML content and for quoted attribute values.
pub fn escape(text: &str) -> String {
    if !text.contains(SPECIAL) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What can fill a hole of [`html!`](crate::html): nested [`Html`], a
/// keyed list ([`Html::list`]), [`raw`] markup, or anything printable, which
/// is escaped.
pub trait IntoSlot {
    /// The slot's value.
    fn into_slot(self) -> Slot;
}

impl IntoSlot for Html {
    fn into_slot(self) -> Slot {
        Slot::Node(self)
    }
}

impl IntoSlot for Slot {
    fn into_slot(self) -> Slot {
        self
    }
}

impl IntoSlot for Raw {
    fn into_slot(self) -> Slot {
        Slot::Text(self.0)
    }
}

impl<T: Display> IntoSlot for T {
    fn into_slot(self) -> Slot {
        Slot::Text(escaped(&self))
    }
}

/// `value` as escaped text, in one allocation when there is nothing to
/// escape (the usual case: a render makes many of these).
fn escaped(value: &impl Display) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value}");
    if text.contains(SPECIAL) { escape(&text) } else { text }
}

/// Build [`Html`] from a template string whose `{}` holes take the
/// arguments, in order. Every argument is escaped unless it is [`raw`]; an
/// argument may be nested `Html` or a keyed [`Html::list`].
///
/// ```ignore
/// html!("<p class=\"{}\">{} clicks</p>", self.class, self.count)
/// ```
///
/// Arguments are taken by value: pass a field the component keeps by
/// reference (`&self.title`). There is no escape for a literal `{}`: write
/// it as an argument. The number of holes must match the number of
/// arguments, checked when the plugin compiles:
///
/// ```compile_fail
/// let _ = switchboard_sdk::html!("<p>{} and {}</p>", 1);
/// ```
///
/// ```
/// let html = switchboard_sdk::html!("<p>{} and {}</p>", 1, "<2>");
/// assert_eq!(html.to_html(), "<p>1 and &lt;2&gt;</p>");
/// ```
#[macro_export]
macro_rules! html {
    ($source:literal $(, $arg:expr)* $(,)?) => {{
        static TEMPLATE: $crate::live::Template = $crate::live::Template::new($source);
        const _: () = ::core::assert!(
            $crate::live::Template::holes($source) == <[&str]>::len(&[$(::core::stringify!($arg)),*]),
            "html!: the template has a different number of holes than arguments"
        );
        $crate::live::Html::from_template(&TEMPLATE, ::std::vec![$($crate::live::IntoSlot::into_slot($arg)),*])
    }};
}
