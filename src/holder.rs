//! Naming the process that holds a busy local port or unix socket path.
//!
//! Done only for a port that is already known to be busy, the way each
//! system allows: Linux through /proc (`procfs`), macOS through libproc
//! (`libproc`). Elsewhere (FreeBSD, ...) no holder is named ([`NAMED`] is
//! false) and the busy line says "in use" alone. A holder of another user
//! cannot be seen without privilege: that degrades to a phrase, never an
//! error that stops rosh-ssh.

use std::fmt;
#[cfg(any(target_os = "linux", target_vendor = "apple", test))]
use std::net::IpAddr;
use std::net::SocketAddr;

#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
use procfs as sys;

#[cfg(any(target_vendor = "apple", test))]
mod libproc;
#[cfg(target_vendor = "apple")]
use libproc as sys;

/// Whether this system can name a holder at all: where it can't, a busy
/// forward's line names none (not even "holder not found").
pub const NAMED: bool = cfg!(any(target_os = "linux", target_vendor = "apple"));

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
mod sys {
    use super::{Holder, Unknown};

    pub fn tcp_listener(
        _addr: std::net::SocketAddr,
        _first: Option<u32>,
    ) -> Result<Holder, Unknown> {
        Err(Unknown::NotFound)
    }

    pub fn unix_listener(_path: &[u8], _first: Option<u32>) -> Result<Holder, Unknown> {
        Err(Unknown::NotFound)
    }
}

/// The process holding a TCP listener that covers `addr`: one bound to that
/// very address, or a wildcard (`0.0.0.0`, `::`) on the same port, or the
/// v4-mapped form of a v4 address on a v6 socket. An exact match wins.
pub fn tcp_listener(addr: SocketAddr) -> Result<Holder, Unknown> {
    sys::tcp_listener(addr, None)
}

/// [`tcp_listener`], looking at process `first` before any other: when it
/// holds the socket (the question is often only "is it that master?"), no
/// walk of every process at all.
pub fn tcp_listener_first(addr: SocketAddr, first: Option<u32>) -> Result<Holder, Unknown> {
    sys::tcp_listener(addr, first)
}

/// The process holding a listening unix socket at `path` (bytes as given to
/// bind; on Linux a leading NUL names an abstract socket).
pub fn unix_listener(path: &[u8]) -> Result<Holder, Unknown> {
    sys::unix_listener(path, None)
}

/// [`unix_listener`], looking at process `first` before any other.
pub fn unix_listener_first(path: &[u8], first: Option<u32>) -> Result<Holder, Unknown> {
    sys::unix_listener(path, first)
}

/// Who holds the busy addresses of one TCP listen side: each distinct
/// answer once, with the addresses it covers, in the order first seen. One
/// process holding 127.0.0.1 and ::1 is one entry; two processes, two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holders(pub Vec<(Vec<SocketAddr>, Result<Holder, Unknown>)>);

impl Holders {
    /// Looks up the holder of each address (the probe's busy ones),
    /// looking at process `first` before any other.
    pub fn of(addrs: &[SocketAddr], first: Option<u32>) -> Holders {
        Holders::group(addrs.iter().map(|&a| (a, tcp_listener_first(a, first))))
    }

    /// Groups per-address answers: equal answers (the same pid, the same
    /// reason) share one entry.
    pub fn group(
        found: impl IntoIterator<Item = (SocketAddr, Result<Holder, Unknown>)>,
    ) -> Holders {
        let mut out: Vec<(Vec<SocketAddr>, Result<Holder, Unknown>)> = Vec::new();
        for (addr, who) in found {
            match out.iter_mut().find(|(_, w)| *w == who) {
                Some((addrs, _)) => addrs.push(addr),
                None => out.push((vec![addr], who)),
            }
        }
        Holders(out)
    }

    /// The first holder named, whose end the restorer waits for.
    pub fn pid(&self) -> Option<u32> {
        self.0
            .iter()
            .find_map(|(_, w)| w.as_ref().ok().map(|h| h.pid))
    }
}

/// `held by pid N (cmd)` when one answer covers every address; else each
/// answer with its addresses: `held by pid N (a) on 127.0.0.1:P, held by pid
/// M (b) on [::1]:P`. Empty when there is nothing to look up.
impl fmt::Display for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |w: &Result<Holder, Unknown>| match w {
            Ok(h) => h.to_string(),
            Err(u) => u.to_string(),
        };
        match self.0.as_slice() {
            [] => Ok(()),
            [(_, w)] => f.write_str(&one(w)),
            many => {
                let parts: Vec<String> = many
                    .iter()
                    .map(|(addrs, w)| {
                        let at: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
                        format!("{} on {}", one(w), at.join(", "))
                    })
                    .collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

/// The process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its argv with spaces between the words (`[comm]` for a process
    /// without one, as `ps` shows it), without rosh-ssh's plumbing
    /// (plumbing.rs) when rosh-ssh ran it.
    pub cmdline: Vec<u8>,
}

/// Why no holder could be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// No listening socket matches in /proc/net (stale unix socket file, a
    /// socket in another network namespace, or a port held by a socket that
    /// is not listening).
    NotFound,
    /// A listener of another user: its process's fds cannot be read.
    OtherUser { uid: u32 },
    /// A listener of our own user whose process was not found (another pid
    /// namespace, `hidepid`, or it exited meanwhile).
    Hidden { uid: u32 },
    /// /proc could not be read at all.
    NoProc,
    /// macOS: not among the processes we may inspect, while some we may
    /// not (another user's: libproc answers EPERM) could hold it.
    NotVisible,
}

