//! macOS: the holder through libproc, as `lsof` finds it.
//!
//! Every pid (proc_listallpids), its descriptors (proc_pidinfo
//! PROC_PIDLISTFDS), and each socket's address and state (proc_pidfdinfo
//! PROC_PIDFDSOCKETINFO). libproc refuses another user's process (EPERM)
//! unless we are root: such a holder is "not visible".
//!
//! The libc crate declares proc_fdinfo and the calls but not `struct
//! socket_fdinfo`: it is declared here from the SDK header <sys/proc_info.h>
//! (xnu bsd/sys/proc_info.h), in fixed-size types so that its layout and its
//! decoding are checked (and unit-tested) on every system rosh-ssh builds on.

#[cfg(target_vendor = "apple")]
use super::{Holder, Unknown};
use super::{covers, unmapped};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// struct proc_fileinfo
// Fields mirror the header: most are there for the layout only.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct ProcFileinfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: i64,
    fi_type: i32,
    fi_guardflags: u32,
}

/// struct vinfo_stat ("a copy of stat64 with static sized fields").
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct VinfoStat {
    vst_dev: u32,
    vst_mode: u16,
    vst_nlink: u16,
    vst_ino: u64,
    vst_uid: u32,
    vst_gid: u32,
    /// vst_atime, vst_atimensec, vst_mtime, vst_mtimensec, vst_ctime,
    /// vst_ctimensec, vst_birthtime, vst_birthtimensec.
    vst_times: [i64; 8],
    vst_size: i64,
    vst_blocks: i64,
    vst_blksize: i32,
    vst_flags: u32,
    vst_gen: u32,
    vst_rdev: u32,
    vst_qspare: [i64; 2],
}

/// struct sockbuf_info
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct SockbufInfo {
    sbi_cc: u32,
    sbi_hiwat: u32,
    sbi_mbcnt: u32,
    sbi_mbmax: u32,
    sbi_lowat: u32,
    sbi_flags: i16,
    sbi_timeo: i16,
}

/// `union { struct in4in6_addr ina_46; struct in6_addr ina_6; }`: 16 bytes,
/// 4-aligned; an IPv4 address is the last 4 (in4in6_addr pads 3 words first).
#[allow(dead_code)]
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct InAddr46([u8; 16]);

/// The `insi_v6` member of struct in_sockinfo.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct InSiV6 {
    in6_hlim: u8,
    in6_cksum: i32,
    in6_ifindex: u16,
    in6_hops: i16,
}

/// struct in_sockinfo
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct InSockinfo {
    insi_fport: i32,
    /// inp_lport as the kernel keeps it: a u_short in network byte order
    /// (xnu bsd/kern/socket_info.c fill_socketinfo).
    insi_lport: i32,
    insi_gencnt: u64,
    insi_flags: u32,
    insi_flow: u32,
    /// INI_IPV4 and/or INI_IPV6.
    insi_vflag: u8,
    insi_ip_ttl: u8,
    rfu_1: u32,
    insi_faddr: InAddr46,
    insi_laddr: InAddr46,
    /// `struct { u_char in4_tos; } insi_v4`.
    insi_v4: u8,
    insi_v6: InSiV6,
}

/// struct tcp_sockinfo
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpSockinfo {
    tcpsi_ini: InSockinfo,
    tcpsi_state: i32,
    tcpsi_timer: [i32; 4],
    tcpsi_mss: i32,
    tcpsi_flags: u32,
    rfu_1: u32,
    tcpsi_tp: u64,
}

/// struct un_sockinfo; each address is `union { struct sockaddr_un ua_sun;
/// char ua_dummy[SOCK_MAXADDRLEN]; }` (SOCK_MAXADDRLEN 255), holding the
/// bound address as sun_len bytes: sun_len, sun_family, sun_path.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct UnSockinfo {
    unsi_conn_so: u64,
    unsi_conn_pcb: u64,
    unsi_addr: [u8; 255],
    unsi_caddr: [u8; 255],
}

