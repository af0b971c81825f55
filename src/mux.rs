//! OpenSSH's multiplexing protocol, client side, as far as rosh-ssh needs
//! it: whether a master answers on a control socket, and its pid. The same
//! exchange as `ssh -O check`, without spawning ssh (about 4 ms of dynamic
//! linking per run, bench/RESULTS.md), and bounded in time.
//!
//! mux.c, protocol version 4 (`SSHMUX_VER`, clientloop.h), identical in
//! every release from 8.0p1 to 10.5p1: each message is a uint32 length and
//! that many bytes (`mux_client_write_packet`, `mux_client_read_packet`).
//! The master sends `MUX_MSG_HELLO` and its version as soon as it accepts
//! (`mux_master_read_cb`), followed by extensions as pairs of strings
//! (10.3p1 and later send `info`); the client sends its own hello, then
//! `MUX_C_ALIVE_CHECK` with a request id, answered by `MUX_S_ALIVE`, the
//! same id and the master's pid (`mux_master_process_alive_check`). A
//! master of another uid closes the connection (`mux_master_control_client`
//! checks getpeereid). A request the master refuses is answered by another
//! type, the request id and an error string (`reply_error`).

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, MsgFlags, UnixAddr};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a check may take in all: connecting, both hellos and the
/// answer. A live master answers in well under a millisecond; a socket
/// that never answers (a stopped master, something else listening) costs
/// this much, once.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// clientloop.h `SSHMUX_VER`.
const SSHMUX_VER: u32 = 4;
/// mux.c message types.
const MUX_MSG_HELLO: u32 = 0x0000_0001;
const MUX_C_ALIVE_CHECK: u32 = 0x1000_0004;
const MUX_S_ALIVE: u32 = 0x8000_0005;
/// mux.c `muxclient_request_id` starts at 0: `ssh -O check` sends this id.
const REQUEST_ID: u32 = 0;
/// sizeof(sun_path): muxclient() refuses a path that does not fit with its
/// NUL (`ControlPath too long`).
const SUN_PATH: usize = 108;
/// The longest answer read. The master's answers to these two requests are
/// a few dozen bytes; a peer announcing more is not a master.
const MAX_PACKET: u32 = 64 * 1024;

/// Why no master answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The path does not fit a socket address.
    TooLong,
    /// connect(2) failed: nothing there (ENOENT), a stale socket
    /// (ECONNREFUSED), not a socket (ECONNREFUSED, ENOTSOCK), no access.
    Connect(Errno),
    /// A read or write failed.
    Io(Errno),
    /// Nothing (or not enough) arrived within the time allowed.
    TimedOut,
    /// The peer closed the connection before answering.
    Closed,
    /// The peer answered with something that is not the mux protocol.
    Malformed(&'static str),
    /// A master of another protocol version.
    Version(u32),
    /// The master refused the request, with its message.
    Refused(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TooLong => f.write_str("control path too long for a socket address"),
            Failure::Connect(e) => write!(f, "cannot connect: {}", e.desc()),
            Failure::Io(e) => write!(f, "{}", e.desc()),
            Failure::TimedOut => f.write_str("no answer in time"),
            Failure::Closed => f.write_str("closed without answering"),
            Failure::Malformed(what) => write!(f, "not a mux answer: {what}"),
            Failure::Version(v) => {
                write!(f, "mux protocol version {v} (expected {SSHMUX_VER})")
            }
            Failure::Refused(m) => write!(f, "master refused: {m}"),
        }
    }
}

/// The pid of the master answering on `path`, asked as `ssh -O check`
/// asks, within `timeout` in all.
pub fn alive_check(path: &Path, timeout: Duration) -> Result<u32, Failure> {
    let deadline = Instant::now() + timeout;
    let sock = connect(path, deadline)?;
    let fd = sock.as_fd();
    send(fd, &packet(&[MUX_MSG_HELLO, SSHMUX_VER]), deadline)?;
    let hello = read_packet(fd, deadline)?;
    check_hello(&hello)?;
    send(fd, &packet(&[MUX_C_ALIVE_CHECK, REQUEST_ID]), deadline)?;
    let answer = read_packet(fd, deadline)?;
    parse_alive(&answer)
}

