//! Which OpenSSH release rosh-ssh wraps, told only by what it asks that ssh
//! anyway: its argv grammar and what it can do, from the keywords its
//! `ssh -G` prints. No extra process on any path; nothing on the fast path.
//!
//! Releases differ where rosh-ssh looks (each checked in that release's
//! source, and run):
//! - getopt (ssh.c): `-P` is a deprecated flag up to 9.3 and takes a tag
//!   from 9.4; `-Z` is a mode from 10.5 and a usage error before
//!   ([`crate::argv::GRAMMARS`]).
//! - `LogVerbose` exists from 8.5 (readconf.c); before it `-o LogVerbose=`
//!   is "Bad configuration option" and exit 255.
//! - `ssh -G` prints `forkafterauthentication` from 8.7, and reads config
//!   lines with misc.c `argv_split` from 8.7 (single quotes, `\` escapes,
//!   `#` comments after the arguments); before, with `strdelim` alone.
//! - `ssh -G` prints `tag` (dump_cfg_string: nothing when unset) from 9.4.

use crate::argv::{Args, GRAMMARS};
use crate::effective::{Caps, Effective};
use std::ffi::OsString;

/// How a run can learn that a forward failed after connecting, on this
/// release at the user's LogLevel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// Add `-o LogVerbose=` for the failure lines (8.5 on, below DEBUG).
    pub force: bool,
    /// The server's answer to each remote forward (ssh.c
    /// ssh_confirm_remote_forward's debug line, `success` or `failure`)
    /// reaches the log: forced, or at a DEBUG level.
    pub answers: bool,
    /// A refused remote forward shows in the log: forced, or ssh's own
    /// `Warning: remote port forwarding failed` (logit: INFO and up).
    pub remote_refusals: bool,
    /// Read ssh's log through the FIFO. Not for `-f` with a remote forward
    /// when the answers can't be seen: ssh (with ExitOnForwardFailure=no)
    /// goes to the background before the server answers, and after
    /// rosh-ssh returns nobody would read the FIFO: ssh keeps its own log
    /// (stderr or the user's -E), so its own `Warning: remote port
    /// forwarding failed` reaches the user later, as with plain `ssh -f`.
    pub take_log: bool,
}

