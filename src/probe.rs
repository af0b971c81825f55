//! The bind probe: would ssh's bind succeed for a forward's listen side?
//!
//! Mirrors channels.c: `channel_fwd_bind_addr` picks the addresses,
//! `channel_setup_fwd_listener_tcpip` resolves them with getaddrinfo and
//! binds each with SO_REUSEADDR (and IPV6_V6ONLY on v6) before listening.
//! The probe does the same and closes at once.
//!
//! Being ssh's own sequence, it agrees with ssh on each system, though the
//! systems disagree with each other. Linux refuses to bind 127.0.0.1:P while
//! anything listens on *:P (and the wildcard while 127.0.0.1:P is held),
//! SO_REUSEADDR or not. The BSDs (XNU and FreeBSD in_pcbbind) with
//! SO_REUSEADDR only refuse the very same address, so ssh's loopback forward
//! binds beside a wildcard listener of the same user and takes its loopback
//! connections; a socket of another user on an overlapping address is still
//! refused (the "port stealing" check), and so is the same address.

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, Backlog, SockaddrIn, SockaddrIn6, UnixAddr, sockopt};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// `AddressFamily` (ssh -4 / -6 / `AddressFamily`): getaddrinfo's ai_family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    Inet,
    Inet6,
}

/// The effective options that decide what ssh binds, and where to look
/// first for the holder of what is taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct Opts {
    pub gateway_ports: bool,
    pub family: Family,
    /// `StreamLocalBindUnlink`: ssh removes a stale socket file first.
    pub stream_local_bind_unlink: bool,
    /// Not an ssh option: the pid of the live ControlMaster this ssh would
    /// ride (ownmaster.rs), looked at first when naming a holder.
    pub look_first: Option<u32>,
}

/// Why a forward's listen side can't be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Busy {
    /// bind or listen failed with EADDRINUSE, EACCES or EPERM: every such
    /// address of the forward, in the resolver's order (never empty). All of
    /// them, not the first: with 127.0.0.1 and ::1 both held, naming one
    /// sends the user after half the problem.
    Tcp { addrs: Vec<(SocketAddr, Errno)> },
    /// A live listener answers on the unix socket path.
    PathLive { path: Vec<u8> },
    /// A file sits on the path and ssh won't unlink it.
    PathExists { path: Vec<u8> },
    /// The bind address given is not an address of this host
    /// (EADDRNOTAVAIL for every address it resolves to): ssh can't listen.
    NotLocal { addr: SocketAddr },
}

