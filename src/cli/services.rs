//! `cairn services register` and `cairn services deregister`, as Consul's `consul services`:
//! a service given by flags (`-name=web -port=80 -tag=a -meta k=v -address -id -kind
//! -tagged-address lan=10.0.0.1:80`) or by definition files (TOML or JSON, the format of the
//! agent's config files), registered with or removed from the local agent
//! (`PUT /v1/agent/service/register`, `.../deregister/ID`).
//!
//! A file may hold one definition under `service`, several under `services`, or a bare one;
//! each is checked locally with the agent's own decoder before anything is sent. Consul's
//! usage rules and texts: flags or files, not both; deregistration by `-id` or by the files'
//! IDs (else names). cairn's older `services deregister ID` still works: a positional argument
//! that is not an existing file is taken as a service ID.

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
    /// Consul's line for a usage error or a refused registration, printed as it is.
    #[error("{0}")]
    Usage(String),
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

/// `cairn services register` flags (Consul's).
#[derive(Debug, Default, clap::Args)]
pub struct RegisterArgs {
    /// ID of the service (default: the name).
    #[arg(long, default_value = "")]
    pub id: String,
    /// Name of the service to register.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Address of the service.
    #[arg(long, default_value = "")]
    pub address: String,
    /// Port of the service.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Metadata as key=value (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// A tag (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// A tagged address as key=host:port (repeatable).
    #[arg(long, value_name = "KEY=HOST:PORT")]
    pub tagged_address: Vec<String>,
    /// The service's kind (e.g. connect-proxy).
    #[arg(long, default_value = "")]
    pub kind: String,
    /// Service definition files (instead of the flags).
    pub files: Vec<std::path::PathBuf>,
}

fn usage(msg: &str) -> ServicesError {
    ServicesError::Usage(msg.to_owned())
}

/// Consul's `FlagMapValue`: `key=value` pairs.
fn pairs(flag: &str, values: &[String]) -> Result<serde_json::Map<String, Value>, ServicesError> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), Value::from(v))),
            None => Err(usage(&format!(
                "invalid value {v:?} for flag -{flag}: Missing \"=\" value in argument: {v}"
            ))),
        })
        .collect()
}

/// The registration the flags describe (Consul's JSON, empty fields left out).
fn from_flags(args: &RegisterArgs) -> Result<Value, ServicesError> {
    let mut tagged = serde_json::Map::new();
    for (k, v) in pairs("tagged-address", &args.tagged_address)? {
        let text = v.as_str().unwrap_or_default();
        let (host, port) = text
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.trim_matches(['[', ']']), p)))
            .ok_or_else(|| {
                usage(&format!("Invalid Tagged Address: address {text}: missing port in address"))
            })?;
        tagged.insert(k, serde_json::json!({ "Address": host, "Port": port }));
    }
    let mut def = serde_json::Map::new();
    for (k, v) in [("Kind", &args.kind), ("ID", &args.id), ("Name", &args.name), ("Address", &args.address)] {
        if !v.is_empty() {
            def.insert(k.to_owned(), v.clone().into());
        }
    }
    if !args.tag.is_empty() {
        def.insert("Tags".into(), args.tag.clone().into());
    }
    if args.port != 0 {
        def.insert("Port".into(), args.port.into());
    }
    if !tagged.is_empty() {
        def.insert("TaggedAddresses".into(), tagged.into());
    }
    let meta = pairs("meta", &args.meta)?;
    if !meta.is_empty() {
        def.insert("Meta".into(), meta.into());
    }
    Ok(Value::Object(def))
}

/// The definitions in `file`; an error is Consul's `Error: …` line.
fn read(file: &Path) -> Result<Vec<Value>, ServicesError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ServicesError::File { file: file.display().to_string(), msg: e.to_string() });
    text.and_then(|t| definitions(file, &t)).map_err(|e| usage(&format!("Error: {e}")))
}

fn field<'a>(def: &'a Value, key: &str) -> &'a str {
    def.get(key).or_else(|| def.get(key.to_lowercase())).and_then(Value::as_str).unwrap_or_default()
}

/// Registers the service of the flags, or every definition in the files; one line each.
pub async fn register(api: &Api, args: &RegisterArgs) -> Result<String, ServicesError> {
    let defs = match (args.files.is_empty(), args.name.is_empty()) {
        (true, true) => return Err(usage("Service registration requires at least one argument or flags.")),
        (false, false) => return Err(usage("Service registration requires arguments or -id, not both.")),
        (true, false) => vec![from_flags(args)?],
        (false, true) => {
            let mut defs = Vec::new();
            for f in &args.files {
                defs.extend(read(f)?);
            }
            defs
        }
    };
    let mut out = String::new();
    for def in defs {
        let name = field(&def, "Name").to_owned();
        api.put("/v1/agent/service/register", def.to_string().into_bytes())
            .await
            .map_err(|e| usage(&format!("Error registering service {name:?}: {e}")))?;
        out.push_str(&format!("Registered service: {name}\n"));
    }
    Ok(out)
}

/// Deregisters the service `-id`, or those of the files (by ID, else name); one line each.
pub async fn deregister(api: &Api, id: &str, args: &[std::path::PathBuf]) -> Result<String, ServicesError> {
    let ids: Vec<(String, String)> = match (args.is_empty(), id.is_empty()) {
        (true, true) => return Err(usage("Service deregistration requires at least one argument or -id.")),
        (false, false) => return Err(usage("Service deregistration requires arguments or -id, not both.")),
        (true, false) => vec![(id.to_owned(), String::new())],
        (false, true) => {
            let mut ids = Vec::new();
            for f in args {
                if !f.exists() && f.components().count() == 1 {
                    // cairn's older form: `services deregister ID`.
                    ids.push((f.display().to_string(), String::new()));
                    continue;
                }
                for def in read(f)? {
                    let (id, name) = (field(&def, "ID"), field(&def, "Name"));
                    ids.push((if id.is_empty() { name } else { id }.to_owned(), name.to_owned()));
                }
            }
            ids
        }
    };
    let mut out = String::new();
    for (id, name) in ids.into_iter().filter(|(id, _)| !id.is_empty()) {
        api.put(&format!("/v1/agent/service/deregister/{}", super::event::segment(&id)), Vec::new())
            .await
            .map_err(|e| usage(&format!("Error registering service {name:?}: {e}")))?;
        out.push_str(&format!("Deregistered service: {id}\n"));
    }
    Ok(out)
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
