//! Reading request bodies into typed values with field-level errors.
//!
//! A body is parsed once into a JSON object (refusing duplicate member names), checked against
//! the schema its request type derives — the same schema the OpenAPI document shows — and
//! only then read as that type. Every problem is collected with its field name, the handler's
//! own checks included, so a client sees all of them in one 422 rather than fixing them one
//! round trip at a time.

use crate::error::{ApiError, FieldError};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;
use utoipa::openapi::schema::{AdditionalProperties, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::PartialSchema;

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

/// Where an error sits in the answer: refused members first, then each property in the order
/// the request type declares it, then checks that span several fields.
type Rank = usize;
const UNKNOWN: Rank = 0;
const LAST: Rank = Rank::MAX;

/// Every problem found in one request body, in the order a client reads them: what the body's
/// type refuses (missing fields, wrong JSON types, unknown members) and what the handler's
/// own checks add. Nothing is answered until [`Problems::finish`], so one 422 lists them all.
#[derive(Debug)]
pub struct Problems {
    /// The request type's property names, in declaration order.
    order: Vec<String>,
    errors: Vec<(Rank, FieldError)>,
}

impl Problems {
    fn rank(&self, field: &str) -> Rank {
        self.order
            .iter()
            .position(|name| name == field)
            .map_or(LAST, |index| index + 1)
    }

    /// Insert after every error of a field declared no later than `rank`, so a field's own
    /// check lands beside its type error's place, as if the fields were read one by one.
    fn insert(&mut self, rank: Rank, error: FieldError) {
        let at = self
            .errors
            .iter()
            .position(|(other, _)| *other > rank)
            .unwrap_or(self.errors.len());
        self.errors.insert(at, (rank, error));
    }

    /// `value` when its field has no problem yet (it is present and of the right type), so a
    /// check never runs on the stand-in a missing or mistyped required field deserializes to.
    pub fn valid<'a, V: ?Sized>(&self, field: &str, value: &'a V) -> Option<&'a V> {
        (!self.has_errors_for(field)).then_some(value)
    }

    /// Whether a problem with this field was already recorded.
    pub fn has_errors_for(&self, field: &str) -> bool {
        self.errors.iter().any(|(_, error)| error.field == field)
    }

    /// Run a check of one field's value and keep its error, if any, in that field's place.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.insert(self.rank(&error.field), error);
                None
            }
        }
    }

    /// Record a problem that spans fields (one of two is required, one must differ from
    /// another): after every field's own problems.
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push((LAST, error));
    }

    /// Record a problem that spans fields up to `field`: after their problems, before those of
    /// the fields declared later.
    pub fn reject_after(&mut self, field: &str, error: FieldError) {
        self.insert(self.rank(field), error);
    }

    /// 422 with every error found, or `Ok` when there were none.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(
                self.errors.into_iter().map(|(_, error)| error).collect(),
            ))
        }
    }
}

