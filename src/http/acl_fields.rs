//! ACL BODY KEYS: Go's `encoding/json` matches object keys to struct fields without regard to
//! case, so Consul takes `{"name": "p", "rules": "…"}` as it takes `{"Name": …}`; py-consul's
//! `acl.policy.create` sends exactly that lowercase body [live on 1.8.7: 200].
//!
//! Input: a decoded JSON body and the Rust type it is for → output: the body with each
//! top-level key that equals one of the type's serde field names ignoring ASCII case renamed
//! to that name. Invariants: a key that already matches exactly is kept, and wins over a
//! differently cased duplicate (Go keeps the last of two, this keeps the exact one: a body
//! with both spellings is not something a client sends); nested objects are left as they
//! are; unknown keys pass through untouched. `unknown_key` names the first key that matches
//! no field (a write refuses it as Consul does, with Go's `json: unknown field "X"`).
//!
//! The type's field names come from serde itself: `deserialize_struct` is handed them, so a
//! deserializer that only records that list and stops (`FieldNames`) reads them without a
//! second hand-kept list that could drift from the structs (no crate offers this for serde).

use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::{Map, Value};

/// Renames `body`'s top-level keys to `T`'s field names, matching without regard to case.
pub(crate) fn canonical_keys<T: for<'de> Deserialize<'de>>(body: Value) -> Value {
    let Value::Object(map) = body else { return body };
    let fields = field_names::<T>();
    let mut out = Map::with_capacity(map.len());
    let mut folded = Vec::new();
    for (key, value) in map {
        match fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
            Some(field) if **field != key => folded.push(((*field).to_owned(), value)),
            _ => {
                out.insert(key, value);
            }
        }
    }
    for (field, value) in folded {
        out.entry(field).or_insert(value);
    }
    Value::Object(out)
}

/// The first top-level key of `body` that is none of `T`'s fields nor of `also` (fields
/// Consul's struct has but a write ignores), compared without regard to case: Go's
/// `DisallowUnknownFields`, which Consul's ACL endpoints use [live on 1.8.7].
pub(crate) fn unknown_key<T: for<'de> Deserialize<'de>>(body: &Value, also: &[&str]) -> Option<String> {
    let Value::Object(map) = body else { return None };
    let fields = field_names::<T>();
    let known = |k: &str| fields.iter().chain(also).any(|f| f.eq_ignore_ascii_case(k));
    map.keys().find(|k| !known(k)).cloned()
}

/// The serde field names of struct `T` (empty for anything that is not a struct).
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that records the field list `deserialize_struct` is given, then fails.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug, thiserror::Error)]
#[error("field names read")]
struct Stop;

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_msg: M) -> Self {
        Self
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::{canonical_keys, unknown_key};

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Body {
        #[serde(rename = "ID")]
        id: String,
        name: String,
        rules: String,
    }

    #[test]
    fn keys_match_fields_in_any_case_exact_wins_unknown_kept() {
        let v = canonical_keys::<Body>(json!({"name": "p", "RULES": "r", "id": "i", "Other": 1}));
        assert_eq!(v, json!({"Name": "p", "Rules": "r", "ID": "i", "Other": 1}));
        let v = canonical_keys::<Body>(json!({"name": "lower", "Name": "exact"}));
        assert_eq!(v, json!({"Name": "exact"}));
        assert_eq!(canonical_keys::<Body>(json!([1])), json!([1]));
    }

    #[test]
    fn unknown_keys_are_named_known_ones_in_any_case_are_not() {
        assert_eq!(unknown_key::<Body>(&json!({"name": "p", "HASH": "h"}), &["Hash"]), None);
        assert_eq!(
            unknown_key::<Body>(&json!({"Name": "p", "Bogus": 1}), &["Hash"]).as_deref(),
            Some("Bogus")
        );
        assert_eq!(unknown_key::<Body>(&json!("x"), &[]), None);
    }
}
