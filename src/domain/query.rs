//! Query strings of the listing routes: pagination, prefix search, time bounds.
//!
//! Like request bodies, a query string is read parameter by parameter with every problem
//! collected into one 422; unknown and repeated parameters are refused, so a client never
//! believes a filter applied that was silently ignored.

use crate::error::{ApiError, FieldError};
use chrono::DateTime;

/// Page size when the client names none.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_PER_PAGE: u32 = 100;
/// Highest page number accepted; far beyond any real listing, low enough that the offset
/// never overflows.
pub const MAX_PAGE: u32 = 1_000_000;
/// Longest search prefix (the longest email address).
pub const MAX_SEARCH_CHARS: usize = 254;

/// A query string being read parameter by parameter.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl QueryParams {
    /// Take the decoded `(name, value)` pairs of a query string; only `known` names may appear,
    /// each at most once.
    pub fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Self {
        let mut errors = Vec::new();
        for (index, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    name.as_str(),
                    "is not a parameter of this request",
                ));
            } else if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
                errors.push(FieldError::new(name.as_str(), "is given more than once"));
            }
        }
        Self { pairs, errors }
    }

    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Run a check on a value read from the query and keep its error, if any.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// `page` and `per_page`.
    pub fn page(&mut self) -> Page {
        let page = self
            .get("page")
            .map(|raw| parse_bounded("page", raw, 1, MAX_PAGE));
        let per_page = self
            .get("per_page")
            .map(|raw| parse_bounded("per_page", raw, 1, MAX_PER_PAGE));
        Page {
            page: page.and_then(|result| self.check(result)).unwrap_or(1),
            per_page: per_page
                .and_then(|result| self.check(result))
                .unwrap_or(DEFAULT_PER_PAGE),
        }
    }

    /// An optional instant: RFC 3339 (`2026-11-26T19:00:00Z`) or unix seconds.
    pub fn instant(&mut self, name: &str) -> Option<i64> {
        let raw = self.get(name)?.to_owned();
        self.check(parse_instant(name, &raw))
    }

    /// 422 with every problem found, or `Ok` when there were none.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

fn parse_bounded(name: &str, raw: &str, min: u32, max: u32) -> Result<u32, FieldError> {
    raw.parse::<u32>()
        .ok()
        .filter(|value| (min..=max).contains(value))
        .ok_or_else(|| FieldError::new(name, format!("must be a whole number from {min} to {max}")))
}

/// Parse an instant given as RFC 3339 or as unix seconds.
pub fn parse_instant(name: &str, raw: &str) -> Result<i64, FieldError> {
    let invalid = || {
        FieldError::new(
            name,
            "must be an RFC 3339 time (2026-01-31T12:00:00Z) or unix seconds",
        )
    };
    if !raw.is_empty() && raw.bytes().all(|byte| byte.is_ascii_digit()) {
        return raw
            .parse::<i64>()
            .ok()
            .filter(|value| *value < 1 << 40)
            .ok_or_else(invalid);
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|time| time.timestamp())
        .map_err(|_| invalid())
}

/// One page of a listing: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    /// Rows to skip before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }

    /// How many pages `total` rows fill (0 for none).
    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.per_page))
    }
}

/// A case-insensitive prefix search over canonical (lower-case) columns, as a range
/// `lower <= value < upper` so the column's index answers it and no character of the
/// prefix (`%`, `_`) has a meaning of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRange {
    pub lower: String,
    pub upper: String,
}