/// A message: its length, then each word big-endian (sshbuf_put_u32).
fn packet(words: &[u32]) -> Vec<u8> {
    let mut out = ((words.len() * 4) as u32).to_be_bytes().to_vec();
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// A non-blocking connection to `path`. A listener whose backlog is full
/// answers EAGAIN at once (a blocking connect would wait): tried again
/// until the deadline.
fn connect(path: &Path, deadline: Instant) -> Result<OwnedFd, Failure> {
    if path.as_os_str().as_bytes().len() >= SUN_PATH {
        return Err(Failure::TooLong);
    }
    let addr = UnixAddr::new(path).map_err(|_| Failure::TooLong)?;
    let sock = crate::events::stream_socket(AddressFamily::Unix, true).map_err(Failure::Connect)?;
    loop {
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&sock), &addr) {
            Ok(()) => return Ok(sock),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                if Instant::now() >= deadline {
                    return Err(Failure::TimedOut);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Failure::Connect(e)),
        }
    }
}

/// MSG_NOSIGNAL: a peer that has gone must cost an error, not the SIGPIPE
/// that would end a caller that does not ignore it (rosh-ssh's `main`
/// does). Darwin has no such flag.
#[cfg(not(target_vendor = "apple"))]
const NO_SIGPIPE: MsgFlags = MsgFlags::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const NO_SIGPIPE: MsgFlags = MsgFlags::empty();

/// Waits until `fd` is ready for `what` or the deadline passes.
fn wait(
    fd: std::os::fd::BorrowedFd<'_>,
    what: PollFlags,
    deadline: Instant,
) -> Result<(), Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut);
        }
        // Rounded up: a poll of 0 ms would spin until the deadline.
        let ms = u32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        let mut fds = [PollFd::new(fd, what)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => {}
            // Readable, writable, hung up or in error: the read or write
            // that follows says which.
            Ok(_) => return Ok(()),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Writes all of `bytes`.
fn send(
    fd: std::os::fd::BorrowedFd<'_>,
    mut bytes: &[u8],
    deadline: Instant,
) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        match socket::send(fd.as_raw_fd(), bytes, NO_SIGPIPE) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(fd, PollFlags::POLLOUT, deadline)?,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(Failure::Closed),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(())
}

/// Fills `buf` from `fd`.
fn read_exact(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), Failure> {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => return Err(Failure::Closed),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(fd, PollFlags::POLLIN, deadline)?,
            Err(Errno::ECONNRESET) => return Err(Failure::Closed),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(())
}

/// One message's body (mux_client_read_packet: the length, then the body).
fn read_packet(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut len = [0u8; 4];
    read_exact(fd, &mut len, deadline)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_PACKET {
        return Err(Failure::Malformed("message too long"));
    }
    let mut body = vec![0u8; len as usize];
    read_exact(fd, &mut body, deadline)?;
    Ok(body)
}

/// Reads big-endian words and strings off a message (sshbuf_get_u32,
/// sshbuf_get_string).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (w, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*w))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

/// The master's hello (mux_client_hello_exchange): the type, version 4,
/// then any extensions, each a name and a value.
fn check_hello(body: &[u8]) -> Result<(), Failure> {
    let mut r = Reader(body);
    if r.u32() != Some(MUX_MSG_HELLO) {
        return Err(Failure::Malformed("expected a hello"));
    }
    match r.u32() {
        Some(SSHMUX_VER) => {}
        Some(v) => return Err(Failure::Version(v)),
        None => return Err(Failure::Malformed("hello without a version")),
    }
    while !r.0.is_empty() {
        if r.string().is_none() || r.string().is_none() {
            return Err(Failure::Malformed("broken hello extension"));
        }
    }
    Ok(())
}

