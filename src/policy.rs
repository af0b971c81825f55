//! What a run does about forwards, decided once from rosh-ssh's options,
//! ssh's arguments, `ssh -G` and the plan: ExitOnForwardFailure, whether a
//! dropped forward refuses the run, whether ssh's log is read and which
//! functions it forces out, the `-f` wait, and whether and through which
//! control socket dropped forwards are restored. Every other module reads
//! these answers; none reads `--require-forward`, `--no-restore`, `-f` or
//! `-S` itself.

use crate::effective::Effective;
use crate::release;
use std::path::PathBuf;

/// What the policy is decided from.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// `--require-forward`.
    pub require: bool,
    /// Not `--no-restore`.
    pub restore: bool,
    pub eff: &'a Effective,
    /// `-S` on the command line: the control path is the user's own, and
    /// ssh's -S beats any `-o ControlPath` rosh-ssh could add.
    pub dash_s: bool,
    /// The pid of a live master on the effective ControlPath, when asked.
    pub master: Option<u32>,
    /// A forward was dropped at the probe.
    pub dropped: bool,
    /// Forwards ssh will still set up, and how many of them are remote.
    pub kept: usize,
    pub kept_remote: usize,
}

/// Why dropped forwards are not restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRestore {
    /// No forward at all: nothing can need restoring.
    Nothing,
    /// `--no-restore` / `ROSH_RESTORE=0`.
    Off,
    /// `--require-forward`: a failed forward ends the run instead.
    Required,
    /// `-f`: the connection outlives rosh-ssh.
    Background,
    /// ControlMaster ask/autoask: the master would prompt for every try.
    MasterAsks,
    /// The user's `-S` names a socket no master listens on and ssh will not
    /// make one: rosh-ssh can't add a master without taking that socket.
    UsersSocketUnused,
}

/// Through which control socket a restore goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    No(NoRestore),
    /// The user's ControlPath: this ssh rides the live master there or
    /// becomes it. No words added.
    Theirs(PathBuf),
    /// A private master for this ssh: rosh-ssh adds `-o ControlMaster=yes
    /// -o ControlPath=<private> -o ControlPersist=no`.
    Private,
}

/// The decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `-o ExitOnForwardFailure=VALUE` first on ssh's command line (ssh
    /// keeps the first value it obtains), or `None` to leave it be.
    pub exit_on_forward_failure: Option<bool>,
    /// A forward dropped at the probe ends the run before connecting.
    pub refuse_if_dropped: bool,
    /// ssh's log is read through a FIFO.
    pub read_log: bool,
    /// The LogVerbose list to give ssh (rosh-ssh's functions, after the
    /// user's own), when ssh's LogLevel would hide a failure line.
    pub log_verbose: Option<String>,
    /// Lines forced out only for rosh-ssh are held back from the user.
    pub hide_forced: bool,
    /// `-f`: wait (bounded) for the server's answer to each remote
    /// forward, which the backgrounded ssh logs.
    pub wait_answers: bool,
    pub restore: Restore,
}

impl Policy {
    pub fn decide(i: &Inputs<'_>) -> Policy {
        let eff = i.eff;
        let restore = restore(i);
        // What ssh's log can show on this release at this LogLevel.
        let can = release::Watch::plan(
            &eff.caps,
            &eff.log_level,
            eff.fork_after_authentication,
            i.kept_remote > 0,
            i.require,
        );
        // Forwards kept, or a restore pending: a forward that fails costs
        // the forward, never the connection. ssh.c: a tunnel's failure is
        // ExitOnForwardFailure's business too, and rosh-ssh does not manage
        // tun devices: leave it be.
        let watched = i.kept > 0 || matches!(restore, Restore::Theirs(_) | Restore::Private);
        let exit_on_forward_failure = (watched && eff.tunnel == "false").then_some(i.require);
        // The log is read too (a restore that loses a race makes the master
        // log a failure, which is rosh-ssh's to hide), where it can show
        // something: not `-f` before 8.5 below DEBUG (release.rs).
        let read_log = watched && can.take_log;
        let force = read_log && can.force;
        let own = eff.log_verbose != "none";
        let log_verbose =
            force.then(|| crate::plumbing::log_verbose(own.then_some(eff.log_verbose.as_str())));
        // ssh -f with ExitOnForwardFailure=no goes to the background before
        // the server answers its remote forwards: rosh-ssh waits for the
        // answers instead, where the log shows them.
        let wait_answers = read_log
            && eff.fork_after_authentication
            && !i.require
            && i.kept_remote > 0
            && can.answers;
        Policy {
            exit_on_forward_failure,
            refuse_if_dropped: i.require,
            read_log,
            log_verbose,
            hide_forced: force && !own,
            wait_answers,
            restore,
        }
    }
}