/// The `soi_proto` union of struct socket_info, the members read here;
/// un_sockinfo is the largest of all seven (ndrv, kern_event, kern_ctl,
/// vsock and in_sockinfo are smaller), so the size is the header's.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
union SoiProto {
    pri_tcp: TcpSockinfo,
    pri_un: UnSockinfo,
}

/// struct socket_info
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct SocketInfo {
    soi_stat: VinfoStat,
    soi_so: u64,
    soi_pcb: u64,
    soi_type: i32,
    soi_protocol: i32,
    soi_family: i32,
    soi_options: i16,
    soi_linger: i16,
    soi_state: i16,
    soi_qlen: i16,
    soi_incqlen: i16,
    soi_qlimit: i16,
    soi_timeo: i16,
    soi_error: u16,
    soi_oobmark: u32,
    soi_rcv: SockbufInfo,
    soi_snd: SockbufInfo,
    soi_kind: i32,
    rfu_1: u32,
    soi_proto: SoiProto,
}

/// struct socket_fdinfo: what proc_pidfdinfo(PROC_PIDFDSOCKETINFO) fills.
#[allow(dead_code)]
#[repr(C)]
#[derive(Clone, Copy)]
struct SocketFdinfo {
    pfi: ProcFileinfo,
    psi: SocketInfo,
}

// PROC_PIDFDSOCKETINFO_SIZE is sizeof(struct socket_fdinfo): 792 on 64-bit
// macOS. proc_pidfdinfo fills exactly that many bytes or fails, so a wrong
// size here would read nothing; wrong offsets would read garbage: pinned.
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<VinfoStat>() == 136);
    assert!(size_of::<SockbufInfo>() == 24);
    assert!(size_of::<InSockinfo>() == 80);
    assert!(offset_of!(InSockinfo, insi_laddr) == 48);
    assert!(size_of::<TcpSockinfo>() == 120);
    assert!(offset_of!(TcpSockinfo, tcpsi_state) == 80);
    assert!(size_of::<UnSockinfo>() == 528);
    assert!(offset_of!(SocketInfo, soi_options) == 164);
    assert!(offset_of!(SocketInfo, soi_kind) == 232);
    assert!(offset_of!(SocketInfo, soi_proto) == 240);
    assert!(size_of::<SocketInfo>() == 768);
    assert!(offset_of!(SocketFdinfo, psi) == 24);
    assert!(size_of::<SocketFdinfo>() == 792);
};

/// <sys/proc_info.h> soi_kind values.
const SOCKINFO_TCP: i32 = 2;
const SOCKINFO_UN: i32 = 3;
/// <sys/proc_info.h> tcpsi_state of a listening socket.
const TSI_S_LISTEN: i32 = 1;
/// <sys/proc_info.h> insi_vflag bit of an IPv6 socket.
const INI_IPV6: u8 = 0x2;
/// <sys/proc_info.h> proc_pidfdinfo flavor (the libc crate lacks it).
#[cfg(target_vendor = "apple")]
const PROC_PIDFDSOCKETINFO: libc::c_int = 3;
/// <sys/socket.h> (BSD): so_options bit of a listening socket.
const SO_ACCEPTCONN: i16 = 0x0002;

/// A listening socket as libproc describes it.
#[derive(Debug, PartialEq, Eq)]
enum Listener {
    Tcp(SocketAddr),
    Unix(Vec<u8>),
}

/// The listener this socket is, if it is one (TCP in LISTEN, a unix socket
/// accepting connections).
fn listener(info: &SocketFdinfo) -> Option<Listener> {
    let psi = &info.psi;
    match psi.soi_kind {
        SOCKINFO_TCP => {
            // SAFETY: soi_kind says the union holds a tcp_sockinfo.
            let tcp = unsafe { &psi.soi_proto.pri_tcp };
            if tcp.tcpsi_state != TSI_S_LISTEN {
                return None;
            }
            let ini = &tcp.tcpsi_ini;
            let port = u16::from_be(ini.insi_lport as u16);
            let bytes = ini.insi_laddr.0;
            let ip = if ini.insi_vflag & INI_IPV6 != 0 {
                IpAddr::V6(Ipv6Addr::from(bytes))
            } else {
                IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
            };
            Some(Listener::Tcp(SocketAddr::new(ip, port)))
        }
        SOCKINFO_UN => {
            if psi.soi_options & SO_ACCEPTCONN == 0 {
                return None;
            }
            // SAFETY: soi_kind says the union holds an un_sockinfo.
            let addr = unsafe { &psi.soi_proto.pri_un.unsi_addr };
            let len = usize::from(addr[0]).clamp(2, addr.len());
            let path = &addr[2..len];
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            Some(Listener::Unix(path[..end].to_vec()))
        }
        _ => None,
    }
}

