//! `cairn assets DIR` (hidden): writes the man page (`cairn.1`) and the shell completions
//! (`cairn.bash`, `_cairn`, `cairn.fish`) generated from the command line definition, for the
//! packages (`packaging/build`).

use std::path::Path;

use clap::CommandFactory as _;
use clap_complete::Shell;

use super::Cli;

/// Writes the assets into `dir` (created if needed); returns the files written.
pub fn write(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let cmd = Cli::command();
    let man = dir.join("cairn.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(&man, page)?;
    written.push(man);
    for (shell, file) in [(Shell::Bash, "cairn.bash"), (Shell::Zsh, "_cairn"), (Shell::Fish, "cairn.fish")] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "cairn", &mut out);
        let path = dir.join(file);
        std::fs::write(&path, out)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_man_page_and_completions() {
        let d = tempfile::tempdir().unwrap();
        let files = super::write(d.path()).unwrap();
        assert_eq!(files.len(), 4);
        let man = std::fs::read_to_string(d.path().join("cairn.1")).unwrap();
        assert!(man.contains(".TH cairn") && man.contains("validate"), "{man}");
        let bash = std::fs::read_to_string(d.path().join("cairn.bash")).unwrap();
        assert!(bash.contains("catalog"));
    }
}
