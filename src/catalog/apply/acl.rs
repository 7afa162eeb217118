//! ACL transitions (part of `apply`, so deterministic: times and IDs come in the command).
//!
//! Consul's rules that depend on the state (`agent/consul/acl_endpoint.go`, `state/acl.go`):
//! unique names, AccessorIDs and SecretIDs; policy and role links resolved by ID or name at
//! write time (`No such ACL policy with name "x"`); a token's SecretID, Local flag and
//! expiration fixed at creation; the built-in policy's Rules and Datacenters immutable and
//! both built-ins undeletable; bootstrap once, then again only with the reset index. Every
//! applied ACL write moves the ACL index and rewrites the ACL row (`Change::Acl`).

use crate::acl::{ANONYMOUS_TOKEN_ACCESSOR_ID, GLOBAL_MANAGEMENT_POLICY_ID};
use crate::catalog::acl::{
    AclLink, AclPolicy, AclRole, AclState, AclToken, anonymous_token, global_management_policy,
};
use crate::catalog::{AclCommand, CatalogState, Change};

/// Applies one ACL write at `index`.
pub(super) fn apply_acl(
    state: &mut CatalogState,
    index: u64,
    cmd: &AclCommand,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    let acl = state.acl_mut();
    let changed = match cmd {
        AclCommand::InitBuiltins { now_ms } => init_builtins(acl, index, *now_ms),
        AclCommand::Bootstrap { token, reset_index } => bootstrap(acl, index, token, *reset_index)?,
        AclCommand::TokenSet { token, update } => token_set(acl, index, token, *update)?,
        AclCommand::TokenDelete(id) => {
            if id == ANONYMOUS_TOKEN_ACCESSOR_ID {
                return Err("Delete operation not permitted on the anonymous token".into());
            }
            acl.remove_token(id)
        }
        AclCommand::PolicySet { policy, update } => policy_set(acl, index, policy, *update)?,
        AclCommand::PolicyDelete(id) => {
            if id == GLOBAL_MANAGEMENT_POLICY_ID {
                return Err("Delete operation not permitted on the builtin global-management policy".into());
            }
            acl.remove_policy(id)
        }
        AclCommand::RoleSet { role, update } => role_set(acl, index, role, *update)?,
        AclCommand::RoleDelete(id) => acl.remove_role(id),
    };
    if changed {
        acl.touch(index);
        changes.push(Change::Acl);
    }
    Ok(())
}

fn init_builtins(acl: &mut AclState, index: u64, now_ms: u64) -> bool {
    let mut changed = false;
    if acl.policy(GLOBAL_MANAGEMENT_POLICY_ID).is_none() {
        acl.put_policy(global_management_policy(index));
        changed = true;
    }
    if acl.token(ANONYMOUS_TOKEN_ACCESSOR_ID).is_none() {
        acl.put_token(anonymous_token(index, now_ms));
        changed = true;
    }
    changed
}

fn bootstrap(acl: &mut AclState, index: u64, token: &AclToken, reset: Option<u64>) -> Result<bool, String> {
    if let Some(n) = acl.bootstrap_index() {
        match reset {
            Some(r) if r == n => {}
            Some(r) => {
                return Err(format!("Invalid bootstrap reset index (specified {r}, reset index: {n})"));
            }
            None => return Err(format!("ACL bootstrap no longer allowed (reset index: {n})")),
        }
    }
    // The built-ins first, so a bootstrap racing the leader's own proposal still links
    // `global-management`; idempotent (creates only what is missing).
    let mut probe = acl.clone();
    init_builtins(&mut probe, index, token.create_time_ms);
    token_set(&mut probe, index, token, false)?;
    probe.set_bootstrapped(index);
    *acl = probe;
    Ok(true)
}

/// Resolves links given by ID or by name (an empty ID) to `{ID, Name}`, dropping duplicates.
fn resolve_links(
    links: &[AclLink],
    kind: &str,
    by_id: impl Fn(&str) -> Option<String>,
    by_name: impl Fn(&str) -> Option<String>,
) -> Result<Vec<AclLink>, String> {
    let mut out: Vec<AclLink> = Vec::new();
    for l in links {
        let link = if l.id.is_empty() {
            let id = by_name(&l.name).ok_or_else(|| format!("No such ACL {kind} with name {:?}", l.name))?;
            AclLink { id, name: l.name.clone() }
        } else {
            let name = by_id(&l.id).ok_or_else(|| format!("No such ACL {kind} with ID {:?}", l.id))?;
            AclLink { id: l.id.clone(), name }
        };
        if !out.iter().any(|o| o.id == link.id) {
            out.push(link);
        }
    }
    Ok(out)
}

