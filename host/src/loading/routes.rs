//! Route patterns such as `/rooms/:room_id`, and the table that maps a
//! request path to the plugin serving it.

use std::fmt;

use percent_encoding::percent_decode_str;

/// Why a route pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Patterns are absolute paths.
    #[error("route `{0}` must start with `/`")]
    NotAbsolute(String),
    /// A `:` segment needs a name: `/rooms/:room_id`, not `/rooms/:`.
    #[error("route `{0}` has a parameter without a name")]
    UnnamedParam(String),
    /// Two parameters of one pattern share a name.
    #[error("route `{pattern}` names the parameter `{name}` twice")]
    DuplicateParam {
        /// The pattern.
        pattern: String,
        /// The repeated name.
        name: String,
    },
    /// Another plugin already serves a pattern that matches the same paths.
    #[error("route `{pattern}` is already served by plugin `{owner}`")]
    Conflict {
        /// The refused pattern.
        pattern: String,
        /// The plugin that has it.
        owner: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern: literal segments and `:name` parameters.
///
/// Empty segments are ignored, so `/chat/` and `/chat` are the same route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    source: String,
    segments: Vec<Segment>,
}

impl RoutePattern {
    /// Parse a pattern such as `/rooms/:room_id`.
    pub fn parse(pattern: &str) -> Result<RoutePattern, RouteError> {
        if !pattern.starts_with('/') {
            return Err(RouteError::NotAbsolute(pattern.to_owned()));
        }
        let mut segments = Vec::new();
        for part in pattern.split('/').filter(|part| !part.is_empty()) {
            let segment = match part.strip_prefix(':') {
                Some("") => return Err(RouteError::UnnamedParam(pattern.to_owned())),
                Some(name) => {
                    if segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(RouteError::DuplicateParam { pattern: pattern.to_owned(), name: name.to_owned() });
                    }
                    Segment::Param(name.to_owned())
                }
                None => Segment::Literal(part.to_owned()),
            };
            segments.push(segment);
        }
        Ok(RoutePattern { source: pattern.to_owned(), segments })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether both patterns match exactly the same paths (`/a/:x` and `/a/:y` do).
    pub(crate) fn same_shape(&self, other: &RoutePattern) -> bool {
        self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|pair| match pair {
                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                (Segment::Param(_), Segment::Param(_)) => true,
                _ => false,
            })
    }

    /// Match a request path (without its query); the parameters come back
    /// percent-decoded, in pattern order.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut parts = path.split('/').filter(|part| !part.is_empty());
        let mut params = Vec::new();
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(literal) => {
                    if decode(part) != *literal {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), decode(part))),
            }
        }
        parts.next().is_none().then_some(params)
    }

    /// Literal segments beat parameters, position by position: `/chat/help`
    /// wins over `/chat/:room` for the path `/chat/help`.
    fn specificity(&self) -> impl Iterator<Item = bool> + '_ {
        self.segments.iter().map(|segment| matches!(segment, Segment::Literal(_)))
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn decode(part: &str) -> String {
    percent_decode_str(part).decode_utf8_lossy().into_owned()
}

/// A route that matched a request path.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The pattern that matched.
    pub pattern: &'a RoutePattern,
    /// What the pattern was registered with (the serving plugin).
    pub target: &'a T,
    /// The pattern's parameters, percent-decoded.
    pub params: Vec<(String, String)>,
}

