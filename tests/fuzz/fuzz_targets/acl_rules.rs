//! Fuzz target: any bytes as an ACL policy's Rules text, which arrives over HTTP
//! (`PUT /v1/acl/policy`), through the HCL/JSON parser and, when it parses, the authorizer
//! checked against the reference evaluation (`cairn::testing::acl_fuzz_logic`). A finding is
//! a panic, a `list` on a non-key rule, or an authorizer answer the reference disagrees with.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::testing::acl_fuzz_logic::rules_text(data);
});