fn restore(i: &Inputs<'_>) -> Restore {
    let eff = i.eff;
    // A kept local forward can lose its port to a race between the probe
    // and ssh's bind, on one address or all: it may need restoring too.
    let why = if !i.dropped && i.kept == 0 {
        Some(NoRestore::Nothing)
    } else if !i.restore {
        Some(NoRestore::Off)
    } else if i.require {
        Some(NoRestore::Required)
    } else if eff.fork_after_authentication {
        Some(NoRestore::Background)
    } else {
        None
    };
    if let Some(why) = why {
        return Restore::No(why);
    }
    if eff.control_path == "none" {
        return Restore::Private;
    }
    let theirs = || Restore::Theirs(PathBuf::from(&eff.control_path));
    // ssh.c/mux.c: with a live master, `no` and `auto` ride it; `yes`
    // finds the socket taken and goes on without multiplexing.
    match (eff.control_master.as_str(), i.master) {
        ("ask" | "autoask", _) => Restore::No(NoRestore::MasterAsks),
        ("false" | "auto", Some(_)) => theirs(),
        // ssh becomes the master there.
        ("auto", None) => theirs(),
        ("true", None) => theirs(),
        // No master for this ssh on the user's path: a private one, unless
        // the path is the user's -S, which beats rosh-ssh's ControlPath.
        _ if i.dash_s => Restore::No(NoRestore::UsersSocketUnused),
        _ => Restore::Private,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(f: impl FnOnce(&mut Effective)) -> Effective {
        let mut e = Effective::parse(b"hostname h\nlogverbose none\nforkafterauthentication no\n");
        f(&mut e);
        e
    }

    fn inputs(e: &Effective) -> Inputs<'_> {
        Inputs {
            require: false,
            restore: true,
            eff: e,
            dash_s: false,
            master: None,
            dropped: true,
            kept: 1,
            kept_remote: 1,
        }
    }

    #[test]
    fn restore_socket_table() {
        use NoRestore::*;
        let theirs = || Restore::Theirs(PathBuf::from("/c"));
        // (ControlMaster, ControlPath, -S, live master, want)
        let table: &[(&str, &str, bool, Option<u32>, Restore)] = &[
            ("false", "none", false, None, Restore::Private),
            ("true", "none", false, None, Restore::Private),
            ("false", "/c", false, None, Restore::Private),
            ("false", "/c", false, Some(7), theirs()),
            ("auto", "/c", false, None, theirs()),
            ("auto", "/c", false, Some(7), theirs()),
            ("true", "/c", false, None, theirs()),
            // -M with a live master: ssh finds the socket taken and goes
            // on alone; rosh-ssh's own ControlPath comes first and wins.
            ("true", "/c", false, Some(7), Restore::Private),
            ("ask", "/c", false, Some(7), Restore::No(MasterAsks)),
            ("autoask", "/c", false, None, Restore::No(MasterAsks)),
            // -S PATH: the user's socket.
            ("false", "/c", true, None, Restore::No(UsersSocketUnused)),
            ("false", "/c", true, Some(7), theirs()),
            ("auto", "/c", true, None, theirs()),
            ("true", "/c", true, Some(7), Restore::No(UsersSocketUnused)),
        ];
        for (master, path, dash_s, live, want) in table {
            let e = eff(|e| {
                e.control_master = master.to_string();
                e.control_path = path.to_string();
            });
            let mut i = inputs(&e);
            i.dash_s = *dash_s;
            i.master = *live;
            assert_eq!(
                Policy::decide(&i).restore,
                *want,
                "{master} {path} -S:{dash_s} {live:?}"
            );
        }
    }

    #[test]
    fn no_restore_table() {
        use NoRestore::*;
        // (require, restore, -f, dropped, kept, want)
        let table = [
            (false, true, false, false, 0, Some(Nothing)),
            (false, true, false, true, 0, None),
            // A kept forward, local or remote, may fail after the probe.
            (false, true, false, false, 1, None),
            (false, false, false, true, 1, Some(Off)),
            (true, true, false, true, 1, Some(Required)),
            (false, true, true, true, 1, Some(Background)),
        ];
        for (require, restore, fork, dropped, kept, want) in table {
            let e = eff(|e| e.fork_after_authentication = fork);
            let mut i = inputs(&e);
            (i.require, i.restore, i.dropped, i.kept, i.kept_remote) =
                (require, restore, dropped, kept, 0);
            let got = match Policy::decide(&i).restore {
                Restore::No(why) => Some(why),
                _ => None,
            };
            assert_eq!(got, want, "{require} {restore} {fork} {dropped} {kept}");
        }
    }

    #[test]
    fn exit_on_forward_failure_and_the_log() {
        // (require, kept, dropped, tunnel, want EOFF, want log)
        let table = [
            (false, 1, false, "false", Some(false), true),
            (true, 1, false, "false", Some(true), true),
            // A tunnel: ExitOnForwardFailure stays the user's.
            (false, 1, false, "point-to-point", None, true),
            // Nothing kept, nothing to restore: the words stay the user's.
            (false, 0, false, "false", None, false),
            (true, 0, true, "false", None, false),
            // Nothing kept but a restore pending: the log is read.
            (false, 0, true, "false", Some(false), true),
        ];
        for (require, kept, dropped, tunnel, eoff, log) in table {
            let e = eff(|e| e.tunnel = tunnel.to_string());
            let mut i = inputs(&e);
            (i.require, i.kept, i.kept_remote, i.dropped) = (require, kept, 0, dropped);
            let p = Policy::decide(&i);
            assert_eq!(p.exit_on_forward_failure, eoff, "{require} {kept} {tunnel}");
            assert_eq!(p.read_log, log, "{require} {kept} {tunnel}");
            assert_eq!(p.refuse_if_dropped, require);
        }
    }

    #[test]
    fn ssh_f_with_a_remote_forward_before_8_5_keeps_its_own_log() {
        // No LogVerbose and INFO: the server's answers can't be seen, and
        // after rosh-ssh returns nobody would read a FIFO: ssh logs where it
        // would have (its own Warning line), with ExitOnForwardFailure=no.
        let e = eff(|e| {
            e.caps.log_verbose = false;
            e.fork_after_authentication = true;
        });
        let mut i = inputs(&e);
        (i.kept, i.kept_remote, i.dropped) = (1, 1, false);
        let p = Policy::decide(&i);
        assert_eq!(p.exit_on_forward_failure, Some(false));
        assert!(!p.read_log && !p.wait_answers && p.log_verbose.is_none());
        // At DEBUG the answers show: the log is read and waited on.
        let e = eff(|e| {
            e.caps.log_verbose = false;
            e.fork_after_authentication = true;
            e.log_level = "DEBUG1".into();
        });
        let mut i = inputs(&e);
        (i.kept, i.kept_remote, i.dropped) = (1, 1, false);
        let p = Policy::decide(&i);
        assert!(p.read_log && p.wait_answers);
    }

    #[test]
    fn log_verbose_only_where_the_release_has_it_and_the_level_hides() {
        let f = crate::plumbing::FORCED;
        // (LogLevel, user's LogVerbose, release knows it, want, hide)
        let table: &[(&str, &str, bool, Option<String>, bool)] = &[
            ("INFO", "none", true, Some(f.to_string()), true),
            ("ERROR", "none", true, Some(f.to_string()), true),
            ("QUIET", "none", true, Some(f.to_string()), true),
            ("DEBUG1", "none", true, None, false),
            ("DEBUG3", "none", true, None, false),
            ("INFO", "kex.c:*", true, Some(format!("kex.c:*,{f}")), false),
            // OpenSSH before 8.5: no LogVerbose at all.
            ("INFO", "none", false, None, false),
            ("ERROR", "none", false, None, false),
        ];
        for (level, own, knows, want, hide) in table {
            let e = eff(|e| {
                e.log_level = level.to_string();
                e.log_verbose = own.to_string();
                e.caps.log_verbose = *knows;
            });
            let p = Policy::decide(&inputs(&e));
            assert_eq!(&p.log_verbose, want, "{level} {own} {knows}");
            assert_eq!(p.hide_forced, *hide, "{level} {own} {knows}");
        }
    }

    #[test]
    fn the_f_wait_needs_remote_forwards_and_lines_to_count() {
        // (require, kept remote, LogLevel, release knows LogVerbose, want)
        let table = [
            (false, 1, "INFO", true, true),
            (false, 0, "INFO", true, false),
            (true, 1, "INFO", true, false),
            (false, 1, "DEBUG1", false, true),
            // Before 8.5 at INFO the answers are never logged.
            (false, 1, "INFO", false, false),
        ];
        for (require, kept_remote, level, knows, want) in table {
            let e = eff(|e| {
                e.fork_after_authentication = true;
                e.log_level = level.to_string();
                e.caps.log_verbose = knows;
            });
            let mut i = inputs(&e);
            (i.require, i.kept_remote, i.kept) = (require, kept_remote, 1);
            assert_eq!(
                Policy::decide(&i).wait_answers,
                want,
                "{require} {kept_remote} {level} {knows}"
            );
        }
    }
}
