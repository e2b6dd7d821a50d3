//! Reading request bodies into typed values with field-level errors.
//!
//! Bodies are parsed once into a JSON object; each handler then asks for the fields it needs.
//! Every problem is collected with its field name, so a client sees all of them in one 422
//! rather than fixing them one round trip at a time.

use crate::error::{ApiError, FieldError};
use serde_json::{Map, Value};

/// Parse a request body as a JSON object: 400 when it is not JSON, 422 when it is JSON but not
/// an object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedRequest("Request body is empty".into()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::MalformedRequest(format!(
            "Request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

/// A JSON object being read field by field; errors accumulate until [`Fields::finish`].
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// A string field that may be absent or null.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    /// A string field that must be present.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        if matches!(self.map.get(name), None | Some(Value::Null)) {
            self.errors.push(FieldError::new(name, "is required"));
            return None;
        }
        self.optional_string(name)
    }

    /// A boolean field that may be absent or null.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(value)) => Some(*value),
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "must be true or false"));
                None
            }
        }
    }

    /// Whether the body sets this field to `null` explicitly (as opposed to omitting it).
    pub fn is_null(&self, name: &str) -> bool {
        matches!(self.map.get(name), Some(Value::Null))
    }

    /// Refuse fields the route does not know, so a client never believes it changed
    /// something (a password, a role) that was silently ignored.
    pub fn reject_unknown(&mut self, known: &[&str]) {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            self.errors.push(FieldError::new(
                key.as_str(),
                "is not a field of this request",
            ));
        }
    }

    /// Whether a problem with this field was already recorded.
    pub fn has_errors_for(&self, name: &str) -> bool {
        self.errors.iter().any(|error| error.field == name)
    }

    /// Record a problem found while checking a value read from this body.
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Run a check on a value and keep its error, if any.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// 422 with every error found, or `Ok` when there were none.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_a_400() {
        let error = parse_object(b"{\"username\": ").unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(matches!(error, ApiError::MalformedRequest(_)));
    }

    #[test]
    fn empty_body_is_a_400() {
        assert_eq!(parse_object(b"  ").unwrap_err().status(), 400);
    }

    #[test]
    fn json_that_is_not_an_object_is_a_422() {
        for body in [&b"[1,2]"[..], b"\"text\"", b"42", b"null"] {
            assert_eq!(parse_object(body).unwrap_err().status(), 422);
        }
    }

    #[test]
    fn wrong_types_and_missing_fields_are_all_reported() {
        let map = parse_object(br#"{"username": 5, "email": null}"#).unwrap();
        let mut fields = Fields::new(map);
        assert_eq!(fields.required_string("username"), None);
        assert_eq!(fields.required_string("password"), None);
        assert_eq!(fields.optional_string("email"), None);
        match fields.finish().unwrap_err() {
            ApiError::Validation(errors) => {
                assert_eq!(
                    errors,
                    vec![
                        FieldError::new("username", "must be a string"),
                        FieldError::new("password", "is required"),
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let map = parse_object(br#"{"username": "a", "roles": ["admin"], "email": null}"#).unwrap();
        let mut fields = Fields::new(map);
        fields.reject_unknown(&["username", "email"]);
        assert!(fields.is_null("email"));
        assert!(!fields.is_null("username"));
        match fields.finish().unwrap_err() {
            ApiError::Validation(errors) => {
                assert_eq!(
                    errors,
                    vec![FieldError::new("roles", "is not a field of this request")]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn booleans_must_be_json_booleans() {
        let map = parse_object(br#"{"a": true, "b": "true", "c": null}"#).unwrap();
        let mut fields = Fields::new(map);
        assert_eq!(fields.optional_bool("a"), Some(true));
        assert_eq!(fields.optional_bool("b"), None);
        assert_eq!(fields.optional_bool("c"), None);
        assert_eq!(fields.optional_bool("d"), None);
        match fields.finish().unwrap_err() {
            ApiError::Validation(errors) => {
                assert_eq!(errors, vec![FieldError::new("b", "must be true or false")]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn present_strings_are_returned() {
        let map = parse_object(r#"{"username": "ä\u0000b"}"#.as_bytes()).unwrap();
        let mut fields = Fields::new(map);
        assert_eq!(fields.required_string("username").as_deref(), Some("ä\0b"));
        assert!(fields.finish().is_ok());
    }
}
