//! How one attempt ended, and what the loop does next: the exit-status
//! table, with the words rosh says.
//!
//! ssh exits 255 both when it cannot connect and when a live link drops;
//! LocalCommand runs only once ssh is logged in, and its mark tells the two
//! apart. A session that ssh itself ended (`~.`) is told from a lost link by
//! what ssh printed (see watch.rs). The remote side runs under `sh -c '...;
//! exit $s'`, so a remote client killed by signal N comes back as 128+N; a
//! local ssh (or rosh-ssh) killed by a signal is seen as the signal itself.

use super::backoff::Retry;
use crate::child::End;

/// What rosh knows when an attempt is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub end: End,
    /// ssh logged in (LocalCommand ran).
    pub up: bool,
    /// Some earlier attempt logged in.
    pub connected_before: bool,
    /// ssh's session loop ended at this end with no exit status: `~.`.
    pub quit: bool,
    /// The server closed the connection before its greeting.
    pub dropped: bool,
    /// rosh got SIGINT, SIGTERM or SIGHUP meanwhile.
    pub interrupted: bool,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Interrupted,
    Detached,
    /// The remote shell exited, the session is gone.
    Gone,
    /// The user typed `~.`.
    Quit,
    /// The remote client died of SIGKILL: most likely the OOM killer.
    RemoteOom,
    Lost,
    /// The server answered (this loop was connected before) but no session started.
    NotStarted,
    /// The first attempts never logged in.
    CouldNotStart,
    /// tmux or screen is missing or not runnable (126, 127).
    ToolMissing(i32),
    /// tmux or screen failed (1).
    ToolFailed,
    /// The remote client died of another signal (128+N).
    RemoteSignal(i32),
    /// The local ssh (or rosh-ssh) was killed by SIGKILL.
    LocalKill,
    /// ... by another signal.
    LocalSignal(i32),
    Other(i32),
}

/// Where the loop goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    End(i32),
    Again(Retry),
}

/// Names for the words rosh says.
pub struct Words<'a> {
    pub tool: &'a str,
    pub host: &'a str,
    pub session: &'a str,
}

impl Verdict {
    pub fn of(a: &Attempt) -> Verdict {
        if a.interrupted {
            return Verdict::Interrupted;
        }
        match a.end {
            End::Signaled(9) => Verdict::LocalKill,
            End::Signaled(s) => Verdict::LocalSignal(s),
            End::Exited(0) => Verdict::Detached,
            End::Exited(super::remote::GONE) => Verdict::Gone,
            End::Exited(137) => Verdict::RemoteOom,
            End::Exited(255) if a.up && a.quit => Verdict::Quit,
            End::Exited(255) if a.up => Verdict::Lost,
            End::Exited(255) if a.connected_before => Verdict::NotStarted,
            End::Exited(255) => Verdict::CouldNotStart,
            End::Exited(n @ (126 | 127)) => Verdict::ToolMissing(n),
            End::Exited(1) => Verdict::ToolFailed,
            End::Exited(n) if n > 128 => Verdict::RemoteSignal(n),
            End::Exited(n) => Verdict::Other(n),
        }
    }

    pub fn next(self, dropped: bool) -> Next {
        match self {
            Verdict::Interrupted => Next::End(130),
            Verdict::Detached | Verdict::Gone | Verdict::Quit => Next::End(0),
            Verdict::RemoteOom | Verdict::Lost | Verdict::LocalKill => {
                Next::Again(Retry::AfterSession)
            }
            Verdict::NotStarted if dropped => Next::Again(Retry::Dropped),
            Verdict::NotStarted => Next::Again(Retry::Refused),
            Verdict::CouldNotStart => Next::End(255),
            Verdict::ToolMissing(n) | Verdict::RemoteSignal(n) | Verdict::Other(n) => Next::End(n),
            Verdict::ToolFailed => Next::End(1),
            Verdict::LocalSignal(s) => Next::End(128 + s),
        }
    }