impl Busy {
    /// The TCP addresses another process holds (EADDRINUSE), for naming
    /// their holders; a privilege problem has no holder.
    pub fn in_use(&self) -> Vec<SocketAddr> {
        match self {
            Busy::Tcp { addrs } => addrs
                .iter()
                .filter(|(_, e)| *e == Errno::EADDRINUSE)
                .map(|(a, _)| *a)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `A, B`: addresses as ssh prints them (`[::1]:3131`).
fn list(addrs: &[SocketAddr]) -> String {
    let shown: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    shown.join(", ")
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Busy::Tcp { addrs } => {
                // One clause per kind of failure, each naming every address.
                let of = |want: &[Errno]| -> Vec<SocketAddr> {
                    addrs
                        .iter()
                        .filter(|(_, e)| want.contains(e))
                        .map(|(a, _)| *a)
                        .collect()
                };
                let mut clauses = Vec::new();
                let used = of(&[Errno::EADDRINUSE]);
                if !used.is_empty() {
                    clauses.push(format!("in use: {}", list(&used)));
                }
                let denied = of(&[Errno::EACCES, Errno::EPERM]);
                match denied.as_slice() {
                    [] => {}
                    [one] => clauses.push(format!(
                        "permission denied: {one} is a privileged port (needs {PRIVILEGE})"
                    )),
                    more => clauses.push(format!(
                        "permission denied: {}: a privileged port (needs {PRIVILEGE})",
                        list(more)
                    )),
                }
                let other: Vec<SocketAddr> = addrs
                    .iter()
                    .filter(|(_, e)| ![Errno::EADDRINUSE, Errno::EACCES, Errno::EPERM].contains(e))
                    .map(|(a, _)| *a)
                    .collect();
                if !other.is_empty() {
                    clauses.push(format!("unavailable: {}", list(&other)));
                }
                f.write_str(&clauses.join("; "))
            }
            Busy::NotLocal { addr } => write!(
                f,
                "{} is not an address of this host: nothing can listen on {addr}",
                addr.ip()
            ),
            Busy::PathLive { path } => {
                write!(f, "in use: {}", String::from_utf8_lossy(path))
            }
            Busy::PathExists { path } => write!(
                f,
                "file exists (StreamLocalBindUnlink is off): {}",
                String::from_utf8_lossy(path)
            ),
        }
    }
}

/// Who may bind a port below 1024.
/// Linux: ports below net.ipv4.ip_unprivileged_port_start (1024 by default)
/// need root or CAP_NET_BIND_SERVICE.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PRIVILEGE: &str = "root or CAP_NET_BIND_SERVICE";
/// FreeBSD: up to net.inet.ip.portrange.reservedhigh (1023); macOS: below
/// 1024 on a given address (xnu in_pcbbind, in6_pcbbind: the wildcard needs
/// no privilege).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const PRIVILEGE: &str = "root";

/// channels.c channel_fwd_bind_addr, client side (is_client = 1): the
/// getaddrinfo node and whether it is a wildcard (AI_PASSIVE) lookup.
fn bind_addr(listen_host: Option<&[u8]>, gateway_ports: bool) -> (Option<&[u8]>, bool) {
    match listen_host {
        None => (None, gateway_ports),
        Some(b"") | Some(b"*") => (None, true),
        // "localhost" is skipped so that every local address family listens.
        Some(b"localhost") => (None, false),
        Some(h) => (Some(h), false),
    }
}

/// Probes a TCP listen side. Port 0 never conflicts; an address family the
/// host lacks and a name that doesn't resolve are ssh's business, not a
/// conflict.
pub fn tcp(listen_host: Option<&[u8]>, port: u16, o: &Opts) -> Result<(), Busy> {
    if port == 0 {
        return Ok(());
    }
    let (node, wildcard) = bind_addr(listen_host, o.gateway_ports);
    let Some(addrs) = resolve(node, port, o.family, wildcard) else {
        return Ok(());
    };
    let mut not_here = None;
    let mut bound = false;
    let mut busy = Vec::new();
    for &addr in &addrs {
        match try_bind(addr) {
            Ok(()) => bound = true,
            Err(e @ (Errno::EADDRINUSE | Errno::EACCES | Errno::EPERM)) => busy.push((addr, e)),
            Err(Errno::EADDRNOTAVAIL) => not_here = not_here.or(Some(addr)),
            // EAFNOSUPPORT: the family is absent.
            Err(_) => {}
        }
    }
    if !busy.is_empty() {
        // IPv4 first, as a reader expects `127.0.0.1:P, [::1]:P` (glibc
        // gives ::1 first for loopback; which one ssh tries first is moot).
        // A partition, not a sort: no sort code for a list of two.
        let (mut addrs, v6): (Vec<_>, Vec<_>) = busy.into_iter().partition(|(a, _)| a.is_ipv4());
        addrs.extend(v6);
        return Err(Busy::Tcp { addrs });
    }
    // An explicit bind address none of whose addresses is on this host:
    // ssh's listener fails ("Could not request local forwarding"). Loopback
    // and wildcard lookups are left alone: a missing family is normal.
    match not_here {
        Some(addr) if node.is_some() && !bound => Err(Busy::NotLocal { addr }),
        _ => Ok(()),
    }
}

/// The addresses ssh binds for a TCP listen side (channels.c
/// `channel_fwd_bind_addr`, then getaddrinfo), in its order.
pub fn addresses(listen_host: Option<&[u8]>, port: u16, o: &Opts) -> Vec<SocketAddr> {
    let (node, wildcard) = bind_addr(listen_host, o.gateway_ports);
    resolve(node, port, o.family, wildcard).unwrap_or_default()
}

/// Probes one address of a TCP listen side.
pub fn tcp_addr(addr: SocketAddr) -> Result<(), Busy> {
    match try_bind(addr) {
        Err(e @ (Errno::EADDRINUSE | Errno::EACCES | Errno::EPERM)) => Err(Busy::Tcp {
            addrs: vec![(addr, e)],
        }),
        _ => Ok(()),
    }
}

fn try_bind(addr: SocketAddr) -> Result<(), Errno> {
    let fam = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = crate::events::stream_socket(fam, false)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    match addr {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => {
            socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?
        }
    }
    // ssh listens right after binding; a socket bound elsewhere with
    // SO_REUSEADDR but not yet listening only fails here.
    socket::listen(&fd, Backlog::new(1).unwrap_or(Backlog::MAXCONN))?;
    Ok(())
}

/// getaddrinfo(node, port, {family, SOCK_STREAM, AI_PASSIVE if wildcard}),
/// TCP addresses in the order the resolver gives them.
fn resolve(
    node: Option<&[u8]>,
    port: u16,
    family: Family,
    wildcard: bool,
) -> Option<Vec<SocketAddr>> {
    let node = match node {
        Some(n) => Some(CString::new(n).ok()?),
        None => None,
    };
    let service = CString::new(port.to_string()).ok()?;
    // SAFETY: hints is a plain C struct, zeroed as getaddrinfo expects; the
    // result list is walked read-only and freed once.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_family = match family {
            Family::Any => libc::AF_UNSPEC,
            Family::Inet => libc::AF_INET,
            Family::Inet6 => libc::AF_INET6,
        };
        hints.ai_socktype = libc::SOCK_STREAM;
        hints.ai_flags = if wildcard { libc::AI_PASSIVE } else { 0 };
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        let rc = libc::getaddrinfo(
            node.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
            service.as_ptr(),
            &hints,
            &mut res,
        );
        if rc != 0 {
            return None;
        }
        let mut out = Vec::new();
        let mut ai = res;
        while !ai.is_null() {
            let a = &*ai;
            match a.ai_family {
                libc::AF_INET => {
                    let sin = &*(a.ai_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    out.push(SocketAddr::V4(SocketAddrV4::new(ip, port)));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(a.ai_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    out.push(SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        port,
                        0,
                        sin6.sin6_scope_id,
                    )));
                }
                _ => {}
            }
            ai = a.ai_next;
        }
        libc::freeaddrinfo(res);
        Some(out)
    }
}