/// How well `found` answers the question: 0 the very address (or path), 1 a
/// wildcard covering it, None not at all.
fn rank(found: &Listener, want: &Listener) -> Option<u8> {
    match (found, want) {
        (Listener::Tcp(f), Listener::Tcp(w)) if f.port() == w.port() => {
            covers(f.ip(), unmapped(w.ip()))
        }
        (Listener::Unix(f), Listener::Unix(w)) if f == w => Some(0),
        _ => None,
    }
}

/// The best (rank, then lowest pid: the parent that listened before
/// forking workers) among `(pid, listener)` pairs.
fn best(sockets: impl IntoIterator<Item = (u32, Listener)>, want: &Listener) -> Option<u32> {
    sockets
        .into_iter()
        .filter_map(|(pid, found)| Some((rank(&found, want)?, pid)))
        .min()
        .map(|(_, pid)| pid)
}

/// (`_first`, the process to look at first, is Linux's shortcut past a
/// walk of /proc; libproc lists every process's sockets in one pass.)
#[cfg(target_vendor = "apple")]
pub fn tcp_listener(addr: SocketAddr, _first: Option<u32>) -> Result<Holder, Unknown> {
    search(&Listener::Tcp(addr))
}

#[cfg(target_vendor = "apple")]
pub fn unix_listener(path: &[u8], _first: Option<u32>) -> Result<Holder, Unknown> {
    search(&Listener::Unix(path.to_vec()))
}

/// Every listening socket of every process we may inspect, then the best.
#[cfg(target_vendor = "apple")]
fn search(want: &Listener) -> Result<Holder, Unknown> {
    let mut refused = false;
    let mut sockets = Vec::new();
    for pid in sys::all_pids().ok_or(Unknown::NotFound)? {
        match sys::socket_fds(pid) {
            Ok(fds) => sockets.extend(
                fds.into_iter()
                    .filter_map(|fd| listener(&sys::socket_info(pid, fd)?))
                    .map(|l| (pid as u32, l)),
            ),
            Err(denied) => refused |= denied,
        }
    }
    match best(sockets, want) {
        Some(pid) => Ok(Holder {
            pid,
            cmdline: sys::cmdline(pid as i32),
        }),
        None if refused && !nix::unistd::geteuid().is_root() => Err(Unknown::NotVisible),
        None => Err(Unknown::NotFound),
    }
}

#[cfg(target_vendor = "apple")]
mod sys {
    use super::SocketFdinfo;
    use std::mem::MaybeUninit;

    /// Every pid on the system (proc_listallpids answers a count of pids).
    pub fn all_pids() -> Option<Vec<i32>> {
        // SAFETY: a size query with no buffer.
        let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        let room = usize::try_from(n).ok()? + 64;
        let mut pids = vec![0i32; room];
        let bytes = (room * size_of::<i32>()) as libc::c_int;
        // SAFETY: the buffer holds `bytes` bytes.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        pids.truncate(usize::try_from(n).ok()?.min(room));
        Some(pids)
    }

