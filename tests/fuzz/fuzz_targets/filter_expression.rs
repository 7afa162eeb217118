//! Fuzz target: any bytes as a `?filter=` expression, which arrives over HTTP on every list
//! endpoint, through the go-bexpr parser, the validator and the evaluator
//! (`cairn::testing::filter_fuzz_logic`). A finding is a panic, an empty error text, a tree
//! whose printed form does not parse back to it, or `not e` not negating `e`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::testing::filter_fuzz_logic::expression_text(data);
});
