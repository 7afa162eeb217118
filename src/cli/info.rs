//! `cairn info` (`GET /v1/agent/self`, printed as `consul info` does: one section per group,
//! `key = value` lines) and `cairn reload` (`PUT /v1/agent/reload`, the same reload as SIGHUP).

use serde_json::Value;

use super::api::{Api, ApiError};

/// `cairn info`.
pub async fn info(api: &Api) -> Result<String, ApiError> {
    let me: Value = api.get("/v1/agent/self").await?.json()?;
    Ok(render(&me))
}

/// `cairn reload`.
pub async fn reload(api: &Api) -> Result<String, ApiError> {
    api.put("/v1/agent/reload", Vec::new()).await?;
    Ok("Configuration reload triggered\n".into())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `Config` and every object under `Stats`, as `section:` then sorted `\tkey = value` lines.
fn render(me: &Value) -> String {
    let mut sections: Vec<(String, &serde_json::Map<String, Value>)> = Vec::new();
    if let Some(Value::Object(c)) = me.get("Config") {
        sections.push(("agent".into(), c));
    }
    if let Some(Value::Object(stats)) = me.get("Stats") {
        for (name, v) in stats {
            if let Value::Object(m) = v {
                sections.push((name.clone(), m));
            }
        }
    }
    let mut out = String::new();
    for (name, map) in sections {
        out.push_str(&format!("{name}:\n"));
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            if let Some(v) = map.get(k).filter(|v| !v.is_object() && !v.is_array()) {
                out.push_str(&format!("\t{k} = {}\n", scalar(v)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sections() {
        let me = serde_json::json!({
            "Config": {"NodeName": "n1", "Datacenter": "dc1", "Server": true},
            "Stats": {"raft": {"state": "Leader", "term": "2"}},
        });
        assert_eq!(
            render(&me),
            "agent:\n\tDatacenter = dc1\n\tNodeName = n1\n\tServer = true\nraft:\n\tstate = Leader\n\tterm = 2\n"
        );
    }
}
