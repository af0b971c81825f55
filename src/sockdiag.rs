//! The TCP listeners on one port, asked of the kernel through sock_diag
//! netlink (what `ss -tl` does), for naming the holder of a busy port.
//!
//! Why not /proc/net/tcp: the kernel makes that text by walking the whole
//! established-connection hash table (262,144 buckets on the 24 GiB dev
//! machine), once per read(2) that reaches its end, and std reads it in
//! small chunks: 2 ms a file, 4 ms for tcp and tcp6, more on a busy machine
//! (bench/RESULTS.md). Asked for listeners only, inet_diag walks the
//! listening hash alone (net/ipv4/inet_diag.c `inet_diag_dump_icsk`: with
//! only TCPF_LISTEN in `idiag_states` it never reaches the established
//! table) and filters on the source port (`r->id.idiag_sport`).
//!
//! Layouts: include/uapi/linux/netlink.h (nlmsghdr), sock_diag.h
//! (SOCK_DIAG_BY_FAMILY), inet_diag.h (inet_diag_req_v2, inet_diag_sockid,
//! inet_diag_msg). A kernel without inet_diag answers with an error: the
//! caller then reads /proc/net/tcp{,6} as before.

use std::io;
use std::net::SocketAddr;

/// One listening socket: where it listens, its owner, its inode (what
/// `/proc/PID/fd/N` links to as `socket:[INODE]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub uid: u32,
    pub inode: u64,
}

