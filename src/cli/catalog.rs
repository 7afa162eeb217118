//! `cairn catalog datacenters|nodes|services`: what `consul catalog` prints, read from the
//! local agent (`GET /v1/catalog/...`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::{Api, ApiError};
use super::table;

/// `cairn catalog datacenters`: one per line.
pub async fn datacenters(api: &Api) -> Result<String, ApiError> {
    let dcs: Vec<String> = api.get("/v1/catalog/datacenters").await?.json()?;
    Ok(lines(dcs))
}

/// `cairn catalog services [--tags]`: one name per line, sorted (with its tags).
pub async fn services(api: &Api, tags: bool) -> Result<String, ApiError> {
    let services: BTreeMap<String, Vec<String>> = api.get("/v1/catalog/services").await?.json()?;
    Ok(render_services(&services, tags))
}

/// `cairn catalog nodes`: a table of node, ID, address and datacenter.
pub async fn nodes(api: &Api) -> Result<String, ApiError> {
    let nodes: Vec<Value> = api.get("/v1/catalog/nodes").await?.json()?;
    Ok(render_nodes(&nodes))
}

fn lines(items: Vec<String>) -> String {
    items.into_iter().map(|s| s + "\n").collect()
}

fn render_services(services: &BTreeMap<String, Vec<String>>, tags: bool) -> String {
    if !tags {
        return lines(services.keys().cloned().collect());
    }
    let width = services.keys().map(String::len).max().unwrap_or(0);
    services.iter().map(|(name, t)| format!("{name:width$}  {}\n", t.join(","))).collect()
}

fn render_nodes(nodes: &[Value]) -> String {
    let field = |n: &Value, k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut rows = vec![["Node".to_string(), "ID".into(), "Address".into(), "DC".into()]];
    for n in nodes {
        let id: String = field(n, "ID").chars().take(8).collect();
        rows.push([field(n, "Node"), id, field(n, "Address"), field(n, "Datacenter")]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_render() {
        let mut s = BTreeMap::new();
        s.insert("web".to_string(), vec!["v1".to_string(), "eu".to_string()]);
        s.insert("consul".to_string(), vec![]);
        assert_eq!(render_services(&s, false), "consul\nweb\n");
        assert_eq!(render_services(&s, true), "consul  \nweb     v1,eu\n");
    }

    #[test]
    fn nodes_render() {
        let n = serde_json::json!([{"Node": "node1", "ID": "0123456789abcdef", "Address": "127.0.0.1", "Datacenter": "dc1"}]);
        assert_eq!(
            render_nodes(n.as_array().unwrap()),
            "Node   ID        Address    DC\nnode1  01234567  127.0.0.1  dc1\n"
        );
    }
}
