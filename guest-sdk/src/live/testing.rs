//! [`LiveTest`]: test a live component without a browser or a server. It
//! runs the plugin's own runtime (the code that serves real pages) against
//! a fake host with a manual clock, and shows each page through
//! [`Mirror`], the Rust twin of the browser's merge code: what a test reads
//! is what a browser would show after the same messages.
//!
//! ```ignore
//! let mut live = LiveTest::mount::<Counter>(json!({"count": 10}))?;
//! live.click("button.inc")?;
//! assert_eq!(live.text("output")?, "11");
//! ```

use std::collections::HashMap;
use std::time::Duration;

use scraper::{ElementRef, Selector};
use serde_json::{Map, Value, json};

use super::component::LiveComponent;
use super::erased::Entry;
use super::limits::BATCH;
use super::merge::{MergeError, Mirror};
use super::runtime::{Host, Runtime};
use crate::ConnectRequest;

/// Why a test step failed.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The selector is not valid CSS.
    #[error("invalid selector {0:?}")]
    Selector(String),
    /// No element, or more than one, matches the selector.
    #[error("{count} elements match {selector:?}, expected one")]
    NotOne {
        /// The selector.
        selector: String,
        /// How many matched.
        count: usize,
    },
    /// The element has no `data-on-<kind>` binding.
    #[error("{selector:?} has no data-on-{kind} binding")]
    NoBinding {
        /// The selector.
        selector: String,
        /// The event kind.
        kind: String,
    },
    /// The component answered with an error (`err`): refused, failed, ….
    #[error("the component answered {code}: {message}")]
    Component {
        /// The protocol's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The runtime sent something the browser's merge code cannot apply.
    #[error(transparent)]
    Merge(#[from] MergeError),
}

/// A fake host: sends are collected, timers wait for [`LiveTest::advance`].
#[derive(Default)]
struct KitHost {
    now: Duration,
    outbox: Vec<(u64, String)>,
    timers: HashMap<String, (Duration, Option<Duration>)>,
    meta: HashMap<u64, String>,
    warnings: Vec<String>,
}

impl Host for KitHost {
    fn send(&mut self, conn: u64, message: String) {
        self.outbox.push((conn, message));
    }

    fn set_timer(&mut self, name: &str, after: Duration, repeat: bool) -> Result<(), String> {
        self.timers.insert(name.to_owned(), (self.now + after, repeat.then_some(after)));
        Ok(())
    }

    fn cancel_timer(&mut self, name: &str) {
        self.timers.remove(name);
    }

    fn now(&self) -> Duration {
        self.now
    }

    fn warn(&mut self, message: &str) {
        self.warnings.push(message.to_owned());
    }

    fn save_request(&mut self, conn: u64, request: &str) {
        self.meta.insert(conn, request.to_owned());
    }

    fn load_request(&mut self, conn: u64) -> Option<String> {
        self.meta.get(&conn).cloned()
    }
}

/// One page: a connection with one component (cid `c1`).
struct Page {
    conn: u64,
    name: &'static str,
    props: Value,
    mirror: Mirror,
    /// Every message the page received, in order.
    received: Vec<Value>,
    resume: Option<String>,
    next_ref: u64,
}

/// A plugin's live components under test, with one or more pages.
pub struct LiveTest {
    runtime: Runtime<KitHost>,
    entries: &'static [Entry],
    pages: Vec<Page>,
    current: usize,
    next_conn: u64,
}

impl std::fmt::Debug for LiveTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTest")
            .field("pages", &self.pages.len())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

const CID: &str = "c1";

impl LiveTest {
    /// A page that mounts component `C` with `props` (its `data-props`).
    pub fn mount<C: LiveComponent>(props: Value) -> Result<LiveTest, TestError> {
        let entries: &'static [Entry] = Box::leak(Box::new([Entry::of::<C>()]));
        let mut live = LiveTest {
            runtime: Runtime::new(KitHost::default(), entries),
            entries,
            pages: Vec::new(),
            current: 0,
            next_conn: 1,
        };
        live.open_page(C::NAME, props)?;
        Ok(live)
    }

    /// Another page, mounting the same component with `props`; it becomes
    /// the current page. Returns its number for [`LiveTest::switch_to`].
    pub fn open_page(&mut self, name: &'static str, props: Value) -> Result<usize, TestError> {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.runtime.connect(
            conn,
            ConnectRequest {
                route: format!("/live/{name}"),
                path: format!("/live/{name}"),
                ..ConnectRequest::default()
            },
        );
        self.pages.push(Page {
            conn,
            name,
            props,
            mirror: Mirror::default(),
            received: Vec::new(),
            resume: None,
            next_ref: 1,
        });
        self.current = self.pages.len() - 1;
        self.join(None)?;
        Ok(self.current)
    }

    /// Act on page `page` from now on (pages are numbered from 0).
    pub fn switch_to(&mut self, page: usize) {
        assert!(page < self.pages.len(), "no page {page}");
        self.current = page;
    }

    fn join(&mut self, resume: Option<String>) -> Result<(), TestError> {
        let page = &self.pages[self.current];
        let mut join = json!({"t": "join", "cid": CID, "c": page.name, "p": page.props});
        if let Some(token) = resume {
            join["resume"] = json!(token);
        }
        let conn = page.conn;
        self.runtime.message(conn, &join.to_string());
        self.deliver()?;
        self.reply_to(None)
    }

    /// The current page's HTML, as a browser would show it.
    pub fn html(&self) -> Result<String, TestError> {
        Ok(self.pages[self.current].mirror.html()?)
    }

    /// Whether an element matches `selector`.
    pub fn has_element(&self, selector: &str) -> Result<bool, TestError> {
        let html = self.html()?;
        let document = scraper::Html::parse_fragment(&html);
        Ok(document.select(&parse(selector)?).next().is_some())
    }

    /// The text of the one element matching `selector`.
    pub fn text(&self, selector: &str) -> Result<String, TestError> {
        self.with_element(selector, |element| element.text().collect())
    }

    /// How many elements match `selector`.
    pub fn count(&self, selector: &str) -> Result<usize, TestError> {
        let html = self.html()?;
        let document = scraper::Html::parse_fragment(&html);
        Ok(document.select(&parse(selector)?).count())
    }

    /// Click the element: its `data-on-click` binding.
    pub fn click(&mut self, selector: &str) -> Result<(), TestError> {
        self.trigger(selector, "click", Map::new(), Value::Null)
    }

    /// Type `value` into the field: its `data-on-input` binding.
    pub fn input(&mut self, selector: &str, value: &str) -> Result<(), TestError> {
        self.trigger(selector, "input", Map::from_iter([("value".to_owned(), json!(value))]), Value::Null)
    }

    /// Change the field to `value`: its `data-on-change` binding.
    pub fn change(&mut self, selector: &str, value: &str) -> Result<(), TestError> {
        self.trigger(selector, "change", Map::from_iter([("value".to_owned(), json!(value))]), Value::Null)
    }

    /// Submit the form with `fields` (over the values its inputs show):
    /// its `data-on-submit` binding.
    pub fn submit(&mut self, selector: &str, fields: &[(&str, &str)]) -> Result<(), TestError> {
        let mut form: Map<String, Value> = self.with_element(selector, |element| {
            let inputs = Selector::parse("input[name], textarea[name], select[name]").ok();
            inputs
                .iter()
                .flat_map(|inputs| element.select(inputs))
                .filter_map(|field| Some((field.attr("name")?.to_owned(), json!(field.attr("value").unwrap_or("")))))
                .collect()
        })?;
        form.extend(fields.iter().map(|(name, value)| ((*name).to_owned(), json!(value))));
        self.trigger(selector, "submit", Map::new(), Value::Object(form))
    }

    /// Press `key` in the element: its `data-on-keydown` binding, if its
    /// `data-key-filter` lets `key` through.
    pub fn keydown(&mut self, selector: &str, key: &str) -> Result<(), TestError> {
        self.trigger(selector, "keydown", Map::from_iter([("key".to_owned(), json!(key))]), Value::Null)
    }

    /// Send the component an event as the browser would for `kind` on the
    /// element: `v` gets its `data-val-*` attributes over `values`.
    fn trigger(
        &mut self,
        selector: &str,
        kind: &str,
        mut values: Map<String, Value>,
        form: Value,
    ) -> Result<(), TestError> {
        let binding = format!("data-on-{kind}");
        let (name, vals, filter) = self.with_element(selector, |element| {
            let vals: Vec<(String, String)> = element
                .value()
                .attrs()
                .filter_map(|(attr, value)| Some((attr.strip_prefix("data-val-")?.to_owned(), value.to_owned())))
                .collect();
            (element.attr(&binding).map(str::to_owned), vals, element.attr("data-key-filter").map(str::to_owned))
        })?;
        let Some(name) = name else {
            return Err(TestError::NoBinding { selector: selector.to_owned(), kind: kind.to_owned() });
        };
        if filter.is_some_and(|filter| values.get("key").and_then(Value::as_str) != Some(&filter)) {
            return Ok(()); // the browser sends nothing for other keys
        }
        values.extend(vals.into_iter().map(|(key, value)| (key, json!(value))));
        self.send(&name, kind, values, form)
    }

    /// Send the component event `name` as a click with `values`, as no
    /// element of the page has it: what a hand-written or hostile client
    /// could send.
    pub fn send_event(&mut self, name: &str, values: &[(&str, &str)]) -> Result<(), TestError> {
        let values = values.iter().map(|(key, value)| ((*key).to_owned(), json!(value))).collect();
        self.send(name, "click", values, Value::Null)
    }

    fn send(&mut self, name: &str, kind: &str, values: Map<String, Value>, form: Value) -> Result<(), TestError> {
        let page = &mut self.pages[self.current];
        let reference = page.next_ref;
        page.next_ref += 1;
        let event = json!({"t": "ev", "cid": CID, "ref": reference, "n": name, "k": kind, "v": values, "f": form});
        let conn = page.conn;
        self.runtime.message(conn, &event.to_string());
        self.deliver()?;
        self.reply_to(Some(reference))
    }

    fn with_element<R>(&self, selector: &str, f: impl FnOnce(ElementRef<'_>) -> R) -> Result<R, TestError> {
        let html = self.html()?;
        let document = scraper::Html::parse_fragment(&html);
        let selector_parsed = parse(selector)?;
        let mut found = document.select(&selector_parsed);
        match (found.next(), found.count()) {
            (Some(element), 0) => Ok(f(element)),
            (first, more) => {
                Err(TestError::NotOne { selector: selector.to_owned(), count: usize::from(first.is_some()) + more })
            }
        }
    }

    /// Hand what the runtime sent to the pages' mirrors.
    fn deliver(&mut self) -> Result<(), TestError> {
        for (conn, text) in std::mem::take(&mut self.runtime.host.outbox) {
            let message: Value = serde_json::from_str(&text).map_err(|error| MergeError::from_json(&error))?;
            if let Some(page) = self.pages.iter_mut().find(|page| page.conn == conn) {
                page.mirror.apply(&message)?;
                if let Some(token) = message.get("resume").and_then(Value::as_str) {
                    page.resume = Some(token.to_owned());
                }
                page.received.push(message);
            }
        }
        Ok(())
    }

    /// The current page's last error, if it is the answer to `ack` (or to a join).
    fn reply_to(&self, ack: Option<u64>) -> Result<(), TestError> {
        let page = &self.pages[self.current];
        let error = page.received.iter().rev().find(|message| {
            message["t"] == "err" && (ack.is_none() || message.get("ack").and_then(Value::as_u64) == ack)
        });
        match (error, ack) {
            (Some(error), Some(_)) => Err(component_error(error)),
            (Some(error), None) if page.received.last() == Some(error) => Err(component_error(error)),
            _ => Ok(()),
        }
    }

    /// Every message the current page received, in order (`full`, `diff`,
    /// `push`, `flash`, `redirect`, `err`).
    pub fn received(&self) -> &[Value] {
        &self.pages[self.current].received
    }

    /// The messages of type `t` the current page received.
    pub fn received_of(&self, t: &str) -> Vec<&Value> {
        self.received().iter().filter(|message| message["t"] == t).collect()
    }

    /// Let `time` pass: timers fire in order (the component's ticks, the
    /// batching's flush), and their updates reach the pages.
    pub fn advance(&mut self, time: Duration) -> Result<(), TestError> {
        let until = self.runtime.host.now + time;
        loop {
            let due = self
                .runtime
                .host
                .timers
                .iter()
                .filter(|(_, (at, _))| *at <= until)
                .min_by_key(|(_, (at, _))| *at)
                .map(|(name, (at, period))| (name.clone(), *at, *period));
            let Some((name, at, period)) = due else { break };
            self.runtime.host.now = self.runtime.host.now.max(at);
            match period {
                Some(period) => {
                    self.runtime
                        .host
                        .timers
                        .insert(name.clone(), (at + period.max(Duration::from_millis(1)), Some(period)));
                }
                None => {
                    self.runtime.host.timers.remove(&name);
                }
            }
            self.runtime.timer(&name);
            self.deliver()?;
        }
        self.runtime.host.now = until;
        Ok(())
    }

    /// Let the batching's 16 ms pass, so that every page has the updates
    /// the server held back (a room message, a tick: see [`BATCH`]).
    pub fn flush(&mut self) -> Result<(), TestError> {
        self.advance(BATCH)
    }

    /// The backend publishes `data` on `topic` (`POST /api/publish`).
    pub fn publish(&mut self, topic: &str, data: Value) -> Result<(), TestError> {
        self.runtime.publish(topic, &data);
        self.deliver()
    }

    /// The current page's connection drops and comes back: it re-joins
    /// with its resume token, as the browser does.
    pub fn reconnect(&mut self) -> Result<(), TestError> {
        let old = self.pages[self.current].conn;
        self.runtime.close(old);
        self.deliver()?;
        let conn = self.next_conn;
        self.next_conn += 1;
        let name = self.pages[self.current].name;
        self.runtime.connect(conn, ConnectRequest { route: format!("/live/{name}"), ..ConnectRequest::default() });
        let page = &mut self.pages[self.current];
        page.conn = conn;
        page.mirror = Mirror::default();
        let resume = page.resume.clone();
        self.join(resume)
    }

    /// Hot reload: the plugin's state goes to a new runtime (as to the next
    /// version of the plugin), which sends every page what its render
    /// changes (nothing, as the code is the same).
    pub fn reload(&mut self) -> Result<(), TestError> {
        let state = self.runtime.snapshot();
        let host = std::mem::take(&mut self.runtime.host);
        self.runtime = Runtime::new(KitHost { outbox: Vec::new(), ..host }, self.entries);
        self.runtime.restore(&state);
        self.deliver()?;
        self.advance(Duration::ZERO)
    }

    /// What the runtime logged as warnings (refused subscriptions, …).
    pub fn warnings(&self) -> &[String] {
        &self.runtime.host.warnings
    }
}

fn parse(selector: &str) -> Result<Selector, TestError> {
    Selector::parse(selector).map_err(|_| TestError::Selector(selector.to_owned()))
}

fn component_error(message: &Value) -> TestError {
    TestError::Component {
        code: message["code"].as_str().unwrap_or_default().to_owned(),
        message: message["msg"].as_str().unwrap_or_default().to_owned(),
    }
}