    /// The socket fds of `pid`; Err(true) when the system refuses to say
    /// (EPERM: another user's process), Err(false) when it is gone.
    pub fn socket_fds(pid: i32) -> Result<Vec<i32>, bool> {
        // libproc answers 0 and sets errno on failure; a process with no fd
        // at all answers 0 too, so errno starts clear.
        let refused = || nix::errno::Errno::last() == nix::errno::Errno::EPERM;
        nix::errno::Errno::clear();
        // SAFETY: a size query with no buffer.
        let n =
            unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Err(refused());
        }
        let room = n as usize / size_of::<libc::proc_fdinfo>() + 16;
        let mut fds: Vec<libc::proc_fdinfo> = Vec::with_capacity(room);
        let bytes = (room * size_of::<libc::proc_fdinfo>()) as libc::c_int;
        // SAFETY: the buffer has room for `bytes` bytes; the kernel says how
        // many it wrote, and only those are made visible.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDLISTFDS,
                0,
                fds.as_mut_ptr().cast(),
                bytes,
            )
        };
        if n <= 0 {
            return Err(refused());
        }
        unsafe { fds.set_len((n as usize / size_of::<libc::proc_fdinfo>()).min(room)) };
        Ok(fds
            .iter()
            .filter(|f| f.proc_fdtype == libc::PROX_FDTYPE_SOCKET as u32)
            .map(|f| f.proc_fd)
            .collect())
    }

    /// proc_pidfdinfo(PROC_PIDFDSOCKETINFO): the whole struct, or nothing.
    pub fn socket_info(pid: i32, fd: i32) -> Option<SocketFdinfo> {
        let mut info = MaybeUninit::<SocketFdinfo>::zeroed();
        let size = size_of::<SocketFdinfo>() as libc::c_int;
        // SAFETY: the buffer is exactly PROC_PIDFDSOCKETINFO_SIZE bytes.
        let got = unsafe {
            libc::proc_pidfdinfo(
                pid,
                fd,
                super::PROC_PIDFDSOCKETINFO,
                info.as_mut_ptr().cast(),
                size,
            )
        };
        // SAFETY: filled whole (and zeroed before): every bit pattern is a
        // valid SocketFdinfo (integers and byte arrays only).
        (got == size).then(|| unsafe { info.assume_init() })
    }

    /// Its argv, or `[name]` when that is not readable.
    pub fn cmdline(pid: i32) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        if let Some(words) = crate::procinfo::args(pid).filter(|w| !w.is_empty()) {
            let raw: Vec<u8> = words
                .iter()
                .flat_map(|w| w.as_bytes().iter().copied().chain([0]))
                .collect();
            // An ssh that rosh-ssh ran is named by its user's words.
            let raw = crate::plumbing::unplumbed(&raw);
            let line: Vec<&[u8]> = raw.split(|&b| b == 0).filter(|w| !w.is_empty()).collect();
            return line.join(&b' ');
        }
        let mut name = [0u8; 2 * 16 + 1];
        // SAFETY: the buffer is as long as we say.
        let n = unsafe { libc::proc_name(pid, name.as_mut_ptr().cast(), name.len() as u32) };
        let n = usize::try_from(n).unwrap_or(0).min(name.len());
        [b"[", &name[..n], b"]"].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> SocketFdinfo {
        // SAFETY: integers and byte arrays only: all zeroes is a value.
        unsafe { std::mem::zeroed() }
    }

    /// A TCP socket as xnu fills it: port in network order, v4 addresses in
    /// the last 4 bytes of in4in6_addr.
    fn tcp(addr: SocketAddr, state: i32) -> SocketFdinfo {
        let mut info = zeroed();
        info.psi.soi_kind = SOCKINFO_TCP;
        let mut t: TcpSockinfo = unsafe { info.psi.soi_proto.pri_tcp };
        t.tcpsi_state = state;
        t.tcpsi_ini.insi_lport = i32::from(addr.port().to_be());
        match addr.ip() {
            IpAddr::V4(v4) => {
                t.tcpsi_ini.insi_vflag = 0x1;
                t.tcpsi_ini.insi_laddr.0[12..].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                t.tcpsi_ini.insi_vflag = INI_IPV6;
                t.tcpsi_ini.insi_laddr.0 = v6.octets();
            }
        }
        info.psi.soi_proto.pri_tcp = t;
        info
    }

    fn unix(path: &[u8], options: i16) -> SocketFdinfo {
        let mut info = zeroed();
        info.psi.soi_kind = SOCKINFO_UN;
        info.psi.soi_options = options;
        let mut un: UnSockinfo = unsafe { info.psi.soi_proto.pri_un };
        // sockaddr_un as bound: sun_len, sun_family (AF_UNIX 1), the path.
        un.unsi_addr[0] = (2 + path.len()) as u8;
        un.unsi_addr[1] = 1;
        un.unsi_addr[2..2 + path.len()].copy_from_slice(path);
        info.psi.soi_proto.pri_un = un;
        info
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn decodes_listeners_only() {
        let tcp_listen = |s| listener(&tcp(sa(s), TSI_S_LISTEN));
        assert_eq!(
            tcp_listen("127.0.0.1:3131"),
            Some(Listener::Tcp(sa("127.0.0.1:3131")))
        );
        assert_eq!(
            tcp_listen("0.0.0.0:22"),
            Some(Listener::Tcp(sa("0.0.0.0:22")))
        );
        assert_eq!(
            tcp_listen("[::1]:65535"),
            Some(Listener::Tcp(sa("[::1]:65535")))
        );
        assert_eq!(
            tcp_listen("[::]:8080"),
            Some(Listener::Tcp(sa("[::]:8080")))
        );
        // ESTABLISHED (4): a connection, not a listener.
        assert_eq!(listener(&tcp(sa("127.0.0.1:3131"), 4)), None);
        let path = b"/tmp/rosh/s.sock";
        assert_eq!(
            listener(&unix(path, SO_ACCEPTCONN | 0x4)),
            Some(Listener::Unix(path.to_vec()))
        );
        // A connected (not listening) unix socket.
        assert_eq!(listener(&unix(path, 0x4)), None);
        // Another kind of socket (SOCKINFO_IN: UDP).
        let mut udp = tcp(sa("127.0.0.1:53"), TSI_S_LISTEN);
        udp.psi.soi_kind = 1;
        assert_eq!(listener(&udp), None);
    }

    /// A sun_len past the buffer, or too short to hold a family, is no
    /// reason to panic.
    #[test]
    fn odd_unix_lengths() {
        let mut info = unix(b"/s", SO_ACCEPTCONN);
        unsafe { info.psi.soi_proto.pri_un.unsi_addr[0] = 255 };
        assert_eq!(listener(&info), Some(Listener::Unix(b"/s".to_vec())));
        unsafe { info.psi.soi_proto.pri_un.unsi_addr[0] = 1 };
        assert_eq!(listener(&info), Some(Listener::Unix(Vec::new())));
    }

    #[test]
    fn the_best_holder() {
        let t = |s: &str| Listener::Tcp(sa(s));
        let want = t("127.0.0.1:3131");
        let table: &[(&[(u32, &str)], Option<u32>)] = &[
            (&[], None),
            (&[(500, "127.0.0.1:3131")], Some(500)),
            (&[(500, "127.0.0.1:3132")], None),
            (&[(500, "127.0.0.2:3131")], None),
            (&[(500, "[::1]:3131")], None),
            // A wildcard covers it, the exact address wins over it.
            (&[(400, "0.0.0.0:3131"), (500, "127.0.0.1:3131")], Some(500)),
            (&[(400, "[::]:3131")], Some(400)),
            (&[(400, "[::ffff:127.0.0.1]:3131")], Some(400)),
            // Parent and forked workers: the lowest pid.
            (
                &[(900, "127.0.0.1:3131"), (300, "127.0.0.1:3131")],
                Some(300),
            ),
        ];
        for (found, expected) in table {
            let found = found.iter().map(|&(pid, a)| (pid, t(a)));
            assert_eq!(best(found, &want), *expected);
        }
        let u = |p: &[u8]| Listener::Unix(p.to_vec());
        let found = [(7, u(b"/a")), (8, u(b"/b"))];
        assert_eq!(best(found, &u(b"/b")), Some(8));
        assert_eq!(best([(7, u(b"/a"))], &u(b"/a/")), None);
        // A TCP socket is no unix one.
        assert_eq!(best([(7, t("127.0.0.1:1"))], &u(b"/a")), None);
    }
}