/// log.c's levels from ssh's default up, as `ssh -G` prints them.
const SHOWN_AT_INFO: [&str; 6] = ["INFO", "VERBOSE", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG"];

impl Watch {
    /// For a run at `log_level` (as `ssh -G` prints it), with `-f` or not,
    /// with remote forwards kept or not, and with `--require-forward`
    /// (ExitOnForwardFailure=yes: ssh itself waits for the answers before
    /// going to the background, and a refusal ends it).
    pub fn plan(caps: &Caps, log_level: &str, fork: bool, remote: bool, require: bool) -> Watch {
        // At a debug level ssh shows every line the matcher needs itself.
        let debug = log_level.starts_with("DEBUG");
        let force = caps.log_verbose && !debug;
        let answers = force || debug;
        Watch {
            force,
            answers,
            // ssh.c ssh_confirm_remote_forward: logit() with EOFF=no.
            remote_refusals: force || SHOWN_AT_INFO.contains(&log_level),
            take_log: answers || !(fork && remote) || require,
        }
    }
}

/// The command line read with each grammar a release from 8.0 on may have,
/// until the ssh at hand says which is its own.
pub struct Readings {
    /// One reading per distinct result, newest grammar first.
    all: Vec<Args>,
}

impl Readings {
    /// Reads `words` with every grammar. Readings that come out the same
    /// (no `-P` or `-Z` among the options: nearly always) are kept once.
    pub fn new(words: &[OsString]) -> Readings {
        let mut all: Vec<Args> = Vec::with_capacity(1);
        for g in GRAMMARS.iter().rev() {
            let a = Args::parse_as(words.to_vec(), *g);
            if !all.iter().any(|b| same(b, &a)) {
                all.push(a);
            }
        }
        Readings { all }
    }

    /// The distinct readings, newest grammar first.
    pub fn all(&self) -> &[Args] {
        &self.all
    }

    /// `decide` of every reading, when they all agree (as on the fast path:
    /// `-Z` is a mode on 10.5 and a usage error before, and ssh is exec'd
    /// either way).
    pub fn agree<T: PartialEq>(&self, mut decide: impl FnMut(&Args) -> T) -> Option<T> {
        let mut it = self.all.iter();
        let first = decide(it.next()?);
        it.all(|a| decide(a) == first).then_some(first)
    }

    /// Which reading is the one of the release that printed `eff` (its
    /// `ssh -G` accepted the words), as an index into [`Readings::all`].
    /// Readings differ only from the first `-P` or `-Z` in an option's
    /// place. `-P`: from 9.4 it sets the tag and `ssh -G` prints a `tag`
    /// line; before 9.4 it can't. `-Z`: the 10.5 reading makes it a mode,
    /// the others an error, which ssh -G's acceptance rules out.
    pub fn pick(&self, eff: &Effective) -> usize {
        let has_p = |a: &Args| a.has(b'P');
        let fits = |a: &Args| !a.error && (!has_p(a) || a.grammar.p_takes_a_tag() == eff.caps.tag);
        // None fits when ssh reads its words another way than any grammar
        // here (a release newer than this table): the newest reading ssh
        // accepted, then the newest; ssh owns its grammar.
        (self.all.iter().position(fits))
            .or_else(|| self.all.iter().position(|a| !a.error))
            .unwrap_or(0)
    }

    /// The reading [`Readings::pick`] picks.
    pub fn pick_for(self, eff: &Effective) -> Args {
        let i = self.pick(eff);
        self.take(i)
    }

    /// Reading `i` of [`Readings::all`] (the newest if out of range).
    pub fn take(mut self, i: usize) -> Args {
        let i = if i < self.all.len() { i } else { 0 };
        self.all.swap_remove(i)
    }
}

/// What `ssh -G` of an older release leaves out and the words tell: before
/// 8.7 `-f` is not printed (no `forkafterauthentication`), and it is the
/// only way to ask for it.
pub fn fill_in(eff: &mut Effective, args: &Args) {
    if !eff.caps.fork_keyword && args.has(b'f') {
        eff.fork_after_authentication = true;
    }
}

/// Two readings that mean the same to rosh-ssh.
fn same(a: &Args, b: &Args) -> bool {
    a.opts == b.opts && a.host == b.host && a.command == b.command && a.error == b.error
}

/// The ssh the unit tests ask: `ROSH_TEST_OPENSSH`'s (a bin dir, as
/// tests/lab/mod.rs reads it for the integration tests) or Debian's.
#[cfg(test)]
pub fn ssh_under_test() -> std::path::PathBuf {
    match std::env::var_os("ROSH_TEST_OPENSSH").filter(|d| !d.is_empty()) {
        Some(d) => std::path::Path::new(&d).join("ssh"),
        None => "/usr/bin/ssh".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argv::{DEPRECATED_P, DUMP_PUBKEYS_Z, TAG_P};

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    /// `ssh -G` output with these keywords (values don't matter here), and
    /// the `hostname` every dump has.
    fn eff(keywords: &[&str]) -> Effective {
        let out: String = keywords.iter().map(|k| format!("{k} x\n")).collect();
        Effective::parse(format!("hostname h\n{out}").as_bytes())
    }

    /// What each release's `ssh -G -F /dev/null h` prints of the keywords
    /// that tell releases apart (checked with the releases built by
    /// ../shared/tools/openssh), and what rosh-ssh makes of it.
    #[test]
    fn caps_from_the_keywords_each_release_prints() {
        let table: &[(&str, &[&str], Caps, &str)] = &[
            ("8.0", &["loglevel", "controlpath"], Caps::default(), "8.0"),
            (
                "8.5",
                &["loglevel", "logverbose"],
                Caps {
                    log_verbose: true,
                    ..Caps::default()
                },
                "8.5",
            ),
            (
                "8.9/9.2/10.5, no tag",
                &["logverbose", "forkafterauthentication", "sessiontype"],
                Caps {
                    log_verbose: true,
                    fork_keyword: true,
                    tag: false,
                },
                "8.7",
            ),
            (
                "9.4+, -P t",
                &["logverbose", "forkafterauthentication", "tag"],
                Caps {
                    log_verbose: true,
                    fork_keyword: true,
                    tag: true,
                },
                "9.4",
            ),
        ];
        // No dump at all (a stub ssh): a current release is assumed.
        assert_eq!(Effective::parse(b"").caps, Caps::CURRENT);
        assert_eq!(
            Effective::parse(b"localforward 1 [h]:2\n").caps,
            Caps::CURRENT
        );
        for (what, kws, want, since) in table {
            let e = eff(kws);
            assert_eq!(e.caps, *want, "{what}");
            assert_eq!(e.caps.at_least(), *since, "{what}");
            assert_eq!(e.caps.argv_split_config(), want.fork_keyword, "{what}");
        }
    }

    #[test]
    fn fork_comes_from_argv_where_ssh_g_does_not_print_it() {
        let table: &[(&[&str], &[&str], bool)] = &[
            // 8.0: no forkafterauthentication line; -f in argv.
            (&["loglevel"], &["-f", "h"], true),
            (&["loglevel"], &["-vfN", "h"], true),
            (&["loglevel"], &["h", "-f"], true),
            (&["loglevel"], &["h", "ls", "-f"], false),
            (&["loglevel"], &["h"], false),
            // 8.7+: ssh -G says (here: `x`, not yes), argv is not read.
            (&["forkafterauthentication"], &["-f", "h"], false),
        ];
        for (kws, argv, want) in table {
            let mut e = eff(kws);
            let a = Args::parse_as(words(argv), DEPRECATED_P);
            fill_in(&mut e, &a);
            assert_eq!(e.fork_after_authentication, *want, "{kws:?} {argv:?}");
        }
    }

    #[test]
    fn what_the_log_can_show_per_release_and_level() {
        let old = Caps::default();
        let new = Caps {
            log_verbose: true,
            fork_keyword: true,
            tag: false,
        };
        let w = |force, answers, remote_refusals, take_log| Watch {
            force,
            answers,
            remote_refusals,
            take_log,
        };
        // (caps, LogLevel, -f, remote kept, --require-forward, watch)
        let table = [
            (new, "INFO", false, true, false, w(true, true, true, true)),
            (new, "ERROR", true, true, false, w(true, true, true, true)),
            (new, "QUIET", false, true, false, w(true, true, true, true)),
            (new, "DEBUG", false, true, false, w(false, true, true, true)),
            (new, "DEBUG3", true, true, false, w(false, true, true, true)),
            // Before 8.5: what ssh prints at the user's level.
            (old, "INFO", false, true, false, w(false, false, true, true)),
            (
                old,
                "VERBOSE",
                false,
                true,
                false,
                w(false, false, true, true),
            ),
            (
                old,
                "ERROR",
                false,
                true,
                false,
                w(false, false, false, true),
            ),
            (
                old,
                "FATAL",
                false,
                true,
                false,
                w(false, false, false, true),
            ),
            (
                old,
                "QUIET",
                false,
                true,
                false,
                w(false, false, false, true),
            ),
            (
                old,
                "SILENT",
                false,
                true,
                false,
                w(false, false, false, true),
            ),
            (old, "DEBUG1", true, true, false, w(false, true, true, true)),
            (old, "DEBUG", true, true, false, w(false, true, true, true)),
            // -f with a remote forward: the answers come after the fork.
            (old, "INFO", true, true, false, w(false, false, true, false)),
            (old, "INFO", true, false, false, w(false, false, true, true)),
            (old, "INFO", true, true, true, w(false, false, true, true)),
        ];
        for (caps, level, fork, remote, require, want) in table {
            assert_eq!(
                Watch::plan(&caps, level, fork, remote, require),
                want,
                "{caps:?} {level} fork {fork} remote {remote} require {require}"
            );
        }
    }

    #[test]
    fn one_reading_unless_p_or_z_is_an_option() {
        let table: &[(&[&str], usize)] = &[
            (&["-L", "1:h:2", "h"], 1),
            (&["-vNL1:h:2", "h", "ls", "-P", "-Z"], 1),
            (&["-l", "-P", "h"], 1),
            (&["--", "-P", "h"], 1),
            (&["-P", "t", "h"], 2),
            (&["h", "-P", "t"], 2),
            (&["-Z", "h"], 2),
            (&["-P", "-Z", "h"], 2),
            (&["-Z", "-P", "h"], 2),
            (&["-vP", "-Z", "h", "-Z"], 3),
        ];
        for (argv, n) in table {
            let r = Readings::new(&words(argv));
            assert_eq!(r.all().len(), *n, "{argv:?}");
            assert_eq!(r.all()[0].grammar, DUMP_PUBKEYS_Z, "{argv:?}");
        }
    }

    #[test]
    fn agree_is_the_common_answer_or_none() {
        let r = Readings::new(&words(&["-Z", "h"]));
        // 10.5: a mode; before: a usage error. Both are exec'd at once.
        assert_eq!(r.agree(|a| a.error || a.has(b'Z')), Some(true));
        assert_eq!(r.agree(|a| a.error), None);
        let r = Readings::new(&words(&["-L", "1:h:2", "h"]));
        assert_eq!(r.agree(|a| a.host), Some(Some(2)));
    }

    /// Which reading each release's `ssh -G` answer picks, and what it
    /// says about the words (host, options).
    #[test]
    fn pick_follows_what_ssh_g_printed() {
        // (argv, keywords of the answer, grammar picked, host word, options)
        type Row<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            crate::argv::Grammar,
            usize,
            &'a str,
        );
        let table: &[Row] = &[
            // No -P: the newest reading, whatever answered.
            (&["-L", "1:h:2", "h"], &[], DUMP_PUBKEYS_Z, 2, "L"),
            (&["-L", "1:h:2", "h"], &["tag"], DUMP_PUBKEYS_Z, 2, "L"),
            // -P TAG from 9.4: ssh -G prints the tag.
            (
                &["-P", "t", "-L", "1:h:2", "h"],
                &["tag"],
                DUMP_PUBKEYS_Z,
                4,
                "PL",
            ),
            // Before 9.4 -P is a flag: `t` is the destination, `h` the command.
            (
                &["-P", "t", "-L", "1:h:2", "h"],
                &["logverbose"],
                DEPRECATED_P,
                1,
                "PL",
            ),
            (&["h", "-P"], &[], DEPRECATED_P, 0, "P"),
            // -Z on 10.5 is a mode (the others' error is ruled out).
            (&["-P", "t", "-Z", "h"], &["tag"], DUMP_PUBKEYS_Z, 3, "PZ"),
            (&["-PZ", "h"], &["tag"], DUMP_PUBKEYS_Z, 1, "P"),
        ];
        for (argv, kws, grammar, host, letters) in table {
            let r = Readings::new(&words(argv));
            let a = r.pick_for(&eff(kws));
            assert_eq!(a.grammar, *grammar, "{argv:?} {kws:?}");
            assert_eq!(a.host, Some(*host), "{argv:?} {kws:?}");
            let got: String = a.opts.iter().map(|o| o.letter as char).collect();
            assert_eq!(got, *letters, "{argv:?} {kws:?}");
        }
        // 9.4-10.4 and 10.5 read -P alike: either P-reading will do.
        let r = Readings::new(&words(&["-P", "t", "h"]));
        assert!(r.pick_for(&eff(&["tag"])).grammar.p_takes_a_tag());
        assert_eq!(TAG_P.releases, "9.4-10.4");
        // What no grammar here reads (a newer release's letter ssh took):
        // the newest reading, for ssh to judge.
        let r = Readings::new(&words(&["-U", "h"]));
        assert_eq!(r.pick_for(&eff(&[])).grammar, DUMP_PUBKEYS_Z);
    }
}
