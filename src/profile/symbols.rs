//! Code addresses → function names, files and lines, for the profiles cairn builds itself
//! (heap, threads); the CPU profile's are resolved by pprof-rs the same way (backtrace-rs over
//! the binary's DWARF, demangled).

/// One (possibly inlined) frame at an address.
pub(crate) struct Frame {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// The frames at `ip`, innermost (inlined) first. A return address (`leaf` false) is looked
/// up one byte back, inside the call instruction. An address no symbol covers gets its hex.
pub(crate) fn resolve(ip: u64, leaf: bool) -> Vec<Frame> {
    let at = if leaf { ip } else { ip.saturating_sub(1) };
    let mut frames = Vec::new();
    backtrace::resolve(at as usize as *mut std::ffi::c_void, |sym| {
        frames.push(Frame {
            name: sym.name().map_or_else(|| format!("{ip:#x}"), |n| format!("{n:#}")),
            file: sym.filename().map(|p| p.display().to_string()).unwrap_or_default(),
            line: sym.lineno().unwrap_or(0),
        });
    });
    if frames.is_empty() {
        frames.push(Frame { name: format!("{ip:#x}"), file: String::new(), line: 0 });
    }
    frames
}
