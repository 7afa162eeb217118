//! Fuzz target: any bytes through parse -> route -> answer -> encode against a fixed catalog,
//! over UDP, TCP or a TCP frame stream (`cairn::testing::fuzz_logic`). A finding is a panic, or a
//! reply that breaks an invariant: undecodable, QR=0, another ID or opcode, Z set, question
//! or OPT not echoed, or over the transport's size limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::testing::fuzz_logic::request_path(data);
});
