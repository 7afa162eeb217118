//! Fuzz target: any bytes through parse -> route -> answer -> encode against a fixed catalog
//! (`cairn::dns::fuzz_logic`); a panic or an undecodable reply is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::dns::fuzz_logic::request_path(data);
});