/// Check a body against its request type's own schema, then read it as that type.
///
/// Every property the schema requires must be present and not `null` ("is required"); every
/// property present and not `null` must have the schema's JSON type ("must be a string",
/// "must be true or false"); a type that refuses unknown members (`deny_unknown_fields`, which
/// the schema shows as `additionalProperties: false`) names each ("is not a field of this
/// request"). All of them are collected. A mistyped optional member is then dropped and a
/// missing or mistyped required one replaced by a stand-in (`""`, `false`), so the value still
/// deserializes and the handler can check the other fields; [`Problems::valid`] keeps its
/// checks off the stand-ins. `null` stays: an optional field reads it as absent, a
/// [`Patch`] as a removal.
pub fn conform<T: DeserializeOwned + PartialSchema>(
    mut map: Map<String, Value>,
) -> Result<(T, Problems), ApiError> {
    let schema = T::schema();
    let object = match &schema {
        RefOr::T(Schema::Object(object)) => Some(object),
        _ => None,
    };
    let mut problems = Problems {
        order: object
            .map(|object| object.properties.keys().cloned().collect())
            .unwrap_or_default(),
        errors: Vec::new(),
    };
    if let Some(object) = object {
        let closed = matches!(
            object.additional_properties.as_deref(),
            Some(AdditionalProperties::FreeForm(false))
        );
        if closed {
            let mut unknown: Vec<String> = map
                .keys()
                .filter(|name| !object.properties.contains_key(name.as_str()))
                .cloned()
                .collect();
            unknown.sort();
            for name in unknown {
                map.remove(&name);
                problems.errors.push((
                    UNKNOWN,
                    FieldError::new(name, "is not a field of this request"),
                ));
            }
        }
        for (index, (name, property)) in object.properties.iter().enumerate() {
            let expected = json_type(property);
            let required = object.required.contains(name);
            let message = match map.get(name) {
                None | Some(Value::Null) if required => Some("is required"),
                None | Some(Value::Null) => None,
                Some(value) => expected
                    .as_ref()
                    .and_then(|expected| type_error(expected, value)),
            };
            if let Some(message) = message {
                problems
                    .errors
                    .push((index + 1, FieldError::new(name.as_str(), message)));
                match (required, expected) {
                    (true, Some(expected)) => {
                        map.insert(name.clone(), stand_in(&expected));
                    }
                    _ => {
                        map.remove(name);
                    }
                }
            }
        }
    }
    // Cannot fail once the body conforms to the schema the same type derived; should the two
    // ever disagree, the client still gets a 422, never a 500.
    let value = serde_json::from_value(Value::Object(map))
        .map_err(|_| ApiError::invalid("body", "does not match this request's fields"))?;
    Ok((value, problems))
}

/// The JSON type a property's schema asks for, `null` aside; `None` when it accepts any value
/// (or is a reference or a combination, which request types do not use).
fn json_type(property: &RefOr<Schema>) -> Option<Type> {
    let RefOr::T(Schema::Object(object)) = property else {
        return None;
    };
    match &object.schema_type {
        SchemaType::Type(kind) => Some(kind.clone()),
        SchemaType::Array(kinds) => {
            let mut kinds = kinds.iter().filter(|kind| **kind != Type::Null);
            match (kinds.next(), kinds.next()) {
                (Some(kind), None) => Some(kind.clone()),
                _ => None,
            }
        }
        SchemaType::AnyValue => None,
    }
}

/// What to tell a client whose value is not of the `expected` JSON type.
fn type_error(expected: &Type, value: &Value) -> Option<&'static str> {
    let (fits, message) = match expected {
        Type::String => (value.is_string(), "must be a string"),
        Type::Boolean => (value.is_boolean(), "must be true or false"),
        Type::Integer => (value.is_i64() || value.is_u64(), "must be an integer"),
        Type::Number => (value.is_number(), "must be a number"),
        Type::Array => (value.is_array(), "must be an array"),
        Type::Object => (value.is_object(), "must be an object"),
        Type::Null => (value.is_null(), "must be null"),
    };
    (!fits).then_some(message)
}

/// A value of the `expected` type that lets a refused required field deserialize.
fn stand_in(expected: &Type) -> Value {
    match expected {
        Type::String => Value::String(String::new()),
        Type::Boolean => Value::Bool(false),
        Type::Integer | Type::Number => Value::from(0),
        Type::Array => Value::Array(Vec::new()),
        Type::Object => Value::Object(Map::new()),
        Type::Null => Value::Null,
    }
}

/// A member of a partial update, where `null` means something else than leaving it out:
/// `{"email": null}` removes the address, `{}` keeps it. Declare the field
/// `#[serde(default)]` and `#[schema(value_type = Option<T>)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not in the body: leave the value as it is.
    #[default]
    Absent,
    /// `null`: remove the value.
    Null,
    /// A new value.
    Value(T),
}