/// Probes a unix-socket listen path: busy when a live listener answers, or
/// when a file is there that ssh won't unlink first (misc.c unix_listener).
pub fn path(p: &[u8], o: &Opts) -> Result<(), Busy> {
    let path = std::path::Path::new(OsStr::from_bytes(p));
    // misc.c unix_listener: with StreamLocalBindUnlink ssh unlinks the
    // path before binding, a live socket included: the user asked for it.
    if o.stream_local_bind_unlink || std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if listener_answers(path) {
        return Err(Busy::PathLive { path: p.to_vec() });
    }
    Err(Busy::PathExists { path: p.to_vec() })
}

fn listener_answers(path: &std::path::Path) -> bool {
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    crate::events::stream_socket(AddressFamily::Unix, false)
        .is_ok_and(|fd| socket::connect(fd.as_raw_fd(), &addr).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn v4_busy_port() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[test]
    fn bind_addr_table() {
        let table: &[(Option<&[u8]>, bool, Option<&[u8]>, bool)] = &[
            (None, false, None, false),
            (None, true, None, true),
            (Some(b""), false, None, true),
            (Some(b"*"), false, None, true),
            (Some(b"localhost"), false, None, false),
            (Some(b"localhost"), true, None, false),
            (Some(b"127.0.0.1"), false, Some(b"127.0.0.1"), false),
            (Some(b"::1"), true, Some(b"::1"), false),
            (Some(b"0.0.0.0"), false, Some(b"0.0.0.0"), false),
        ];
        for (host, gw, node, wild) in table {
            assert_eq!(bind_addr(*host, *gw), (*node, *wild), "{host:?} gw={gw}");
        }
    }

    #[test]
    fn held_loopback_port_is_busy_by_default_and_explicitly() {
        let (_l, port) = v4_busy_port();
        let o = Opts::default();
        let e = tcp(None, port, &o).unwrap_err();
        assert_eq!(e.in_use(), [SocketAddr::from(([127, 0, 0, 1], port))]);
        assert_eq!(e.to_string(), format!("in use: 127.0.0.1:{port}"));
        assert!(tcp(Some(b"127.0.0.1"), port, &o).is_err());
        assert!(tcp(Some(b"localhost"), port, &o).is_err());
        // The wildcard overlaps the held loopback address: Linux refuses the
        // bind; the BSDs, with SO_REUSEADDR, let ssh bind it beside a
        // listener of the same user (in_pcbbind looks for the exact address).
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert!(tcp(Some(b"*"), port, &o).is_err());
        } else {
            assert!(tcp(Some(b"*"), port, &o).is_ok());
        }
    }

    #[test]
    fn free_port_and_port_zero_are_free() {
        let (l, port) = v4_busy_port();
        drop(l);
        assert!(tcp(None, port, &Opts::default()).is_ok());
        assert!(tcp(None, 0, &Opts::default()).is_ok());
    }

    #[test]
    fn v6_only_holder_does_not_block_v4_only_probe() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            // Under CI a missing ::1 fails unless .ci/run said it can't be had.
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
            let declared = std::env::var_os("ROSH_TEST_NO_IPV6").is_some_and(|v| v == "1");
            assert!(!ci || declared, "no IPv6 on loopback, and CI is set");
            eprintln!("skipping: no IPv6 on loopback");
            return;
        };
        let port = l.local_addr().unwrap().port();
        let inet = Opts {
            family: Family::Inet,
            ..Opts::default()
        };
        assert!(tcp(None, port, &inet).is_ok());
        assert!(tcp(None, port, &Opts::default()).is_err());
    }

    #[test]
    fn a_bind_address_not_on_this_host_says_so() {
        // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address here.
        let e = tcp(Some(b"192.0.2.1"), 4000, &Opts::default()).unwrap_err();
        assert!(matches!(e, Busy::NotLocal { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "192.0.2.1 is not an address of this host: nothing can listen on 192.0.2.1:4000"
        );
        // Loopback lookups with a family missing stay quiet.
        assert!(tcp(None, fresh_port(), &Opts::default()).is_ok());
    }

    #[test]
    fn busy_words_name_every_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let tcp = |addrs: &[(&str, Errno)]| Busy::Tcp {
            addrs: addrs.iter().map(|&(s, e)| (a(s), e)).collect(),
        };
        let (inuse, acces) = (Errno::EADDRINUSE, Errno::EACCES);
        let table: &[(Busy, &str, &[&str])] = &[
            (
                tcp(&[("127.0.0.1:3131", inuse)]),
                "in use: 127.0.0.1:3131",
                &["127.0.0.1:3131"],
            ),
            (
                tcp(&[("127.0.0.1:3131", inuse), ("[::1]:3131", inuse)]),
                "in use: 127.0.0.1:3131, [::1]:3131",
                &["127.0.0.1:3131", "[::1]:3131"],
            ),
            (
                tcp(&[("[::1]:80", acces)]),
                "permission denied: [::1]:80 is a privileged port (needs root or CAP_NET_BIND_SERVICE)",
                &[],
            ),
            (
                tcp(&[("127.0.0.1:80", acces), ("[::1]:80", Errno::EPERM)]),
                "permission denied: 127.0.0.1:80, [::1]:80: a privileged port (needs root or CAP_NET_BIND_SERVICE)",
                &[],
            ),
            (
                tcp(&[("127.0.0.1:80", inuse), ("[::1]:80", acces)]),
                "in use: 127.0.0.1:80; permission denied: [::1]:80 is a privileged port (needs root or CAP_NET_BIND_SERVICE)",
                &["127.0.0.1:80"],
            ),
            (
                tcp(&[("127.0.0.1:9", Errno::EINVAL)]),
                "unavailable: 127.0.0.1:9",
                &[],
            ),
        ];
        for (busy, words, in_use) in table {
            assert_eq!(busy.to_string(), *words);
            let want: Vec<SocketAddr> = in_use.iter().map(|s| a(s)).collect();
            assert_eq!(busy.in_use(), want, "{words}");
        }
    }

    #[test]
    fn both_loopback_addresses_held_are_both_named() {
        let Ok(v6) = TcpListener::bind("[::1]:0") else {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
            let declared = std::env::var_os("ROSH_TEST_NO_IPV6").is_some_and(|v| v == "1");
            assert!(!ci || declared, "no IPv6 on loopback, and CI is set");
            eprintln!("skipping: no IPv6 on loopback");
            return;
        };
        let port = v6.local_addr().unwrap().port();
        let Ok(_v4) = TcpListener::bind(("127.0.0.1", port)) else {
            eprintln!("skipping: 127.0.0.1:{port} taken meanwhile");
            return;
        };
        let e = tcp(None, port, &Opts::default()).unwrap_err();
        let want = [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ];
        assert_eq!(e.in_use(), want);
        assert_eq!(
            e.to_string(),
            format!("in use: 127.0.0.1:{port}, [::1]:{port}")
        );
    }

    fn fresh_port() -> u16 {
        let (l, p) = v4_busy_port();
        drop(l);
        p
    }

    #[test]
    fn unresolvable_bind_address_is_not_a_conflict() {
        assert!(tcp(Some(b"no-such-host.invalid"), 4000, &Opts::default()).is_ok());
    }

    #[test]
    fn unix_paths() {
        let dir = std::env::temp_dir().join(format!("rosh-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s");
        let pb = p.as_os_str().as_bytes();
        let o = Opts::default();
        assert!(path(pb, &o).is_ok());
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(matches!(path(pb, &o), Err(Busy::PathLive { .. })));
        let unlink = Opts {
            stream_local_bind_unlink: true,
            ..o
        };
        // ssh unlinks even a live socket when asked to: the forward stays.
        assert!(path(pb, &unlink).is_ok());
        drop(l); // the file stays: a stale socket
        assert!(matches!(path(pb, &o), Err(Busy::PathExists { .. })));
        assert!(path(pb, &unlink).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
