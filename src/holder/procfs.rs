//! Linux: the holder through /proc, as `ss -p` and `lsof` find it.
//!
//! Done only for a port that is already known to be busy: it asks the
//! kernel for the port's listening sockets (sock_diag, sockdiag.rs; else
//! `/proc/net/tcp` and `tcp6`), or reads `/proc/net/unix`, for the listening
//! socket's inode, then walks `/proc/PID/fd/*` for the process whose fd is
//! `socket:[INODE]`. A caller that only asks "is it this process?" (the
//! user's ControlMaster) names it first, and when it holds the socket
//! nothing else is walked. A holder of another user cannot be seen without
//! privilege: that degrades to its uid, never an error that stops rosh-ssh.

use super::{Holder, Unknown, covers, unmapped};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// `/proc/net/tcp` state of a listening socket (include/net/tcp_states.h TCP_LISTEN).
const TCP_LISTEN: &str = "0A";

/// `/proc/net/unix` flag of a listening socket (__SO_ACCEPTCON).
const SO_ACCEPTCON: u32 = 0x10000;

/// The process holding a TCP listener that covers `addr`: one bound to that
/// very address, or a wildcard (`0.0.0.0`, `::`) on the same port, or the
/// v4-mapped form of a v4 address on a v6 socket. An exact match wins.
/// Process `first`, when given, is looked at before any other.
pub fn tcp_listener(addr: SocketAddr, first: Option<u32>) -> Result<Holder, Unknown> {
    let (want, port) = (unmapped(addr.ip()), addr.port());
    // sock_diag lists the port's listeners without walking the kernel's
    // established table as /proc/net/tcp does (sockdiag.rs); /proc/net
    // stays for a kernel without inet_diag.
    let listeners = match crate::sockdiag::tcp_listeners(port) {
        Ok(ls) => ls.into_iter().map(|l| (l.addr, l.uid, l.inode)).collect(),
        Err(_) => proc_net_listeners(port)?,
    };
    // (rank, uid, inode); rank 0 = exact address, 1 = wildcard.
    let mut found: Vec<(u8, u32, u64)> = listeners
        .into_iter()
        .filter_map(|(local, uid, inode)| Some((covers(local.ip(), want)?, uid, inode)))
        .collect();
    found.sort_by_key(|&(rank, _, _)| rank);
    let sockets: Vec<(u32, u64)> = found.iter().map(|&(_, uid, inode)| (uid, inode)).collect();
    holder_of(&sockets, None, first)
}

/// The TCP listeners on `port` from /proc/net/tcp and tcp6: (address, uid,
/// inode).
pub(super) fn proc_net_listeners(port: u16) -> Result<Vec<(SocketAddr, u32, u64)>, Unknown> {
    let mut tables = 0;
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = read_whole(table) else {
            continue;
        };
        tables += 1;
        for line in text.split(|&b| b == b'\n').skip(1) {
            let Some(entry) = parse_tcp_line(line) else {
                continue;
            };
            if entry.state == TCP_LISTEN && entry.local.port() == port {
                out.push((entry.local, entry.uid, entry.inode));
            }
        }
    }
    if tables == 0 {
        return Err(Unknown::NoProc);
    }
    Ok(out)
}

/// A /proc file read in large pieces: each read(2) of /proc/net/tcp that
/// reaches the end walks the kernel's whole connection table, and
/// `fs::read` starts with 32-byte probes.
fn read_whole(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(64 * 1024);
    fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The process holding a listening unix socket at `path` (bytes as given to
/// bind; a leading NUL names an abstract socket, shown `@name` by the kernel).
pub fn unix_listener(path: &[u8], first: Option<u32>) -> Result<Holder, Unknown> {
    let text = fs::read("/proc/net/unix").map_err(|_| Unknown::NoProc)?;
    let wanted: Vec<u8> = match path.split_first() {
        Some((0, rest)) => [b"@", rest].concat(),
        _ => path.to_vec(),
    };
    // /proc/net/unix has no uid column: the socket file's owner stands in.
    let uid = match path.first() {
        Some(0) | None => None,
        Some(_) => fs::metadata(std::ffi::OsStr::from_bytes(path))
            .ok()
            .map(|m| m.uid()),
    };
    let sockets: Vec<(u32, u64)> = text
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(parse_unix_line)
        .filter(|e| e.flags & SO_ACCEPTCON != 0 && e.path == wanted.as_slice())
        .map(|e| (uid.unwrap_or(u32::MAX), e.inode))
        .collect();
    holder_of(&sockets, uid, first)
}

/// Finds the lowest pid whose fds include one of `sockets` (tried in order);
/// the lowest is usually the parent that listened before forking workers.
/// Process `first`, when given, is looked at before the others, and named
/// when it holds the socket.
fn holder_of(
    sockets: &[(u32, u64)],
    known_uid: Option<u32>,
    first: Option<u32>,
) -> Result<Holder, Unknown> {
    let Some(&(first_uid, _)) = sockets.first() else {
        return Err(Unknown::NotFound);
    };
    let first_links = first.map(fd_links).unwrap_or_default();
    // Listed only when `first` does not hold the socket.
    let mut pids: Option<Vec<u32>> = None;
    for &(_, inode) in sockets {
        let link = format!("socket:[{inode}]");
        if let Some(pid) = first.filter(|_| first_links.iter().any(|l| l == link.as_bytes())) {
            return Ok(Holder {
                pid,
                cmdline: cmdline_of(pid),
            });
        }
        if pids.is_none() {
            let mut all: Vec<u32> = match fs::read_dir("/proc") {
                Ok(dir) => dir
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect(),
                Err(_) => return Err(Unknown::NoProc),
            };
            all.sort_unstable();
            pids = Some(all);
        }
        for &pid in pids.iter().flatten() {
            if process_has_fd(pid, link.as_bytes()) {
                return Ok(Holder {
                    pid,
                    cmdline: cmdline_of(pid),
                });
            }
        }
    }
    let uid = known_uid.unwrap_or(first_uid);
    let me = nix::unistd::geteuid().as_raw();
    if uid == u32::MAX {
        Err(Unknown::NotFound)
    } else if uid != me && me != 0 {
        Err(Unknown::OtherUser { uid })
    } else {
        Err(Unknown::Hidden { uid })
    }
}

/// Where each of a process's fds links to (`socket:[INODE]`, a path, ...);
/// nothing for a process that cannot be read (gone, another user's).
fn fd_links(pid: u32) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .map(|l| l.into_os_string().into_vec())
        .collect()
}

fn process_has_fd(pid: u32, link: &[u8]) -> bool {
    // EACCES for another user's process: nothing to find there.
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.filter_map(Result::ok)
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str().as_bytes() == link))
}