/// How many characters of a command line the short phrase shows.
const CMDLINE_SHOWN: usize = 60;

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "held by pid {} ({})",
            self.pid,
            shown_cmdline(&self.cmdline)
        )
    }
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unknown::NotFound => f.write_str("holder not found"),
            Unknown::OtherUser { uid } => {
                write!(f, "held by a process of uid {uid} (not visible)")
            }
            Unknown::Hidden { uid } => {
                write!(f, "held by a process of uid {uid} (not found in /proc)")
            }
            Unknown::NoProc => f.write_str("holder unknown (/proc not readable)"),
            Unknown::NotVisible => f.write_str("held by a process of another user (not visible)"),
        }
    }
}

/// The command line as one short printable line: control bytes become `?`
/// (a hostile argv must not drive the terminal), long ones end in `...`.
fn shown_cmdline(cmdline: &[u8]) -> String {
    let text = String::from_utf8_lossy(cmdline);
    let mut shown: String = text
        .chars()
        .take(CMDLINE_SHOWN)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(CMDLINE_SHOWN).is_some() {
        shown.push_str("...");
    }
    shown
}

/// A v4-mapped v6 address (`::ffff:127.0.0.1`) is its v4 address.
#[cfg(any(target_os = "linux", target_vendor = "apple", test))]
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a listener bound to `local` takes connections meant for `want`:
/// Some(0) for the same address, Some(1) for a wildcard (a `::` listener may
/// be V6ONLY, which /proc does not show: kept, ranked after exact ones).
#[cfg(any(target_os = "linux", target_vendor = "apple", test))]
fn covers(local: IpAddr, want: IpAddr) -> Option<u8> {
    let local = unmapped(local);
    if local == want {
        return Some(0);
    }
    let wildcard = match local {
        IpAddr::V4(v4) => v4.is_unspecified() && (want.is_ipv4() || want.is_unspecified()),
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    // Asking about a wildcard bind: any listener on the port is in the way.
    (wildcard || want.is_unspecified()).then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let table = [
            ("127.0.0.1", "127.0.0.1", Some(0)),
            ("0.0.0.0", "127.0.0.1", Some(1)),
            ("::", "127.0.0.1", Some(1)),
            ("::ffff:127.0.0.1", "127.0.0.1", Some(0)),
            ("::", "::1", Some(1)),
            ("0.0.0.0", "::1", None),
            ("127.0.0.2", "127.0.0.1", None),
            ("::1", "127.0.0.1", None),
            ("127.0.0.1", "0.0.0.0", Some(1)),
            ("::1", "::", Some(1)),
        ];
        for (local, want, expected) in table {
            assert_eq!(
                covers(ip(local), unmapped(ip(want))),
                expected,
                "{local} {want}"
            );
        }
    }

    #[test]
    fn holders_group_by_answer() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let (v4, v6) = (a("127.0.0.1:3131"), a("[::1]:3131"));
        let ssh = || {
            Ok(Holder {
                pid: 42,
                cmdline: b"ssh -fN grav".to_vec(),
            })
        };
        let nc = || {
            Ok(Holder {
                pid: 7,
                cmdline: b"nc -l 3131".to_vec(),
            })
        };
        let table: Vec<(Holders, &str, Option<u32>)> = vec![
            (Holders::group([]), "", None),
            (
                Holders::group([(v4, ssh())]),
                "held by pid 42 (ssh -fN grav)",
                Some(42),
            ),
            // One process holding both addresses is named once.
            (
                Holders::group([(v4, ssh()), (v6, ssh())]),
                "held by pid 42 (ssh -fN grav)",
                Some(42),
            ),
            (
                Holders::group([(v4, nc()), (v6, ssh())]),
                "held by pid 7 (nc -l 3131) on 127.0.0.1:3131, held by pid 42 (ssh -fN grav) on [::1]:3131",
                Some(7),
            ),
            (
                Holders::group([(v4, Err(Unknown::OtherUser { uid: 0 })), (v6, ssh())]),
                "held by a process of uid 0 (not visible) on 127.0.0.1:3131, held by pid 42 (ssh -fN grav) on [::1]:3131",
                Some(42),
            ),
            (
                Holders::group([(v4, Err(Unknown::NotFound)), (v6, Err(Unknown::NotFound))]),
                "holder not found",
                None,
            ),
        ];
        for (h, words, pid) in table {
            assert_eq!(h.to_string(), words);
            assert_eq!(h.pid(), pid, "{words}");
        }
    }

    #[test]
    fn phrases() {
        let h = |c: &[u8]| {
            Holder {
                pid: 1234,
                cmdline: c.to_vec(),
            }
            .to_string()
        };
        assert_eq!(h(b"nc -l 3131"), "held by pid 1234 (nc -l 3131)");
        assert_eq!(h(b"a\x1b[2Jb"), "held by pid 1234 (a?[2Jb)");
        let long = h(&[b'x'; 100]);
        assert_eq!(
            long,
            format!("held by pid 1234 ({}...)", "x".repeat(CMDLINE_SHOWN))
        );
        assert_eq!(Unknown::NotFound.to_string(), "holder not found");
        assert_eq!(
            Unknown::OtherUser { uid: 1000 }.to_string(),
            "held by a process of uid 1000 (not visible)"
        );
        assert_eq!(
            Unknown::NotVisible.to_string(),
            "held by a process of another user (not visible)"
        );
    }
}
