//! Command line, before clap: Consul's single-dash long flags (`-server -dc dc1 -days=365`)
//! rewritten to clap's double-dash spelling (`--server --dc dc1 --days=365`).
//!
//! Input: the raw argv and the clap `Command` tree it will be parsed with. Output: the same
//! argv where every `-name` or `-name=value` whose `name` is a long flag *declared by the
//! (sub)command being parsed at that point* becomes `--name` / `--name=value`.
//!
//! Invariants: nothing else changes. Short flags (`-h`, `-V`), values (the token after a flag
//! that takes one, even if it starts with a dash), positional arguments, tokens after `--`, and
//! a single-dash word that is not a declared long flag pass through untouched, so clap still
//! reports them as it always did; the double-dash spelling keeps working. In a command that
//! ends in a trailing command line (`cairn lock PREFIX CMD…`), nothing after the first
//! positional is rewritten, as Go's flag parsing stops there too. The rewrite only
//! starts once argv has entered one of the chosen top-level verbs (`scope`), so verbs not yet
//! converted behave exactly as before.
//!
//! The verbs that go through it are `cli::SINGLE_DASH_VERBS`: `cairn tls` (Consul's TLS
//! tutorial types `consul tls cert create -server -dc dc1`) and every verb that talks to the
//! agent (`cairn kv put -token=… k v`, `cairn acl token create -policy-name p`); issue 21
//! will apply it to `cairn agent` too.
//! Why a rewrite and not clap itself: clap has no "long flag with one dash" mode, and
//! declaring every flag twice (`-server` as a short alias cannot be longer than one char)
//! is not possible either.

use std::ffi::OsString;

/// Rewrites Consul-style `-name[=value]` long flags to `--name[=value]` for the top-level
/// verbs in `scope` (e.g. `&["tls"]`); argv[0] is kept as is.
pub fn normalise(
    root: &clap::Command,
    argv: impl IntoIterator<Item = OsString>,
    scope: &[&str],
) -> Vec<OsString> {
    let mut root = root.clone();
    root.build();
    let mut argv = argv.into_iter();
    let mut out: Vec<OsString> = argv.next().into_iter().collect();
    let mut current = &root;
    let mut depth = 0usize;
    let mut active = false;
    let mut expect_value = false;
    let mut rest_is_positional = false;
    for arg in argv {
        let Some(text) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        if expect_value || rest_is_positional {
            expect_value = false;
            out.push(arg);
            continue;
        }
        if text == "--" {
            rest_is_positional = true;
            out.push(arg);
            continue;
        }
        if let Some(flag) = text.strip_prefix("--") {
            expect_value = !flag.contains('=') && long_takes_value(current, flag) == Some(true);
            out.push(arg);
            continue;
        }
        if let Some(flag) = text.strip_prefix('-').filter(|f| !f.is_empty()) {
            let name = flag.split_once('=').map_or(flag, |(n, _)| n);
            match long_takes_value(current, name) {
                Some(takes) if active => {
                    expect_value = takes && !flag.contains('=');
                    out.push(format!("-{text}").into());
                }
                _ => out.push(arg),
            }
            continue;
        }
        if let Some(sub) = current.find_subcommand(&text) {
            current = sub;
            depth += 1;
            if depth == 1 {
                active = scope.contains(&sub.get_name());
            }
        } else if current.get_positionals().any(clap::Arg::is_trailing_var_arg_set) {
            // `cairn lock PREFIX CMD ARGS…`: as with Go's flag parsing, flags end at the
            // first positional; the child's own `-flags` are not ours to rewrite.
            rest_is_positional = true;
        }
        out.push(arg);
    }
    out
}

/// Whether `cmd` declares the long flag `name`: `Some(takes a value)`, or `None`.
fn long_takes_value(cmd: &clap::Command, name: &str) -> Option<bool> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name)))
        .map(|a| a.get_action().takes_values() && a.get_num_args().is_none_or(|n| n.min_values() > 0))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::{Arg, ArgAction, Command};

    use super::normalise;

    fn cli() -> Command {
        let create = Command::new("create")
            .arg(Arg::new("server").long("server").action(ArgAction::SetTrue))
            .arg(Arg::new("dc").long("dc"))
            .arg(Arg::new("days").long("days").allow_negative_numbers(true))
            .arg(Arg::new("file"));
        Command::new("cairn")
            .arg(Arg::new("verbose").short('v').long("verbose").action(ArgAction::SetTrue).global(true))
            .subcommand(Command::new("tls").subcommand(Command::new("cert").subcommand(create)))
            .subcommand(
                Command::new("kv").arg(Arg::new("recurse").long("recurse").action(ArgAction::SetTrue)),
            )
            .subcommand(
                Command::new("lock")
                    .arg(Arg::new("name").long("name"))
                    .arg(Arg::new("prefix").required(true))
                    .arg(Arg::new("command").num_args(1..).trailing_var_arg(true).allow_hyphen_values(true)),
            )
    }

    fn check(input: &str, scope: &[&str], want: &str) {
        let argv = input.split(' ').map(OsString::from);
        let got: Vec<String> =
            normalise(&cli(), argv, scope).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(got.join(" "), want, "{input}");
    }

    #[test]
    fn single_dash_long_flags_of_the_chosen_subcommand_get_two_dashes() {
        check("cairn tls cert create -server -dc dc1", &["tls"], "cairn tls cert create --server --dc dc1");
        check(
            "cairn tls cert create -days=365 -server",
            &["tls"],
            "cairn tls cert create --days=365 --server",
        );
        check("cairn tls cert create --server --dc dc1", &["tls"], "cairn tls cert create --server --dc dc1");
    }

    #[test]
    fn globals_propagated_to_the_subcommand_are_converted_too() {
        check("cairn tls cert create -verbose", &["tls"], "cairn tls cert create --verbose");
    }

    #[test]
    fn values_short_flags_positionals_and_unknown_words_stay() {
        // `-server` after -dc is its value; `-1` after -days is a value; -v is a short flag.
        check("cairn tls cert create -dc -server -v", &["tls"], "cairn tls cert create --dc -server -v");
        check("cairn tls cert create -days -1 f", &["tls"], "cairn tls cert create --days -1 f");
        check("cairn tls cert create --dc -server", &["tls"], "cairn tls cert create --dc -server");
        check("cairn tls cert create -nope -dcx=1", &["tls"], "cairn tls cert create -nope -dcx=1");
        check("cairn tls cert create -- -server", &["tls"], "cairn tls cert create -- -server");
        // A flag of another level is not declared here: it stays for clap to report.
        check("cairn tls -server cert create", &["tls"], "cairn tls -server cert create");
    }

    #[test]
    fn a_trailing_command_line_keeps_its_own_flags() {
        check("cairn lock -name x p ls -name", &["lock"], "cairn lock --name x p ls -name");
        check("cairn lock -verbose p sh -verbose", &["lock"], "cairn lock --verbose p sh -verbose");
    }

    #[test]
    fn verbs_outside_the_scope_are_untouched() {
        check("cairn kv -recurse", &["tls"], "cairn kv -recurse");
        check("cairn kv -recurse", &["tls", "kv"], "cairn kv --recurse");
        check("cairn -verbose tls", &["tls"], "cairn -verbose tls");
    }
}