fn cmdline_of(pid: u32) -> Vec<u8> {
    // An ssh that rosh-ssh ran is named by its user's words, not our plumbing.
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let raw = crate::plumbing::unplumbed(&raw);
    let mut line: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    while line.last() == Some(&b' ') {
        line.pop();
    }
    if line.is_empty() {
        let comm = fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
        line = [b"[", comm.trim_ascii_end(), b"]"].concat();
    }
    line
}

struct TcpEntry<'a> {
    local: SocketAddr,
    state: &'a str,
    uid: u32,
    inode: u64,
}

/// One line of /proc/net/tcp{,6} (net/ipv4/tcp_ipv4.c get_tcp4_sock):
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`.
fn parse_tcp_line(line: &[u8]) -> Option<TcpEntry<'_>> {
    let line = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.len() < 10 {
        return None;
    }
    Some(TcpEntry {
        local: parse_hex_addr(fields[1])?,
        state: fields[3],
        uid: fields[7].parse().ok()?,
        inode: fields[9].parse().ok()?,
    })
}

/// `0100007F:0C3B`: the address as the kernel's 32-bit words printed in host
/// byte order (`%08X` of a big-endian field), then the port in plain hex.
fn parse_hex_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

struct UnixEntry<'a> {
    flags: u32,
    inode: u64,
    path: &'a [u8],
}

/// One line of /proc/net/unix (net/unix/af_unix.c unix_seq_show):
/// `Num: RefCount Protocol Flags Type St Inode[ Path]`; the path is the rest
/// of the line and may hold spaces.
fn parse_unix_line(line: &[u8]) -> Option<UnixEntry<'_>> {
    let mut rest = line;
    let mut fields = [&b""[..]; 7];
    for field in fields.iter_mut() {
        rest = rest.trim_ascii_start();
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        (*field, rest) = rest.split_at(end);
    }
    let num = |f: &[u8], radix| u64::from_str_radix(std::str::from_utf8(f).ok()?, radix).ok();
    Some(UnixEntry {
        flags: u32::try_from(num(fields[3], 16)?).ok()?,
        inode: num(fields[6], 10)?,
        path: rest.strip_prefix(b" ").unwrap_or(rest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_addresses() {
        let v4 = |s: &str| s.parse::<SocketAddr>().ok();
        // Little-endian words, as on the x86 and arm machines this runs on.
        let table: &[(&str, Option<SocketAddr>)] = &[
            ("0100007F:0C3B", v4("127.0.0.1:3131")),
            ("00000000:0016", v4("0.0.0.0:22")),
            ("00000000000000000000000001000000:0050", v4("[::1]:80")),
            ("00000000000000000000000000000000:1F90", v4("[::]:8080")),
            (
                "0000000000000000FFFF00000100007F:0C3B",
                v4("[::ffff:127.0.0.1]:3131"),
            ),
            ("0100007F", None),
            ("0100007:0C3B", None),
            ("0100007F:XYZ", None),
            ("", None),
        ];
        if cfg!(target_endian = "little") {
            for (input, expected) in table {
                assert_eq!(parse_hex_addr(input), *expected, "{input}");
            }
        }
    }

    #[test]
    fn tcp_lines() {
        let line = b"   0: 0100007F:0C3B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!((e.state, e.uid, e.inode), ("0A", 1000, 424242));
        assert!(parse_tcp_line(b"  sl  local_address rem_address   st tx_queue").is_none());
        assert!(parse_tcp_line(b"").is_none());
    }

    #[test]
    fn unix_lines() {
        type Parsed = Option<(u32, u64, &'static [u8])>;
        let table: &[(&[u8], Parsed)] = &[
            (
                b"0000000000000000: 00000002 00000000 00010000 0001 01 31337 /tmp/a b",
                Some((0x10000, 31337, b"/tmp/a b")),
            ),
            (
                b"0000000000000000: 00000002 00000000 00010000 0001 01 7 @abstract",
                Some((0x10000, 7, b"@abstract")),
            ),
            (
                b"0000000000000000: 00000003 00000000 00000000 0001 03  1153",
                Some((0, 1153, b"")),
            ),
            (
                b"Num       RefCount Protocol Flags    Type St Inode Path",
                None,
            ),
            (b"", None),
        ];
        for (input, expected) in table {
            let got = parse_unix_line(input).map(|e| (e.flags, e.inode, e.path));
            assert_eq!(got, *expected, "{}", String::from_utf8_lossy(input));
        }
    }
}
