//! The real ssh as a process: exec'd on the fast path, or the command the
//! supervisor runs as a child; and how a process ended, mirrored exactly
//! (after tini).

use crate::error::Error;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// How a process ended, as wait(2) tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

impl End {
    /// "exit 255", "signal 9 (SIGKILL)": for `--verbose`.
    pub fn describe(&self) -> String {
        match *self {
            End::Exited(c) => format!("exit {c}"),
            End::Signaled(s) => match Signal::try_from(s) {
                Ok(sig) => format!("signal {s} ({})", sig.as_str()),
                Err(_) => format!("signal {s}"),
            },
        }
    }

    /// Ends this process the same way: exit N, or die of signal S with its
    /// default action, so the caller's wait status matches ssh's.
    pub fn mirror(self) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match self {
            End::Exited(c) => std::process::exit(c),
            End::Signaled(s) => {
                // SAFETY: plain libc calls on this process, about to die.
                unsafe {
                    // A core of the wrapper is no one's business.
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::setrlimit(libc::RLIMIT_CORE, &none);
                    libc::signal(s, libc::SIG_DFL);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, s);
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                    libc::raise(s);
                }
                // A signal whose default action is not to terminate.
                std::process::exit(128 + s)
            }
        }
    }
}

/// The command that runs the real ssh with `words` under the supervisor.
/// argv\[0\] is the real ssh's path, so its messages say `ssh:` and
/// ProxyJump finds the same ssh. The environment tells a rosh-ssh that
/// finds itself run as this ssh (another copy, installed elsewhere) to step
/// aside ([`crate::locate::OUTER_VAR`]).
pub fn command(ssh: &Path, words: &[OsString]) -> Command {
    let mut cmd = Command::new(ssh);
    cmd.arg0(ssh).args(words);
    cmd.env(crate::locate::OUTER_VAR, std::process::id().to_string());
    cmd
}

/// The fast path: become the real ssh with `words`. Returns only on failure.
///
/// Nothing is set on the `Command`: with the environment unchanged, std
/// hands `environ` to execve as it is instead of copying every variable
/// into a map and back (a measurable part of the fast path's cost); the
/// depth variable is already in this process's own environment (app.rs).
pub fn exec(ssh: &Path, words: &[OsString]) -> Error {
    let mut cmd = Command::new(ssh);
    cmd.arg0(ssh).args(words);
    Error::Spawn(ssh.to_path_buf(), cmd.exec())
}
