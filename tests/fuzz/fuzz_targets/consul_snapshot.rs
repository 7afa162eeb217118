//! Fuzz target: any bytes as a snapshot file (`PUT /v1/snapshot`, `cairn snapshot restore`):
//! Consul's gzip'd tar archive, its msgpack FSM records, or cairn's own format
//! (`cairn::testing::snapshot_fuzz_logic`). A finding is a panic, an empty error text, `load`
//! and `inspect` disagreeing, or records read differently through an archive.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::testing::snapshot_fuzz_logic::snapshot_file(data);
});
