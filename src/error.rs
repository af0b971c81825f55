//! rosh-ssh's own fatal errors: one small enum, printed once by `main` with
//! the `rosh-ssh:` prefix, ending the process with 255 like ssh's.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// Every `ssh` on PATH is this binary.
    NoRealSsh,
    /// No `ssh` on PATH at all.
    NoSsh,
    /// `--ssh`/`ROSH_SSH` names something that cannot be run.
    BadSsh(PathBuf, String),
    /// `--ssh`/`ROSH_SSH` names rosh-ssh itself.
    SshIsSelf(PathBuf),
    /// rosh-ssh is running inside itself too deep: a wrapper loop.
    Loop(u32),
    /// A rosh-ssh option is malformed.
    Usage(String),
    /// A `ROSH_*` switch holds something that is neither on nor off.
    Switch {
        name: &'static str,
        value: std::ffi::OsString,
    },
    /// Starting or running the real ssh failed.
    Spawn(PathBuf, std::io::Error),
    /// Anything else that went wrong with a system call.
    Io(String, std::io::Error),
    /// Proxy mode failed.
    Proxy(String),
    /// `--check --remote` could not ask the server.
    Check(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoRealSsh => write!(
                f,
                "no real ssh found: every ssh on PATH is rosh-ssh itself (set ROSH_SSH=/path/to/ssh)"
            ),
            Error::NoSsh => write!(
                f,
                "no ssh found on PATH (install OpenSSH's client, or set ROSH_SSH=/path/to/ssh)"
            ),
            Error::BadSsh(p, why) => write!(f, "cannot use {} as ssh: {why}", p.display()),
            Error::SshIsSelf(p) => write!(
                f,
                "{} is rosh-ssh itself, not the real ssh (check --ssh / ROSH_SSH)",
                p.display()
            ),
            Error::Loop(n) => write!(
                f,
                "rosh-ssh is running inside itself {n} levels deep: an ssh wrapper loop (check PATH and ROSH_SSH)"
            ),
            Error::Usage(m) => write!(f, "{m} (see rosh-ssh --help)"),
            Error::Switch { name, value } => {
                // Quoted as a shell would take it back, on one printable line.
                let shown = crate::quote::word(value);
                let shown: String = String::from_utf8_lossy(&shown)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                write!(
                    f,
                    "{name}={shown}: not a switch (use 1/yes/true/on or 0/no/false/off)"
                )
            }
            Error::Spawn(p, e) => write!(f, "cannot run {}: {e}", p.display()),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Proxy(m) | Error::Check(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}