impl<T> Patch<T> {
    /// `None` when absent, `Some(None)` for `null`, `Some(Some(value))` for a value.
    pub fn into_option(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(value) => Some(Some(value)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only reached when the member is present; an absent one is `#[serde(default)]`.
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Patch::Null,
            Some(value) => Patch::Value(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::ToSchema;

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

    #[derive(Debug, Deserialize, ToSchema)]
    struct Open {
        name: String,
        email: Option<String>,
        flag: Option<bool>,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    struct Closed {
        username: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<String>)]
        email: Patch<String>,
        current_password: String,
    }

    fn read<T: DeserializeOwned + PartialSchema>(body: &str) -> (T, Problems) {
        conform(parse_object(body.as_bytes()).unwrap()).unwrap()
    }

    fn errors(problems: Problems) -> Vec<(String, String)> {
        match problems.finish() {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(errors)) => errors
                .into_iter()
                .map(|error| (error.field, error.message))
                .collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(field, message)| (field.to_string(), message.to_string()))
            .collect()
    }

    #[test]
    fn a_conforming_body_reads_as_its_type() {
        let (open, problems) = read::<Open>(r#"{"name": "ä\u0000b", "email": null, "x": 1}"#);
        assert_eq!(open.name, "ä\0b");
        assert_eq!(open.email, None);
        assert_eq!(open.flag, None);
        assert!(problems.finish().is_ok());
    }

    #[test]
    fn wrong_types_and_missing_fields_are_all_reported_in_declaration_order() {
        let (open, problems) = read::<Open>(r#"{"flag": "true", "email": 5}"#);
        // The refused members read as absent, the missing required one as a stand-in.
        assert_eq!(
            (open.name.as_str(), open.email, open.flag),
            ("", None, None)
        );
        assert_eq!(problems.valid("name", open.name.as_str()), None);
        assert_eq!(
            errors(problems),
            pairs(&[
                ("name", "is required"),
                ("email", "must be a string"),
                ("flag", "must be true or false"),
            ])
        );
        let (_, problems) = read::<Open>(r#"{"name": null, "flag": true}"#);
        assert_eq!(errors(problems), pairs(&[("name", "is required")]));
    }

    #[test]
    fn unknown_members_are_refused_first_by_name_only_where_the_type_says_so() {
        let schema = serde_json::to_value(Closed::schema()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let (closed, problems) = read::<Closed>(
            r#"{"username": 5, "roles": ["admin"], "current_password": "p", "admin": true}"#,
        );
        assert_eq!(
            (closed.username, closed.current_password.as_str()),
            (None, "p")
        );
        assert_eq!(
            errors(problems),
            pairs(&[
                ("admin", "is not a field of this request"),
                ("roles", "is not a field of this request"),
                ("username", "must be a string"),
            ])
        );
        let (_, problems) = read::<Open>(r#"{"name": "n", "roles": ["admin"]}"#);
        assert!(problems.finish().is_ok());
    }

    #[test]
    fn a_patch_tells_null_from_absent() {
        let cases = [
            (r#"{"current_password": "p"}"#, Patch::Absent),
            (r#"{"current_password": "p", "email": null}"#, Patch::Null),
            (
                r#"{"current_password": "p", "email": "a@example.com"}"#,
                Patch::Value("a@example.com".to_owned()),
            ),
            // Refused, so it changes nothing.
            (r#"{"current_password": "p", "email": 5}"#, Patch::Absent),
        ];
        for (body, expected) in cases {
            let (closed, _) = read::<Closed>(body);
            assert_eq!(closed.email, expected, "{body}");
        }
        assert_eq!(Patch::<u8>::Null.into_option(), Some(None));
        assert_eq!(Patch::Value(1).into_option(), Some(Some(1)));
        assert_eq!(Patch::<u8>::Absent.into_option(), None);
        let schema = serde_json::to_value(Closed::schema()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["current_password"]));
        assert_eq!(
            schema["properties"]["email"]["type"],
            serde_json::json!(["string", "null"])
        );
    }

    #[test]
    fn the_handlers_checks_join_the_same_answer_in_reading_order() {
        let (open, mut problems) = read::<Open>(r#"{"name": "n", "email": 5}"#);
        problems.reject(FieldError::new("name", "spans fields"));
        problems.check::<()>(Err(FieldError::new("name", "is not acceptable")));
        problems.check::<()>(Err(FieldError::new("flag", "is not acceptable")));
        problems.reject_after("email", FieldError::new("name", "or email is required"));
        assert!(problems.has_errors_for("email"));
        assert_eq!(problems.valid("name", open.name.as_str()), None);
        assert_eq!(
            errors(problems),
            pairs(&[
                ("name", "is not acceptable"),
                ("email", "must be a string"),
                ("name", "or email is required"),
                ("flag", "is not acceptable"),
                ("name", "spans fields"),
            ])
        );
    }
}
