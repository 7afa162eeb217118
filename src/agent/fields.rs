//! Case-insensitive JSON object reader with Go `encoding/json` + `DisallowUnknownFields` rules.
//!
//! Input: a `serde_json::Value` object → typed field values, taken one by one by name.
//! Invariants: names match case-insensitively and ignoring `_` (so snake_case aliases such as
//! `deregister_critical_service_after` match `DeregisterCriticalServiceAfter`); a JSON `null`
//! counts as absent (Go leaves the field unset); `finish` rejects the first field nobody took
//! with Go's `json: unknown field "X"`; type errors read like Go's unmarshal errors.
//! Map values (Meta, TaggedAddresses) keep their keys verbatim.
//!
//! Why not `#[derive(Deserialize)]`: serde matches names exactly (aliases list spellings one
//! by one), while Go matches any case, and Consul's clients see Go's error texts; this reader
//! gives both on top of serde_json's `Value`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::DefinitionError;
use crate::catalog::duration::parse_go_duration;

fn norm(s: &str) -> String {
    s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The fields of one JSON object, consumed by name.
#[derive(Debug)]
pub(crate) struct Fields {
    ty: &'static str,
    entries: Vec<(String, Value)>,
}

impl Fields {
    /// Reads `v` as the Go struct `ty`; `null` is an empty object.
    pub(crate) fn new(v: &Value, ty: &'static str) -> Result<Self, DefinitionError> {
        match v {
            Value::Object(m) => {
                Ok(Self { ty, entries: m.iter().map(|(k, v)| (k.clone(), v.clone())).collect() })
            }
            Value::Null => Ok(Self { ty, entries: Vec::new() }),
            other => Err(DefinitionError::Decode(format!(
                "json: cannot unmarshal {} into Go value of type structs.{ty}",
                kind(other)
            ))),
        }
    }

    fn type_error(&self, field: &str, v: &Value, want: &str) -> DefinitionError {
        DefinitionError::Decode(format!(
            "json: cannot unmarshal {} into Go struct field {}.{field} of type {want}",
            kind(v),
            self.ty
        ))
    }

    /// Removes every entry matching `names` (canonical first) and returns the last non-null one.
    pub(crate) fn take(&mut self, names: &[&str]) -> Option<Value> {
        let wanted: Vec<String> = names.iter().map(|n| norm(n)).collect();
        let mut found = None;
        self.entries.retain(|(k, v)| {
            if wanted.contains(&norm(k)) {
                if !v.is_null() {
                    found = Some(v.clone());
                }
                false
            } else {
                true
            }
        });
        found
    }

    /// Fails on the first field no `take` consumed.
    pub(crate) fn finish(self) -> Result<(), DefinitionError> {
        match self.entries.into_iter().next() {
            Some((k, _)) => Err(DefinitionError::UnknownField(k)),
            None => Ok(()),
        }
    }

    /// Discards fields the appliance accepts but does not use.
    pub(crate) fn ignore(&mut self, names: &[&str]) {
        for n in names {
            let _ = self.take(&[n]);
        }
    }

    pub(crate) fn string(&mut self, names: &[&str]) -> Result<Option<String>, DefinitionError> {
        match self.take(names) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.type_error(names[0], &v, "string")),
        }
    }

    pub(crate) fn bool(&mut self, names: &[&str]) -> Result<Option<bool>, DefinitionError> {
        match self.take(names) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(self.type_error(names[0], &v, "bool")),
        }
    }

    pub(crate) fn int(&mut self, names: &[&str]) -> Result<Option<i64>, DefinitionError> {
        match self.take(names) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => Err(self.type_error(names[0], &Value::Number(n), "int")),
            },
            Some(v) => Err(self.type_error(names[0], &v, "int")),
        }
    }

    pub(crate) fn strings(&mut self, names: &[&str]) -> Result<Vec<String>, DefinitionError> {
        match self.take(names) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    other => Err(self.type_error(names[0], &other, "string")),
                })
                .collect(),
            Some(v) => Err(self.type_error(names[0], &v, "[]string")),
        }
    }

    pub(crate) fn string_map(&mut self, names: &[&str]) -> Result<BTreeMap<String, String>, DefinitionError> {
        match self.take(names) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(self.type_error(names[0], &other, "string")),
                })
                .collect(),
            Some(v) => Err(self.type_error(names[0], &v, "map[string]string")),
        }
    }

    /// A raw object whose keys are kept verbatim (maps of structs).
    pub(crate) fn object_map(&mut self, names: &[&str]) -> Result<Vec<(String, Value)>, DefinitionError> {
        match self.take(names) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => Ok(m.into_iter().collect()),
            Some(v) => Err(self.type_error(names[0], &v, "map")),
        }
    }

    /// A Go duration: a string such as `"10s"` or a number of nanoseconds.
    pub(crate) fn duration(&mut self, names: &[&str]) -> Result<Duration, DefinitionError> {
        match self.take(names) {
            None => Ok(Duration::ZERO),
            Some(Value::String(s)) => parse_go_duration(&s).map_err(DefinitionError::Decode),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if i >= 0 => Ok(Duration::from_nanos(i.unsigned_abs())),
                Some(_) => Ok(Duration::ZERO),
                None => Err(self.type_error(names[0], &Value::Number(n), "time.Duration")),
            },
            Some(v) => Err(self.type_error(names[0], &v, "time.Duration")),
        }
    }
}
