//! `cairn services register FILE` and `cairn services deregister ID`: a service definition
//! file (TOML or JSON, the format of the agent's config files) registered with, or removed
//! from, the local agent (`PUT /v1/agent/service/register`, `.../deregister/ID`).
//!
//! A file may hold one definition under `service`, several under `services`, or a bare one;
//! each is checked locally with the agent's own decoder before anything is sent.

use std::path::Path;

use serde_json::Value;

use super::api::{Api, ApiError};

/// Why `services register` failed.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The file could not be read or parsed.
    #[error("{file}: {msg}")]
    File {
        /// The file.
        file: String,
        /// What was wrong.
        msg: String,
    },
    /// The agent refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The service definitions in `text` (a file named `file`, `.json` or TOML otherwise).
pub fn definitions(file: &Path, text: &str) -> Result<Vec<Value>, ServicesError> {
    let err = |msg: String| ServicesError::File { file: file.display().to_string(), msg };
    let root: Value = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| err(e.to_string()))?
    } else {
        let t: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        serde_json::to_value(t).map_err(|e| err(e.to_string()))?
    };
    let Value::Object(mut top) = root else { return Err(err("the top level must be a table/object".into())) };
    let defs = match (top.remove("service"), top.remove("services")) {
        (None, None) => vec![Value::Object(top)],
        (one, many) => {
            let mut defs = Vec::new();
            for v in one.into_iter().chain(many) {
                match v {
                    Value::Array(items) => defs.extend(items),
                    other => defs.push(other),
                }
            }
            defs
        }
    };
    for (i, d) in defs.iter().enumerate() {
        crate::agent::decode_service_definition(d).map_err(|e| err(format!("service {}: {e}", i + 1)))?;
    }
    Ok(defs)
}

/// Registers every definition in `file`; returns one line per service.
pub async fn register(api: &Api, file: &Path) -> Result<String, ServicesError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ServicesError::File { file: file.display().to_string(), msg: e.to_string() })?;
    let mut out = String::new();
    for def in definitions(file, &text)? {
        api.put("/v1/agent/service/register", def.to_string().into_bytes()).await?;
        let name = def.get("name").or_else(|| def.get("Name")).and_then(Value::as_str).unwrap_or("?");
        out.push_str(&format!("Registered service: {name}\n"));
    }
    Ok(out)
}

/// Deregisters the service with ID `id` from the local agent.
pub async fn deregister(api: &Api, id: &str) -> Result<String, ServicesError> {
    api.put(&format!("/v1/agent/service/deregister/{id}"), Vec::new()).await?;
    Ok(format!("Deregistered service: {id}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, text: &str, count: usize) {
        let defs = definitions(Path::new(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(defs.len(), count, "{name}");
    }

    #[test]
    fn file_shapes() {
        check("a.toml", "[service]\nname = \"web\"\nport = 80\n", 1);
        check("b.toml", "[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\n", 2);
        check("c.json", r#"{"Name": "web", "Port": 80}"#, 1);
        check("d.json", r#"{"service": {"name": "web"}}"#, 1);
        let bad = definitions(Path::new("e.json"), r#"{"service": {"name": "web", "port": "x"}}"#);
        assert!(bad.unwrap_err().to_string().contains("e.json"));
    }
}