/// Route patterns and what serves each; the most specific match wins.
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RoutePattern, String, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<T: Clone> RouteTable<T> {
    /// Add `pattern`, owned by `owner` (a plugin name) and served by `target`.
    /// Refused when another owner already serves a pattern of the same shape.
    pub fn insert(&mut self, pattern: RoutePattern, owner: &str, target: T) -> Result<(), RouteError> {
        if let Some((_, existing, _)) = self.routes.iter().find(|(p, _, _)| p.same_shape(&pattern)) {
            return Err(RouteError::Conflict { pattern: pattern.source, owner: existing.clone() });
        }
        self.routes.push((pattern, owner.to_owned(), target));
        Ok(())
    }

    /// Whether `pattern` could be inserted for `owner` (ignoring `owner`'s own routes).
    pub fn check(&self, pattern: &RoutePattern, owner: &str) -> Result<(), RouteError> {
        match self.routes.iter().find(|(p, o, _)| o != owner && p.same_shape(pattern)) {
            Some((_, existing, _)) => {
                Err(RouteError::Conflict { pattern: pattern.source.clone(), owner: existing.clone() })
            }
            None => Ok(()),
        }
    }

    /// A copy without the routes of `owner`.
    pub fn without(&self, owner: &str) -> RouteTable<T> {
        RouteTable { routes: self.routes.iter().filter(|(_, o, _)| o != owner).cloned().collect() }
    }

    /// The most specific route matching `path`.
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        self.routes
            .iter()
            .filter_map(|(pattern, _, target)| Some((pattern, target, pattern.matches(path)?)))
            .max_by(|(a, _, _), (b, _, _)| a.specificity().cmp(b.specificity()))
            .map(|(pattern, target, params)| RouteMatch { pattern, target, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable<String> {
        let mut table = RouteTable::default();
        for (pattern, owner) in routes {
            table.insert(RoutePattern::parse(pattern).unwrap(), owner, (*owner).to_owned()).unwrap();
        }
        table
    }

    fn find(table: &RouteTable<String>, path: &str) -> Option<(String, Vec<(String, String)>)> {
        table.find(path).map(|m| (m.target.clone(), m.params))
    }

    #[test]
    fn literal_route_matches_itself_only() {
        let routes = table(&[("/echo", "echo")]);
        assert_eq!(find(&routes, "/echo"), Some(("echo".into(), vec![])));
        assert_eq!(find(&routes, "/echo/"), Some(("echo".into(), vec![])));
        assert_eq!(find(&routes, "/echo/more"), None);
        assert_eq!(find(&routes, "/ech"), None);
        assert_eq!(find(&routes, "/"), None);
    }

    #[test]
    fn params_are_extracted_and_decoded() {
        let routes = table(&[("/rooms/:room_id/users/:user", "rooms")]);
        assert_eq!(
            find(&routes, "/rooms/a%20b/users/%C3%A9"),
            Some(("rooms".into(), vec![("room_id".into(), "a b".into()), ("user".into(), "é".into())]))
        );
        assert_eq!(find(&routes, "/rooms/a/users"), None);
    }

    #[test]
    fn literal_segments_win_over_params() {
        let routes = table(&[("/chat/:room", "rooms"), ("/chat/help", "help"), ("/:any/help", "any")]);
        assert_eq!(find(&routes, "/chat/help").map(|m| m.0), Some("help".into()));
        assert_eq!(find(&routes, "/chat/lobby").map(|m| m.0), Some("rooms".into()));
        assert_eq!(find(&routes, "/x/help").map(|m| m.0), Some("any".into()));
    }

    #[test]
    fn same_shape_conflicts() {
        let mut routes = table(&[("/chat/:room", "chat")]);
        let clash = RoutePattern::parse("/chat/:other").unwrap();
        assert_eq!(
            routes.insert(clash.clone(), "second", "second".into()),
            Err(RouteError::Conflict { pattern: "/chat/:other".into(), owner: "chat".into() })
        );
        assert!(routes.check(&clash, "chat").is_ok(), "an owner never conflicts with itself");
        assert!(routes.without("chat").check(&clash, "second").is_ok());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(matches!(RoutePattern::parse("chat"), Err(RouteError::NotAbsolute(_))));
        assert!(matches!(RoutePattern::parse("/a/:"), Err(RouteError::UnnamedParam(_))));
        assert!(matches!(RoutePattern::parse("/:a/:a"), Err(RouteError::DuplicateParam { .. })));
    }
}