/// The answer to the alive check (mux_client_request_alive): `MUX_S_ALIVE`,
/// our request id, the pid. Any other type is a refusal, laid out as mux.c
/// `reply_error` writes it: the type, the request id, the message.
fn parse_alive(body: &[u8]) -> Result<u32, Failure> {
    let mut r = Reader(body);
    match r.u32() {
        Some(MUX_S_ALIVE) => {}
        Some(_) => {
            let msg = r
                .u32()
                .and_then(|_| r.string())
                .ok_or(Failure::Malformed("refusal without a message"))?;
            let msg: String = String::from_utf8_lossy(msg)
                .chars()
                .take(200)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            return Err(Failure::Refused(msg));
        }
        None => return Err(Failure::Malformed("empty answer")),
    }
    if r.u32() != Some(REQUEST_ID) {
        return Err(Failure::Malformed("answer to another request"));
    }
    // muxclient(): a pid of 0 is "master alive check failed".
    match r.u32() {
        Some(0) | None => Err(Failure::Malformed("no pid")),
        Some(pid) => Ok(pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tmpdir::PrivateDir;
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};

    /// A fake master on a socket in a private directory: `serve` gets each
    /// accepted connection (on a thread, ended with the test's listener).
    fn peer(serve: impl FnOnce(UnixStream) + Send + 'static) -> (PrivateDir, std::path::PathBuf) {
        let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let path = dir.path().join("ctl");
        let l = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            if let Ok((s, _)) = l.accept() {
                serve(s);
            }
        });
        (dir, path)
    }

    /// The hello a master of `version` sends, with extensions.
    fn hello(version: u32, ext: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut body = [MUX_MSG_HELLO.to_be_bytes(), version.to_be_bytes()].concat();
        for (k, v) in ext {
            for s in [k, v] {
                body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                body.extend_from_slice(s);
            }
        }
        framed(&body)
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        [&(body.len() as u32).to_be_bytes()[..], body].concat()
    }

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Reads one framed message from the client (None once it has hung up).
    fn recv(s: &mut UnixStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).ok()?;
        Some(body)
    }

    /// A master that speaks the protocol as mux.c does, answering the
    /// alive check with `answer`; what the client sent comes back on `tx`.
    fn master(
        greeting: Vec<u8>,
        answer: Vec<u8>,
    ) -> (
        PrivateDir,
        std::path::PathBuf,
        std::sync::mpsc::Receiver<Vec<Vec<u8>>>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (d, p) = peer(move |mut s| {
            s.write_all(&greeting).unwrap();
            // A client that gave up after the hello sends nothing more.
            let (Some(a), Some(b)) = (recv(&mut s), recv(&mut s)) else {
                return;
            };
            let _ = tx.send(vec![a, b]);
            let _ = s.write_all(&answer);
        });
        (d, p, rx)
    }

    /// Each bad peer fails within the time allowed, and says why.
    /// On a thread of its own: a check that would block for good fails the
    /// test instead of hanging it.
    fn bounded(path: &Path) -> (Result<u32, Failure>, Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = alive_check(&path, Duration::from_millis(300));
            let _ = tx.send((r, t.elapsed()));
        });
        let (r, took) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the check ended within 5 s");
        assert!(took < Duration::from_secs(2), "{r:?} took {took:?}");
        (r, took)
    }

    #[test]
    fn speaks_as_ssh_o_check_and_reads_the_pid() {
        let ok = framed(&words(&[MUX_S_ALIVE, REQUEST_ID, 4242]));
        let (_d, path, rx) = master(hello(4, &[]), ok);
        assert_eq!(alive_check(&path, TIMEOUT), Ok(4242));
        // Byte for byte what mux_client_hello_exchange and
        // mux_client_request_alive send.
        let sent = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(sent, vec![words(&[1, 4]), words(&[0x1000_0004, 0])]);
    }

    #[test]
    fn a_newer_masters_hello_extensions_are_skipped() {
        // 10.3p1 and later: "info" = "0"; a later one may say more.
        let ok = framed(&words(&[MUX_S_ALIVE, REQUEST_ID, 7]));
        let long = vec![b'v'; 8 * 1024];
        let ext: [(&[u8], &[u8]); 3] = [(b"info", b"0"), (b"x", b""), (b"long", &long)];
        let (_d, path, _rx) = master(hello(4, &ext), ok.clone());
        assert_eq!(alive_check(&path, TIMEOUT), Ok(7));
        // The longest message read: type, version, one name of 1 byte and
        // a value filling the rest.
        let fill = vec![b'v'; MAX_PACKET as usize - 8 - 5 - 4];
        let greeting = hello(4, &[(b"x", &fill)]);
        assert_eq!(greeting.len(), 4 + MAX_PACKET as usize);
        let (_d, path, _rx) = master(greeting, ok);
        assert_eq!(alive_check(&path, TIMEOUT), Ok(7));
    }

    #[test]
    fn answers_that_are_not_an_alive_masters() {
        let refusal = [
            &words(&[0x8000_0003, REQUEST_ID])[..],
            &framed(b"permission denied")[..],
        ]
        .concat();
        let table: Vec<(Vec<u8>, Vec<u8>, Failure)> = vec![
            (hello(3, &[]), vec![], Failure::Version(3)),
            (
                framed(&words(&[2, 4])),
                vec![],
                Failure::Malformed("expected a hello"),
            ),
            (
                framed(&words(&[1])),
                vec![],
                Failure::Malformed("hello without a version"),
            ),
            (
                framed(&[&words(&[1, 4])[..], &[0, 0, 0, 9, b'x']].concat()),
                vec![],
                Failure::Malformed("broken hello extension"),
            ),
            // A name and no value.
            (
                framed(&[&words(&[1, 4])[..], &[0, 0, 0, 1, b'x']].concat()),
                vec![],
                Failure::Malformed("broken hello extension"),
            ),
            (
                hello(4, &[]),
                framed(&words(&[MUX_S_ALIVE, 99, 5])),
                Failure::Malformed("answer to another request"),
            ),
            (
                hello(4, &[]),
                framed(&words(&[MUX_S_ALIVE, REQUEST_ID, 0])),
                Failure::Malformed("no pid"),
            ),
            (
                hello(4, &[]),
                framed(&refusal),
                Failure::Refused("permission denied".into()),
            ),
            (
                hello(4, &[]),
                framed(&[]),
                Failure::Malformed("empty answer"),
            ),
            (
                hello(4, &[]),
                (MAX_PACKET + 1).to_be_bytes().to_vec(),
                Failure::Malformed("message too long"),
            ),
        ];
        for (greeting, answer, want) in table {
            let (_d, path, _rx) = master(greeting.clone(), answer.clone());
            let (got, _) = bounded(&path);
            assert_eq!(got, Err(want), "hello {greeting:?} answer {answer:?}");
        }
    }

    #[test]
    fn a_socket_that_never_answers_costs_the_timeout_once() {
        // Accepts and keeps the connection open, silent.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (_d, path) = peer(move |s| {
            let _ = rx.recv_timeout(Duration::from_secs(10));
            drop(s);
        });
        let (got, took) = bounded(&path);
        assert_eq!(got, Err(Failure::TimedOut));
        assert!(took >= Duration::from_millis(300), "{took:?}");
        drop(tx);
    }

    #[test]
    fn a_listener_that_never_accepts_costs_the_timeout_once() {
        // Nobody calls accept: connect succeeds (the backlog), no hello.
        let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let path = dir.path().join("ctl");
        let _l = UnixListener::bind(&path).unwrap();
        assert_eq!(bounded(&path).0, Err(Failure::TimedOut));
    }

    #[test]
    fn a_full_backlog_is_waited_on_until_the_deadline_no_longer() {
        use nix::sys::socket::{Backlog, bind, listen};
        use std::os::fd::AsRawFd;
        let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let path = dir.path().join("ctl");
        let addr = UnixAddr::new(&path).unwrap();
        // The test's own sockets, non-blocking.
        let nonblocking = || crate::events::stream_socket(AddressFamily::Unix, true).unwrap();
        let l = nonblocking();
        bind(l.as_raw_fd(), &addr).unwrap();
        listen(&l, Backlog::new(0).unwrap()).unwrap();
        // Nobody accepts: connect until the queue is full (EAGAIN).
        let mut queued = Vec::new();
        let full = (0..64).any(|_| {
            let s = nonblocking();
            match socket::connect(s.as_raw_fd(), &addr) {
                Ok(()) => {
                    queued.push(s);
                    false
                }
                Err(e) => e == Errno::EAGAIN,
            }
        });
        assert!(full, "{} queued and never EAGAIN", queued.len());
        let (got, took) = bounded(&path);
        assert_eq!(got, Err(Failure::TimedOut));
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn garbage_in_a_trickle_still_ends_at_the_deadline() {
        // A peer announcing a long message and sending it a byte at a time.
        let (_d, path) = peer(|mut s| {
            let _ = s.write_all(&1000u32.to_be_bytes());
            for _ in 0..100 {
                if s.write_all(b"?").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!(bounded(&path).0, Err(Failure::TimedOut));
    }

    #[test]
    fn garbage_and_hang_ups() {
        let table: Vec<(Vec<u8>, Failure)> = vec![
            // An HTTP server, say: its "length" is far too long.
            (
                b"HTTP/1.0 400 Bad Request\r\n\r\n".to_vec(),
                Failure::Malformed("message too long"),
            ),
            (vec![], Failure::Closed),
            (vec![0, 0], Failure::Closed),
            (vec![0, 0, 0, 8, 0, 0], Failure::Closed),
        ];
        for (bytes, want) in table {
            let b = bytes.clone();
            let (_d, path) = peer(move |mut s| {
                // The client's hello first (else a close before it arrives
                // is the client's EPIPE, whatever the bytes), then the
                // answer, then the close.
                let mut hello = [0u8; 12];
                let _ = s.read_exact(&mut hello);
                let _ = s.write_all(&b);
            });
            assert_eq!(bounded(&path).0, Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn paths_where_no_master_can_be() {
        let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let file = dir.file("plain", b"not a socket").unwrap();
        // A socket file whose listener is gone: a stale control socket.
        let stale = dir.path().join("stale");
        drop(UnixListener::bind(&stale).unwrap());
        let long = dir.path().join("x".repeat(SUN_PATH));
        let table = [
            (dir.path().join("missing"), Failure::Connect(Errno::ENOENT)),
            (file, Failure::Connect(Errno::ECONNREFUSED)),
            (stale, Failure::Connect(Errno::ECONNREFUSED)),
            (
                dir.path().to_path_buf(),
                Failure::Connect(Errno::ECONNREFUSED),
            ),
            (long, Failure::TooLong),
        ];
        for (path, want) in table {
            assert_eq!(bounded(&path).0, Err(want), "{}", path.display());
        }
    }

    #[test]
    fn the_longest_path_ssh_accepts_is_tried() {
        // 107 bytes and the NUL fill sun_path: muxclient() connects.
        let dir = PrivateDir::new_in(Path::new("/tmp")).unwrap();
        let base = dir.path().as_os_str().len() + 1;
        let path = dir.path().join("s".repeat(SUN_PATH - 1 - base));
        assert_eq!(path.as_os_str().len(), SUN_PATH - 1);
        assert_eq!(bounded(&path).0, Err(Failure::Connect(Errno::ENOENT)));
    }

    #[test]
    fn failures_read_as_one_phrase() {
        let table = [
            (Failure::TimedOut, "no answer in time"),
            (Failure::Version(5), "mux protocol version 5 (expected 4)"),
            (Failure::Refused("x".into()), "master refused: x"),
            (
                Failure::Connect(Errno::ENOENT),
                "cannot connect: No such file or directory",
            ),
        ];
        for (f, want) in table {
            assert_eq!(f.to_string(), want);
        }
    }
}
