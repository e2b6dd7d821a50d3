//! Reading request bodies into typed values with field-level errors.
//!
//! Bodies are parsed once into a JSON object; each handler then asks for the fields it needs.
//! Every problem is collected with its field name, so a client sees all of them in one 422
//! rather than fixing them one round trip at a time.

use crate::error::{ApiError, FieldError};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Parse a request body as a JSON object: 400 when it is not JSON or names a member twice in
/// one object (at any depth), 422 when it is JSON but not an object.
///
/// Duplicate names are refused rather than resolved (RFC 7493 §2.3): a filter in front of the
/// service may read the first value while a last-wins parser reads the other, so the two
/// would act on different requests.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedRequest("Request body is empty".into()));
    }
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value))
    .map_err(|error| match duplicate.take() {
        Some(name) => ApiError::DuplicateMember(name),
        None => ApiError::MalformedRequest(format!(
            "Request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

/// Builds a [`Value`] like serde_json does, but refuses an object that names a member twice;
/// the name goes to `duplicate`, so the caller can tell that refusal from a syntax error.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = items.next_element_seed(self)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            if map.contains_key(&name) {
                let error = de::Error::custom("duplicate member name");
                *self.duplicate.borrow_mut() = Some(name);
                return Err(error);
            }
            let value = members.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
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
    fn duplicate_member_names_are_a_400_at_any_depth() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"username":"a","password":"p","username":"b"}"#,
                "username",
            ),
            (br#"{"outer":{"x":1,"x":2}}"#, "x"),
            (br#"{"list":[{"k":null},{"k":1,"k":1}]}"#, "k"),
            (br#"{"q\"u":1,"q\u0022u":2}"#, "q\"u"),
        ];
        for (body, name) in cases {
            let error = parse_object(body).unwrap_err();
            assert_eq!(error, ApiError::DuplicateMember(name.into()), "{body:?}");
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn equal_names_in_different_objects_are_fine() {
        let map = parse_object(br#"{"a":{"id":1},"b":{"id":2},"c":[{"id":3},{"id":4}]}"#).unwrap();
        assert_eq!(map["c"][1]["id"], 4);
    }

    #[test]
    fn strict_parsing_keeps_every_json_type() {
        let body = br#"{"s":"x\u00e9","n":-3,"u":18446744073709551615,"f":1.5,"t":true,"z":null,"a":[1,"2"],"o":{}}"#;
        let strict = Value::Object(parse_object(body).unwrap());
        let reference: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(strict, reference);
    }

    #[test]
    fn trailing_data_after_the_object_is_a_400() {
        let error = parse_object(br#"{"a":1} {"a":2}"#).unwrap_err();
        assert!(matches!(error, ApiError::MalformedRequest(_)), "{error:?}");
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
