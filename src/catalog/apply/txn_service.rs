//! Service verbs of a transaction (part of `apply`, so deterministic): `set`, `cas`, `delete`,
//! `delete-cas` on one `(node, service ID)`, with Consul 1.8.7's outcomes and messages (live):
//! a write needs the node ("Missing node registration"), `cas` 0 creates only, a mismatched
//! index is "index is stale", a `delete` of an absent instance succeeds and returns no result,
//! a `delete-cas` of one fails. A deleted instance takes its checks with it.

use crate::catalog::command::TxnResult;
use crate::catalog::{CatalogState, Change, Service};

/// `set` (no `cas`) or `cas` with the expected ModifyIndex.
pub(super) fn set(
    state: &mut CatalogState,
    index: u64,
    s: &Service,
    cas: Option<u64>,
    changes: &mut Vec<Change>,
) -> Result<Vec<TxnResult>, String> {
    if s.id.is_empty() {
        return Err("failed inserting service: object missing primary index".into());
    }
    super::check_len("Service name", &s.name)?;
    super::check_len("Service ID", &s.id)?;
    let Some(node) = state.node(&s.node).map(|n| n.name.clone()) else {
        return Err("Missing node registration".into());
    };
    if let Some(want) = cas {
        let current = state.service(&node, &s.id).map(|old| old.modify_index);
        let fresh = match current {
            None => want == 0,
            Some(m) => want != 0 && m == want,
        };
        if !fresh {
            return Err(format!("failed to set service {:?} on node {:?}, index is stale", s.id, s.node));
        }
    }
    let mut s = s.clone();
    s.node = node;
    let (node, id) = (s.node.clone(), s.id.clone());
    state.upsert_service(index, s, changes);
    Ok(vec![TxnResult::Service(node, id)])
}

/// `delete` (no `cas`) or `delete-cas` with the expected ModifyIndex.
pub(super) fn delete(
    state: &mut CatalogState,
    index: u64,
    s: &Service,
    cas: Option<u64>,
    changes: &mut Vec<Change>,
) -> Result<Vec<TxnResult>, String> {
    if let Some(want) = cas {
        let current = state.service(&s.node, &s.id).map(|old| old.modify_index);
        if current != Some(want) {
            return Err(format!("failed to delete service {:?} on node {:?}, index is stale", s.id, s.node));
        }
    }
    state.delete_service(index, &s.node, &s.id, changes);
    Ok(Vec::new())
}