/// The range of a search prefix; `None` for an empty one.
pub fn prefix_range(raw: &str) -> Result<Option<PrefixRange>, FieldError> {
    let prefix = raw.trim();
    if prefix.is_empty() {
        return Ok(None);
    }
    if prefix.chars().count() > MAX_SEARCH_CHARS {
        return Err(FieldError::new(
            "q",
            format!("must be at most {MAX_SEARCH_CHARS} characters long"),
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(FieldError::new("q", "must not contain control characters"));
    }
    let lower = prefix.to_lowercase();
    // U+10FFFF sorts after every character (its UTF-8 encoding is the largest), so every
    // value that starts with the prefix is below it and no other value is.
    let upper = format!("{lower}\u{10FFFF}");
    Ok(Some(PrefixRange { lower, upper }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], known: &[&str]) -> QueryParams {
        QueryParams::new(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            known,
        )
    }

    fn errors(query: QueryParams) -> Vec<FieldError> {
        match query.finish() {
            Err(ApiError::Validation(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn pages_default_to_the_first_twenty() {
        let mut query = params(&[], &["page", "per_page"]);
        assert_eq!(
            query.page(),
            Page {
                page: 1,
                per_page: 20
            }
        );
        assert!(query.finish().is_ok());
    }

    #[test]
    fn page_size_bounds_are_inclusive() {
        let mut query = params(&[("page", "1"), ("per_page", "100")], &["page", "per_page"]);
        assert_eq!(query.page().per_page, 100);
        assert!(query.finish().is_ok());
        for bad in ["0", "101", "-1", "1.5", "ten", "99999999999"] {
            let mut query = params(&[("per_page", bad)], &["page", "per_page"]);
            query.page();
            assert_eq!(errors(query)[0].field, "per_page", "{bad}");
        }
        for bad in ["0", "-3", "1000001"] {
            let mut query = params(&[("page", bad)], &["page", "per_page"]);
            query.page();
            assert_eq!(errors(query)[0].field, "page", "{bad}");
        }
    }

    #[test]
    fn offsets_and_page_counts() {
        let page = Page {
            page: 3,
            per_page: 25,
        };
        assert_eq!(page.offset(), 50);
        assert_eq!(page.total_pages(0), 0);
        assert_eq!(page.total_pages(1), 1);
        assert_eq!(page.total_pages(25), 1);
        assert_eq!(page.total_pages(26), 2);
        let last = Page {
            page: MAX_PAGE,
            per_page: MAX_PER_PAGE,
        };
        assert_eq!(last.offset(), 99_999_900);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let query = params(
            &[("page", "1"), ("actor", "x"), ("page", "2")],
            &["page", "per_page"],
        );
        assert_eq!(
            errors(query),
            vec![
                FieldError::new("actor", "is not a parameter of this request"),
                FieldError::new("page", "is given more than once"),
            ]
        );
    }

    #[test]
    fn empty_values_count_as_absent() {
        let mut query = params(&[("page", "")], &["page", "per_page"]);
        assert_eq!(query.page().page, 1);
        assert!(query.finish().is_ok());
    }

    #[test]
    fn instants_are_rfc3339_or_unix_seconds() {
        assert_eq!(parse_instant("since", "1970-01-01T00:01:00Z"), Ok(60));
        assert_eq!(parse_instant("since", "1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_instant("since", "1790000000"), Ok(1_790_000_000));
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "-5",
            "99999999999999",
        ] {
            assert!(parse_instant("since", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_become_ranges_that_match_only_themselves() {
        let range = prefix_range(" Al_i ").unwrap().unwrap();
        assert_eq!(range.lower, "al_i");
        let inside = |value: &str| range.lower.as_str() <= value && value < range.upper.as_str();
        assert!(inside("al_i"));
        assert!(inside("al_ice"));
        assert!(inside("al_i\u{10FFFE}"));
        assert!(!inside("alxice"), "an underscore is not a wildcard");
        assert!(!inside("al_"));
        assert!(!inside("am"));
        assert_eq!(prefix_range("   "), Ok(None));
    }

    #[test]
    fn search_prefixes_are_bounded() {
        assert!(prefix_range(&"a".repeat(254)).is_ok());
        assert_eq!(prefix_range(&"a".repeat(255)).unwrap_err().field, "q");
        assert_eq!(prefix_range("a\u{0}b").unwrap_err().field, "q");
    }
}
