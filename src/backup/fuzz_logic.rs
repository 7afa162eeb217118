//! FUZZING ENTRY: arbitrary bytes as a snapshot file, which arrives over HTTP
//! (`PUT /v1/snapshot`) and from disk (`cairn snapshot restore|inspect`).
//!
//! Input: the first byte selects what the rest is: bit 0 clear, a whole file (either format,
//! told apart as `load` does); bit 0 set, a Consul `state.bin`, which is then also wrapped
//! into a valid archive so the msgpack records reach the importer past the checksums.
//! Output: nothing; it panics only when an invariant breaks (a panic inside the gzip, tar,
//! msgpack or record readers is the other finding).
//!
//! Invariants checked: `load` and `inspect` agree (both accept or both refuse, on the same
//! index); an error text is never empty; a `state.bin` read directly and read through a valid
//! archive gives the same catalog. Used by the cargo-fuzz target
//! `tests/fuzz/fuzz_targets/consul_snapshot.rs` and by the proptests in `consul_tests.rs`.

use super::{Loaded, archive, consul_read, inspect, load};

/// Checks the invariants above on `data`.
pub fn snapshot_file(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        whole_file(rest);
    } else {
        state_bin(rest);
    }
}

fn whole_file(file: &[u8]) {
    let loaded = load(file, 7, "dc1");
    let inspected = inspect(file);
    match (&loaded, &inspected) {
        (Ok(l), Ok(i)) => {
            let index = match l {
                Loaded::Cairn(b) => b.index,
                Loaded::Consul { meta, .. } => meta.index,
            };
            assert_eq!(index, i.index, "load and inspect read different indexes");
        }
        (Err(a), Err(b)) => assert!(!a.to_string().is_empty() && !b.to_string().is_empty(), "empty error"),
        (a, b) => panic!("load and inspect disagree: {:?} / {:?}", a.as_ref().err(), b.as_ref().err()),
    }
}

fn state_bin(state: &[u8]) {
    let direct = consul_read::import(state, 7, "dc1");
    if let Err(e) = &direct {
        assert!(!e.to_string().is_empty(), "empty error");
    }
    let meta = archive::Meta { version: 1, id: "1-1-1".into(), index: 1, term: 1, size: 0 };
    let Ok(file) = archive::write(&meta, state, 0) else { panic!("an archive of any bytes can be written") };
    match (direct, load(&file, 7, "dc1")) {
        (Ok(d), Ok(Loaded::Consul { import, .. })) => {
            assert_eq!(d.dump, import.dump, "the archive changed the records")
        }
        (Err(_), Err(_)) => {}
        (d, l) => {
            panic!("state.bin read directly and through an archive disagree: {:?} / {:?}", d.err(), l.err())
        }
    }
}
