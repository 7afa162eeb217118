//! Fuzz target: any bytes as legacy ACL rules, which arrive over HTTP
//! (`POST /v1/acl/rules/translate`), through the translator; when the text also parses as
//! legacy rules, the translation must parse as current rules with the same meaning
//! (`cairn::testing::acl_fuzz_logic::translate_text`). A finding is a panic or a mismatch.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::testing::acl_fuzz_logic::translate_text(data);
});