    /// The line rosh prints; `sleep` is the pause before the next attempt.
    pub fn words(self, w: &Words, dropped: bool, sleep: u32) -> String {
        let Words {
            tool,
            host,
            session,
        } = w;
        match self {
            Verdict::Interrupted => "interrupted".into(),
            Verdict::Detached => format!("detached; session '{session}' is still running"),
            Verdict::Gone => format!("the remote shell exited; session '{session}' is gone"),
            Verdict::Quit => {
                format!("you closed the connection (~.); session '{session}' is still running")
            }
            Verdict::RemoteOom => format!(
                "the remote {tool} client was killed by SIGKILL, most likely by the OOM killer on {host} (see dmesg there); reconnecting..."
            ),
            Verdict::Lost => format!("connection to {host} lost; reconnecting..."),
            Verdict::NotStarted if dropped => format!(
                "{host} closed the connection before the ssh greeting: its sshd refuses this address for a while (PerSourcePenalties after failed logins, OpenSSH 9.8+) or too many connect at once (MaxStartups); retrying in {sleep}s..."
            ),
            Verdict::NotStarted => {
                format!("{host} answered but the session did not start; retrying in {sleep}s...")
            }
            Verdict::CouldNotStart if dropped => format!(
                "ssh could not set up the session on {host}: it closed the connection before the ssh greeting (its sshd may refuse this address for a while: PerSourcePenalties, MaxStartups)"
            ),
            Verdict::CouldNotStart => {
                format!("ssh could not set up the session on {host} (its message is above)")
            }
            Verdict::ToolMissing(n) => {
                format!("{tool} not found or not runnable on {host} (exit {n})")
            }
            Verdict::ToolFailed => format!(
                "{tool} on {host} failed (its message is above; 'server exited unexpectedly' or 'lost server' means the {tool} server was killed, often by the OOM killer)"
            ),
            Verdict::RemoteSignal(n) => {
                format!("the remote {tool} client was killed by signal {}", n - 128)
            }
            Verdict::LocalKill => {
                "ssh was killed by SIGKILL here (the OOM killer, or kill -9); reconnecting..."
                    .into()
            }
            Verdict::LocalSignal(s) => format!("ssh was killed by signal {s}"),
            Verdict::Other(n) => format!("ssh exited with status {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(end: End, up: bool, before: bool) -> Attempt {
        Attempt {
            end,
            up,
            connected_before: before,
            quit: false,
            dropped: false,
            interrupted: false,
        }
    }

    #[test]
    fn the_exit_status_table() {
        use End::{Exited as X, Signaled as S};
        use Next::{Again, End as E};
        let table: &[(Attempt, Verdict, Next)] = &[
            (a(X(0), true, false), Verdict::Detached, E(0)),
            (a(X(100), true, false), Verdict::Gone, E(0)),
            (
                a(X(137), true, true),
                Verdict::RemoteOom,
                Again(Retry::AfterSession),
            ),
            (
                a(X(137), false, false),
                Verdict::RemoteOom,
                Again(Retry::AfterSession),
            ),
            (
                a(X(255), true, false),
                Verdict::Lost,
                Again(Retry::AfterSession),
            ),
            (
                a(X(255), true, true),
                Verdict::Lost,
                Again(Retry::AfterSession),
            ),
            (
                a(X(255), false, true),
                Verdict::NotStarted,
                Again(Retry::Refused),
            ),
            (a(X(255), false, false), Verdict::CouldNotStart, E(255)),
            (a(X(126), true, false), Verdict::ToolMissing(126), E(126)),
            (a(X(127), true, true), Verdict::ToolMissing(127), E(127)),
            (a(X(1), true, false), Verdict::ToolFailed, E(1)),
            (a(X(143), true, false), Verdict::RemoteSignal(143), E(143)),
            (a(X(129), true, false), Verdict::RemoteSignal(129), E(129)),
            (a(X(2), true, false), Verdict::Other(2), E(2)),
            (a(X(75), true, false), Verdict::Other(75), E(75)),
            (
                a(S(9), true, false),
                Verdict::LocalKill,
                Again(Retry::AfterSession),
            ),
            (
                a(S(9), false, false),
                Verdict::LocalKill,
                Again(Retry::AfterSession),
            ),
            (a(S(15), true, false), Verdict::LocalSignal(15), E(143)),
            (a(S(2), false, false), Verdict::LocalSignal(2), E(130)),
        ];
        for (at, verdict, next) in table {
            assert_eq!(Verdict::of(at), *verdict, "{at:?}");
            assert_eq!(verdict.next(at.dropped), *next, "{at:?}");
        }
    }

    #[test]
    fn tilde_dot_ends_only_a_session_that_had_started() {
        let mut at = a(End::Exited(255), true, true);
        at.quit = true;
        assert_eq!(Verdict::of(&at), Verdict::Quit);
        assert_eq!(Verdict::Quit.next(false), Next::End(0));
        at.up = false;
        assert_eq!(Verdict::of(&at), Verdict::NotStarted);
        // A remote exit status is the remote's, whatever ssh printed.
        at = a(End::Exited(0), true, true);
        at.quit = true;
        assert_eq!(Verdict::of(&at), Verdict::Detached);
    }

    #[test]
    fn interrupted_wins_and_dropped_backs_off_further() {
        let mut at = a(End::Exited(0), true, false);
        at.interrupted = true;
        assert_eq!(Verdict::of(&at), Verdict::Interrupted);
        assert_eq!(Verdict::Interrupted.next(false), Next::End(130));
        assert_eq!(Verdict::NotStarted.next(true), Next::Again(Retry::Dropped));
        assert_eq!(Verdict::CouldNotStart.next(true), Next::End(255));
    }

    #[test]
    fn words() {
        let w = Words {
            tool: "tmux",
            host: "grav",
            session: "s",
        };
        let say = |v: Verdict| v.words(&w, false, 4);
        assert_eq!(
            say(Verdict::Detached),
            "detached; session 's' is still running"
        );
        assert_eq!(
            say(Verdict::Lost),
            "connection to grav lost; reconnecting..."
        );
        assert!(say(Verdict::RemoteOom).contains("OOM killer on grav"));
        assert!(say(Verdict::NotStarted).ends_with("retrying in 4s..."));
        assert!(
            Verdict::NotStarted
                .words(&w, true, 15)
                .contains("PerSourcePenalties")
        );
        assert!(
            Verdict::NotStarted
                .words(&w, true, 15)
                .ends_with("retrying in 15s...")
        );
        assert!(say(Verdict::CouldNotStart).contains("its message is above"));
        assert_eq!(
            say(Verdict::ToolMissing(127)),
            "tmux not found or not runnable on grav (exit 127)"
        );
        assert_eq!(
            say(Verdict::RemoteSignal(143)),
            "the remote tmux client was killed by signal 15"
        );
        assert!(
            say(Verdict::Quit).contains("(~.)") && say(Verdict::Quit).contains("still running")
        );
    }
}
