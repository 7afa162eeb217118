//! The endpoint schemas against answers recorded from Consul 1.8.7: each recorded filter, run
//! on the items Consul returned unfiltered, keeps the items Consul kept, or fails with Consul's
//! text.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{AGENT_SERVICE, CHECK_SERVICE_NODE, HEALTH_CHECK, ItemFilter};
use crate::http::error::ApiError;
use crate::http::query::Query;

fn query(expr: &str) -> Query {
    let encoded: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("filter", expr).finish();
    Query::parse(Some(&encoded))
}

fn recorded(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn agent_services_answer_as_consul_1_8_7() {
    let golden = recorded(include_str!("consul_agent_services.json"));
    let items: BTreeMap<String, Value> = serde_json::from_value(golden["items"].clone()).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let expr = case["expr"].as_str().unwrap();
        let got =
            ItemFilter::from_query(&query(expr), AGENT_SERVICE).and_then(|f| f.retain_map(items.clone()));
        match got {
            Ok(kept) => {
                assert_eq!(case["status"], 200, "{expr:?} kept {:?}", kept.keys());
                let want: Vec<&str> =
                    case["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(kept.keys().map(String::as_str).collect::<Vec<_>>(), want, "{expr:?}");
            }
            Err(e) => {
                assert_eq!(e.status().as_u16(), case["status"], "{expr:?}: {e}");
                assert_eq!(e.to_string(), case["body"].as_str().unwrap(), "{expr:?}");
            }
        }
    }
}

#[test]
fn health_service_entries_answer_as_consul_1_8_7() {
    let golden = recorded(include_str!("consul_health_service.json"));
    let items: Vec<Value> = serde_json::from_value(golden["items"].clone()).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let expr = case["expr"].as_str().unwrap();
        let got =
            ItemFilter::from_query(&query(expr), CHECK_SERVICE_NODE).and_then(|f| f.retain(items.clone()));
        match got {
            Ok(kept) => {
                let ids: Vec<&str> = kept.iter().map(|e| e["Service"]["ID"].as_str().unwrap()).collect();
                let want: Vec<&str> =
                    case["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(ids, want, "{expr:?}");
            }
            Err(e) => assert_eq!(e.to_string(), case["body"].as_str().unwrap(), "{expr:?}"),
        }
    }
}

#[test]
fn agent_services_through_a_null_proxy_is_a_500_not_a_panic() {
    let golden = recorded(include_str!("consul_agent_services.json"));
    let items: BTreeMap<String, Value> = serde_json::from_value(golden["items"].clone()).unwrap();
    let f = ItemFilter::from_query(&query(r#"Proxy.DestinationServiceName == """#), AGENT_SERVICE).unwrap();
    let err = f.retain_map(items).unwrap_err();
    assert!(matches!(err, ApiError::Internal(_)), "{err:?}");
}

#[test]
fn agent_checks_validate_selectors_only_with_a_check_and_without_the_prefix() {
    let f = ItemFilter::deferred_from_query(&query("Foo == 1"), HEALTH_CHECK).unwrap();
    assert!(f.retain_map(BTreeMap::<String, Value>::new()).unwrap().is_empty());
    let one = BTreeMap::from([("c".to_owned(), serde_json::json!({"Status": "passing"}))]);
    assert_eq!(f.retain_map(one).unwrap_err().to_string(), r#"Selector "Foo" is not valid"#);
    let syntax = ItemFilter::deferred_from_query(&query("Foo =="), HEALTH_CHECK).unwrap_err();
    assert!(
        syntax.to_string().starts_with("Failed to create boolean expression evaluator: 1:7 (6): no match")
    );
}

#[test]
fn no_or_an_empty_filter_keeps_everything() {
    let items = vec![serde_json::json!({"Node": "a"})];
    for q in [Query::parse(None), query("")] {
        assert_eq!(ItemFilter::from_query(&q, HEALTH_CHECK).unwrap().retain(items.clone()).unwrap(), items);
    }
}