fn policy_links(acl: &AclState, links: &[AclLink]) -> Result<Vec<AclLink>, String> {
    resolve_links(
        links,
        "policy",
        |id| acl.policy(id).map(|p| p.name.clone()),
        |name| acl.policy_by_name(name).map(|p| p.id.clone()),
    )
}

fn token_set(acl: &mut AclState, index: u64, given: &AclToken, update: bool) -> Result<bool, String> {
    let mut t = given.clone();
    t.policies = policy_links(acl, &given.policies)?;
    t.roles = resolve_links(
        &given.roles,
        "role",
        |id| acl.role(id).map(|r| r.name.clone()),
        |name| acl.role_by_name(name).map(|r| r.id.clone()),
    )?;
    match (update, acl.token(&t.accessor_id)) {
        (false, Some(_)) => return Err("Invalid Token: AccessorID is already in use".into()),
        (false, None) => {
            if acl.token_by_secret(&t.secret_id).is_some() {
                return Err("Invalid Token: SecretID is already in use".into());
            }
            t.create_index = index;
        }
        (true, None) => return Err(format!("Cannot find token {:?}", t.accessor_id)),
        (true, Some(old)) => {
            if t.secret_id.is_empty() {
                t.secret_id = old.secret_id.clone();
            } else if t.secret_id != old.secret_id {
                return Err("Changing a tokens SecretID is not permitted".into());
            }
            if t.local != old.local {
                return Err(format!("Cannot toggle local mode of {}", t.accessor_id));
            }
            match t.expiration_time_ms {
                None => t.expiration_time_ms = old.expiration_time_ms,
                Some(e) if Some(e) != old.expiration_time_ms => {
                    return Err(format!("Cannot change expiration time of {}", t.accessor_id));
                }
                Some(_) => {}
            }
            t.create_time_ms = old.create_time_ms;
            t.create_index = old.create_index;
            // An update through the current API keeps a legacy token's type and rules.
            if t.legacy_type.is_empty() {
                t.legacy_type.clone_from(&old.legacy_type);
                t.rules.clone_from(&old.rules);
            }
        }
    }
    t.modify_index = index;
    acl.put_token(t);
    Ok(true)
}

fn policy_set(acl: &mut AclState, index: u64, given: &AclPolicy, update: bool) -> Result<bool, String> {
    let mut p = given.clone();
    if acl.policy_by_name(&p.name).is_some_and(|o| o.id != p.id) {
        return Err(format!("Invalid Policy: A Policy with Name {:?} already exists", p.name));
    }
    match (update, acl.policy(&p.id)) {
        (false, Some(_)) => {
            return Err(format!("Invalid Policy: A Policy with ID {:?} already exists", p.id));
        }
        (false, None) => p.create_index = index,
        (true, None) => return Err(format!("Cannot find policy {:?}", p.id)),
        (true, Some(old)) => {
            if p.id == GLOBAL_MANAGEMENT_POLICY_ID {
                if p.rules != old.rules {
                    return Err(
                        "Changing the Rules for the builtin global-management policy is not permitted".into(),
                    );
                }
                if p.datacenters != old.datacenters {
                    return Err(
                        "Changing the Datacenters of the builtin global-management policy is not permitted"
                            .into(),
                    );
                }
            }
            p.create_index = old.create_index;
        }
    }
    p.modify_index = index;
    acl.put_policy(p);
    Ok(true)
}

fn role_set(acl: &mut AclState, index: u64, given: &AclRole, update: bool) -> Result<bool, String> {
    let mut r = given.clone();
    if acl.role_by_name(&r.name).is_some_and(|o| o.id != r.id) {
        return Err(format!("Invalid Role: A Role with Name {:?} already exists", r.name));
    }
    r.policies = policy_links(acl, &given.policies)?;
    match (update, acl.role(&r.id)) {
        (false, Some(_)) => return Err(format!("Invalid Role: A Role with ID {:?} already exists", r.id)),
        (false, None) => r.create_index = index,
        (true, None) => return Err(format!("Cannot find role {:?}", r.id)),
        (true, Some(old)) => r.create_index = old.create_index,
    }
    r.modify_index = index;
    acl.put_role(r);
    Ok(true)
}