/// Every TCP socket listening on `port`, v4 then v6 (as /proc/net/tcp,
/// then tcp6, list them), in this process's network namespace.
#[cfg(target_os = "linux")]
pub fn tcp_listeners(port: u16) -> io::Result<Vec<Listener>> {
    linux::tcp_listeners(port)
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_listeners(_port: u16) -> io::Result<Vec<Listener>> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Listener;
    use nix::sys::socket::{
        self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::time::Duration;

    /// linux/sock_diag.h.
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    /// linux/netlink.h.
    const NLM_F_REQUEST: u16 = 0x01;
    const NLM_F_DUMP: u16 = 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NLMSG_HDRLEN: usize = 16;
    /// include/net/tcp_states.h.
    const TCP_LISTEN: u8 = 10;
    /// sizeof(struct inet_diag_req_v2), sizeof(struct inet_diag_msg).
    const REQ_LEN: usize = 56;
    const MSG_LEN: usize = 72;
    /// A dump arrives in datagrams of at most 32 KiB (netlink_dump's
    /// allocation is capped there): a larger buffer is never truncated.
    const BUF: usize = 64 * 1024;
    /// The kernel answers at once; this only bounds a kernel that would not.
    const RECV_TIMEOUT: Duration = Duration::from_secs(1);

    pub fn tcp_listeners(port: u16) -> io::Result<Vec<Listener>> {
        let sock = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        let tv = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        socket::setsockopt(&sock, socket::sockopt::ReceiveTimeout, &tv)?;
        let mut buf = vec![0u8; BUF];
        let mut out = Vec::new();
        for (seq, family) in [(1, libc::AF_INET), (2, libc::AF_INET6)] {
            let req = request(seq, family as u8, port);
            socket::sendto(
                sock.as_raw_fd(),
                &req,
                &NetlinkAddr::new(0, 0),
                MsgFlags::empty(),
            )?;
            dump(&sock, seq, port, &mut buf, &mut out)?;
        }
        Ok(out)
    }

    /// A dump request for the TCP listeners of one family on `port`.
    pub(super) fn request(seq: u32, family: u8, port: u16) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + REQ_LEN) as u32;
        let mut m = Vec::with_capacity(len as usize);
        // struct nlmsghdr: len, type, flags, seq, pid (host order).
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // struct inet_diag_req_v2: family, protocol, ext, pad, states.
        m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
        m.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        // struct inet_diag_sockid: sport, dport (big-endian), src[4],
        // dst[4], if, cookie[2]: only the source port filters.
        m.extend_from_slice(&port.to_be_bytes());
        m.resize(m.len() + 2 + 16 + 16 + 4 + 8, 0);
        debug_assert_eq!(m.len(), len as usize);
        m
    }

    /// Reads one dump's answers until NLMSG_DONE.
    fn dump(
        sock: &OwnedFd,
        seq: u32,
        port: u16,
        buf: &mut [u8],
        out: &mut Vec<Listener>,
    ) -> io::Result<()> {
        // Every answer ends in NLMSG_DONE; a kernel can only send so many
        // listeners: the count bounds a loop that should never run long.
        for _ in 0..10_000 {
            let n = socket::recv(sock.as_raw_fd(), buf, MsgFlags::empty())?;
            if parse(&buf[..n], seq, port, out)? {
                return Ok(());
            }
        }
        Err(io::Error::other("sock_diag: the dump did not end"))
    }

    /// Adds the listeners in one datagram to `out`; whether the dump ended.
    pub(super) fn parse(
        mut data: &[u8],
        seq: u32,
        port: u16,
        out: &mut Vec<Listener>,
    ) -> io::Result<bool> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "sock_diag: malformed answer");
        if data.is_empty() {
            return Err(bad());
        }
        while !data.is_empty() {
            // struct nlmsghdr: len, type, flags, seq, pid.
            let len = ne_u32(data, 0).ok_or_else(bad)? as usize;
            let kind = data
                .get(4..6)
                .map(|t| u16::from_ne_bytes([t[0], t[1]]))
                .ok_or_else(bad)?;
            if len < NLMSG_HDRLEN || len > data.len() {
                return Err(bad());
            }
            let (msg, rest) = data.split_at(len);
            // NLMSG_ALIGN: the next message starts on a 4-byte boundary.
            data = rest.get((4 - len % 4) % 4..).unwrap_or(&[]);
            if ne_u32(msg, 8) != Some(seq) {
                continue;
            }
            let body = &msg[NLMSG_HDRLEN..];
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    // struct nlmsgerr: a negative errno first.
                    let errno = ne_u32(body, 0).map_or(0, |e| e as i32);
                    return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
                }
                SOCK_DIAG_BY_FAMILY if body.len() >= MSG_LEN => {
                    if let Some(l) = listener(body).filter(|l| l.addr.port() == port) {
                        out.push(l);
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(false)
    }

    /// The host-order u32 at `at`, if there is one.
    fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(*b.get(at..)?.first_chunk::<4>()?))
    }

    /// struct inet_diag_msg: family, state, timer, retrans, the sockid
    /// (sport at 4, src at 8), expires, rqueue, wqueue, uid at 64, inode
    /// at 68. Not a listener, or of no inet family: None.
    fn listener(b: &[u8]) -> Option<Listener> {
        let (&family, &state) = (b.first()?, b.get(1)?);
        if state != TCP_LISTEN {
            return None;
        }
        let port = u16::from_be_bytes(*b.get(4..)?.first_chunk::<2>()?);
        let ip = match i32::from(family) {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::from(*b.get(8..)?.first_chunk::<4>()?)),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(*b.get(8..)?.first_chunk::<16>()?)),
            _ => return None,
        };
        Some(Listener {
            addr: SocketAddr::new(ip, port),
            uid: ne_u32(b, 64)?,
            inode: u64::from(ne_u32(b, 68)?),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::linux::{parse, request};
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    /// The inode of a socket this process holds, as /proc/self/fd shows it.
    fn inode_of(fd: &impl std::os::fd::AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino()
    }

    #[test]
    fn finds_this_processs_listeners_on_the_port_and_no_other() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        // Connected sockets on the port are not listeners.
        let _c = std::net::TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let got = tcp_listeners(port).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(
            got,
            vec![Listener {
                addr: v4.local_addr().unwrap(),
                uid: me,
                inode: inode_of(&v4),
            }]
        );
        // A v6 listener on the same port (when ::1 exists) comes after.
        if let Ok(v6) = TcpListener::bind(("::1", port)) {
            let got = tcp_listeners(port).unwrap();
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[1].addr, v6.local_addr().unwrap());
            assert_eq!(got[1].inode, inode_of(&v6));
        }
        let theirs = other.local_addr().unwrap().port();
        assert!(
            tcp_listeners(theirs)
                .unwrap()
                .iter()
                .all(|l| l.addr.port() == theirs)
        );
    }

    #[test]
    fn the_request_is_laid_out_as_inet_diag_h_says() {
        let r = request(7, libc::AF_INET6 as u8, 3131);
        assert_eq!(r.len(), 72);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 20);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..20], &[libc::AF_INET6 as u8, 6, 0, 0]);
        assert_eq!(u32::from_ne_bytes(r[20..24].try_into().unwrap()), 1 << 10);
        assert_eq!(&r[24..26], &3131u16.to_be_bytes());
        assert!(r[26..].iter().all(|&b| b == 0));
    }

    /// One netlink message of `kind` with `body`, for sequence `seq`.
    fn msg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn diag(state: u8, port: u16, inode: u32) -> Vec<u8> {
        let mut b = vec![0u8; 72];
        b[0] = libc::AF_INET as u8;
        b[1] = state;
        b[4..6].copy_from_slice(&port.to_be_bytes());
        b[8..12].copy_from_slice(&[127, 0, 0, 1]);
        b[64..68].copy_from_slice(&1000u32.to_ne_bytes());
        b[68..72].copy_from_slice(&inode.to_ne_bytes());
        b
    }

    #[test]
    fn answers_are_read_as_the_kernel_lays_them_out() {
        let mut out = Vec::new();
        let data = [
            msg(20, 1, &diag(10, 3131, 77)),
            msg(20, 1, &diag(1, 3131, 78)), // established: not a listener
            msg(20, 1, &diag(10, 3132, 79)), // another port
            msg(20, 9, &diag(10, 3131, 80)), // another request's
        ]
        .concat();
        assert!(!parse(&data, 1, 3131, &mut out).unwrap());
        assert_eq!(
            out,
            vec![Listener {
                addr: "127.0.0.1:3131".parse().unwrap(),
                uid: 1000,
                inode: 77
            }]
        );
        assert!(parse(&msg(3, 1, &[0; 4]), 1, 3131, &mut out).unwrap());
        let err = parse(&msg(2, 1, &(-2i32).to_ne_bytes()), 1, 3131, &mut out).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        // A bare header is a whole message; one of odd length is padded
        // to four bytes before the next (NLMSG_ALIGN).
        assert!(parse(&msg(3, 1, &[]), 1, 3131, &mut out).unwrap());
        out.clear();
        let odd = [msg(20, 9, &[0; 5]), msg(20, 1, &diag(10, 3131, 81))].concat();
        assert!(!parse(&odd, 1, 3131, &mut out).unwrap());
        assert_eq!(out.iter().map(|l| l.inode).collect::<Vec<_>>(), [81]);
        for broken in [
            vec![],
            // Longer than the datagram; shorter than its own header.
            vec![200, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            vec![8, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            // An answer too short to be an inet_diag_msg.
            msg(20, 1, &[0; 10]),
        ] {
            assert!(parse(&broken, 1, 3131, &mut out).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn many_listeners_on_one_port_span_datagrams_and_are_all_listed() {
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, setsockopt,
            socket, sockopt,
        };
        use std::os::fd::AsRawFd;
        // SO_REUSEPORT: sixty listeners of one user on one port, more than
        // one netlink datagram holds (a page, 88 bytes each).
        let open = |port: u16| {
            let s = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap();
            setsockopt(&s, sockopt::ReusePort, &true).unwrap();
            bind(s.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
            listen(&s, Backlog::new(1).unwrap()).unwrap();
            s
        };
        let first = open(0);
        let port = nix::sys::socket::getsockname::<SockaddrIn>(first.as_raw_fd())
            .unwrap()
            .port();
        let mut all = vec![first];
        all.extend((1..60).map(|_| open(port)));
        let mut want: Vec<u64> = all.iter().map(inode_of).collect();
        let mut got: Vec<u64> = tcp_listeners(port)
            .unwrap()
            .iter()
            .map(|l| l.inode)
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
    }
}
