//! Proxy mode: `rosh-ssh --proxy HOST PORT`, a netcat for ssh's `ProxyCommand`.
//!
//! `ProxyCommand rosh-ssh --proxy %h %p` connects to HOST:PORT and relays
//! stdin to the socket and the socket to stdout, like `ssh -W` or `nc`;
//! with `ProxyUseFdpass yes` and `--fdpass` it hands the connected socket to
//! ssh instead (sshconnect.c ssh_proxy_fdpass_connect, monitor_fdpass.c
//! mm_receive_fd: one byte of data carrying the fd in SCM_RIGHTS).
//!
//! Grammar (flags may come anywhere; `--NAME=VALUE` works too):
//!
//! ```text
//! rosh-ssh --proxy HOST PORT [--fdpass] [--wait SECONDS] [--connect-timeout SECONDS]
//! ```
//!
//! - `--wait SECONDS`: while the network is unreachable, the name does not
//!   resolve, the port refuses or an attempt times out, retry for up to
//!   SECONDS in all; for a ProxyCommand run as a tmux session comes back after
//!   a laptop wakes or a server reboots. A new attempt starts 100 ms (doubling
//!   to 1 s) after the previous one started, or at once when that one took
//!   longer: with `--connect-timeout 1` a fresh SYN leaves every second, so
//!   the kernel's SYN backoff (1, 2, 4, 8 ... s) never delays the reconnect
//!   once a dropped link returns.
//! - `--connect-timeout SECONDS` (or the `ROSH_SSH_CONNECT_TIMEOUT`
//!   environment variable; the option wins): bound each connect attempt, as
//!   ssh's ConnectTimeout does. ssh hands its ConnectTimeout to no
//!   ProxyCommand token, so it is given here. Default: the OS's.
//!
//! Every error is one line and exit 255, as ssh's own connect errors.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::events::SplicePipe;
use crate::probe::Family;

/// Environment variable giving ConnectTimeout in seconds when no option does.
pub const CONNECT_TIMEOUT_ENV: &str = "ROSH_SSH_CONNECT_TIMEOUT";

/// First and largest pause between the starts of two tries under `--wait`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Buffer of the read/write fallback.
const COPY_SIZE: usize = 64 * 1024;

const USAGE: &str =
    "usage: --proxy HOST PORT [--fdpass] [--wait SECONDS] [--connect-timeout SECONDS]";

/// What `--proxy` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub fdpass: bool,
    /// `--wait`: how long to keep retrying an unreachable network or refused port.
    pub wait: Option<Duration>,
    /// `--connect-timeout`: bound on each connect attempt.
    pub connect_timeout: Option<Duration>,
    /// The addresses to try: the parent ssh's AddressFamily.
    pub family: Family,
}

/// Why proxy mode failed; each ends rosh-ssh with 255.
#[derive(Debug)]
pub enum ProxyError {
    /// Bad arguments: the message says which.
    Usage(String),
    /// getaddrinfo failed (ssh.c resolve_host's words).
    Resolve { host: String, reason: String },
    /// No address of the host could be connected; `err` is the last
    /// address's error, as ssh reports it (sshconnect.c ssh_connect_direct).
    Connect {
        host: String,
        port: u16,
        err: io::Error,
        waited: Option<Duration>,
    },
    /// `--fdpass`: stdout took no fd (not a unix socket: not run by ssh with ProxyUseFdpass).
    Fdpass(io::Error),
    /// The relay broke (connection reset, stdin/stdout error).
    Relay(io::Error),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Usage(msg) => write!(f, "--proxy: {msg} ({USAGE})"),
            ProxyError::Resolve { host, reason } => {
                write!(f, "Could not resolve hostname {host}: {reason}")?;
                Ok(())
            }
            ProxyError::Connect {
                host,
                port,
                err,
                waited,
            } => {
                write!(f, "connect to host {host} port {port}: {}", describe(err))?;
                if let Some(waited) = waited {
                    write!(f, " (still, after waiting {})", seconds(*waited))?;
                }
                Ok(())
            }
            ProxyError::Fdpass(err) => {
                write!(
                    f,
                    "--fdpass: cannot pass the connection on stdout: {}",
                    describe(err)
                )
            }
            ProxyError::Relay(err) => write!(f, "proxy relay: {}", describe(err)),
        }
    }
}

impl std::error::Error for ProxyError {}

/// strerror's words, without std's ` (os error N)` tail.
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        // TcpStream::connect_timeout's own error: say it as ssh does (ETIMEDOUT).
        None if err.kind() == io::ErrorKind::TimedOut => {
            nix::errno::Errno::ETIMEDOUT.desc().to_string()
        }
        None => err.to_string(),
    }
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{} s", ms / 1000, frac.trim_end_matches('0'))
    }
}

/// What the ssh that started us has in effect, as far as connecting goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parent {
    /// Its ConnectTimeout: ssh passes it to no ProxyCommand token.
    pub connect_timeout: Option<Duration>,
    /// Its AddressFamily (`-4`, `-6`): only those addresses are tried.
    pub family: Family,
}

/// Runs proxy mode with `args`, the words after `--proxy`; returns the exit
/// status (0) once both directions are closed, or after passing the fd.
/// `parent`'s ConnectTimeout is used when neither `--connect-timeout` nor
/// the environment sets one.
pub fn run(args: &[OsString], parent: Parent) -> Result<i32, ProxyError> {
    let known_timeout = parent.connect_timeout;
    let mut opts = parse_args(args)?;
    opts.family = parent.family;
    let from_env = std::env::var_os(CONNECT_TIMEOUT_ENV).filter(|v| !v.is_empty());
    if let (None, Some(value)) = (opts.connect_timeout, from_env) {
        opts.connect_timeout = Some(parse_seconds(CONNECT_TIMEOUT_ENV, &value)?);
    }
    if opts.connect_timeout.is_none() {
        opts.connect_timeout = known_timeout;
    }
    let stream = connect(&opts)?;
    if opts.fdpass {
        // SAFETY: fd 1 is open for the duration of this call (or the
        // sendmsg fails with EBADF, which is reported).
        let stdout = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
        send_fd(stdout, &stream).map_err(ProxyError::Fdpass)?;
        return Ok(0);
    }
    let (input, output) = take_stdio().map_err(ProxyError::Relay)?;
    relay(input, output, OwnedFd::from(stream)).map_err(ProxyError::Relay)?;
    Ok(0)
}

/// Parses `HOST PORT [--fdpass] [--wait SECONDS] [--connect-timeout SECONDS]`.
pub fn parse_args(args: &[OsString]) -> Result<Options, ProxyError> {
    let mut words = Vec::new();
    let (mut fdpass, mut wait, mut connect_timeout) = (false, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        if !text.starts_with("--") || text == "--" {
            words.push(arg);
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(OsString::from(value))),
            None => (text.to_string(), None),
        };
        let mut value = |name: &str| match inline.clone().or_else(|| it.next().cloned()) {
            Some(v) => parse_seconds(name, &v),
            None => usage(format!("{name} needs SECONDS")),
        };
        match name.as_str() {
            "--fdpass" if inline.is_none() => fdpass = true,
            "--wait" => wait = Some(value("--wait")?),
            "--connect-timeout" => connect_timeout = Some(value("--connect-timeout")?),
            _ => return usage(format!("unknown option {text}")),
        }
    }
    let (host, port) = match words.as_slice() {
        [] => return usage("missing HOST and PORT".into()),
        [_] => return usage("missing PORT".into()),
        [host, port] => (*host, *port),
        [_, _, extra, ..] => {
            return usage(format!("unexpected argument {}", extra.to_string_lossy()));
        }
    };
    let Some(host) = host.to_str().filter(|h| !h.is_empty()) else {
        return usage(format!("bad host {:?}", host.to_string_lossy()));
    };
    // %h never has brackets, but a hand-written [::1] should work too.
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    };
    let port = match port.to_str().and_then(parse_port) {
        Some(port) => port,
        None => return usage(format!("bad port {:?}", port.to_string_lossy())),
    };
    Ok(Options {
        host: host.to_string(),
        port,
        fdpass,
        wait,
        connect_timeout,
        family: Family::Any,
    })
}

fn usage<T>(msg: String) -> Result<T, ProxyError> {
    Err(ProxyError::Usage(msg))
}

/// A port as ssh's a2port takes it: decimal, 1..=65535.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p| p != 0)
}

/// Seconds as `N` or `N.F` (at most a day: a bigger number is a typo).
fn parse_seconds(name: &str, value: &OsStr) -> Result<Duration, ProxyError> {
    let bad = || ProxyError::Usage(format!("{name}: bad SECONDS {:?}", value.to_string_lossy()));
    let text = value.to_str().ok_or_else(bad)?;
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 5 {
        return Err(bad());
    }
    let secs: u64 = whole.parse().map_err(|_| bad())?;
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)])
        .parse()
        .map_err(|_| bad())?;
    if secs > 86_400 {
        return Err(bad());
    }
    Ok(Duration::new(secs, nanos))
}

/// One round of connecting failed: why.
enum Failure {
    Resolve(String),
    Connect(io::Error),
}

impl Failure {
    /// Worth retrying under `--wait`: the network or the server is not there
    /// yet, or packets vanish (a blackholed link: the attempt times out).
    fn is_transient(&self) -> bool {
        match self {
            Failure::Resolve(_) => true,
            Failure::Connect(err) => {
                err.kind() == io::ErrorKind::TimedOut
                    || matches!(
                        err.raw_os_error(),
                        Some(
                            libc::ECONNREFUSED
                                | libc::ENETUNREACH
                                | libc::EHOSTUNREACH
                                | libc::ENETDOWN
                                | libc::ETIMEDOUT
                        )
                    )
            }
        }
    }
}

/// Connects to every address of the host in getaddrinfo's order, and again
/// with backoff under `--wait`.
pub fn connect(opts: &Options) -> Result<TcpStream, ProxyError> {
    let start = Instant::now();
    let deadline = opts.wait.map(|w| start + w);
    let mut pause = FIRST_BACKOFF;
    loop {
        let began = Instant::now();
        let failure = match connect_once(opts, deadline) {
            Ok(stream) => return Ok(stream),
            Err(failure) => failure,
        };
        let now = Instant::now();
        let retry = failure.is_transient() && deadline.is_some_and(|d| now < d);
        if !retry {
            return Err(match failure {
                Failure::Resolve(reason) => ProxyError::Resolve {
                    host: opts.host.clone(),
                    reason,
                },
                Failure::Connect(err) => ProxyError::Connect {
                    host: opts.host.clone(),
                    port: opts.port,
                    err,
                    waited: opts.wait.filter(|_| failure_was_waited(deadline, now)),
                },
            });
        }
        if let Some(deadline) = deadline {
            // Counted from the attempt's start: an attempt that timed out
            // has waited long enough already.
            let next = (began + pause).min(deadline);
            std::thread::sleep(next.saturating_duration_since(now));
        }
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

fn failure_was_waited(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

fn connect_once(opts: &Options, deadline: Option<Instant>) -> Result<TcpStream, Failure> {
    let wanted = |a: &SocketAddr| match opts.family {
        Family::Any => true,
        Family::Inet => a.is_ipv4(),
        Family::Inet6 => a.is_ipv6(),
    };
    let addrs: Vec<SocketAddr> = match (opts.host.as_str(), opts.port).to_socket_addrs() {
        Ok(addrs) => addrs.filter(wanted).collect(),
        Err(err) => return Err(Failure::Resolve(resolve_reason(&err))),
    };
    let mut last = Failure::Resolve("no address".into());
    for addr in addrs {
        // Under --wait no single attempt may outlast the deadline.
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let limit = match (opts.connect_timeout, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let result = match limit {
            // connect_timeout refuses a zero duration.
            Some(limit) => TcpStream::connect_timeout(&addr, limit.max(Duration::from_millis(1))),
            None => TcpStream::connect(addr),
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Failure::Connect(err),
        }
    }
    Err(last)
}

/// gai_strerror's words: std wraps them in its own prefix.
fn resolve_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.strip_prefix("failed to lookup address information: ") {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

/// Sends `sock` over the unix socket `via` as ssh's mm_receive_fd expects:
/// exactly one byte of data with the fd in an SCM_RIGHTS message
/// (monitor_fdpass.c mm_send_fd).
pub fn send_fd(via: BorrowedFd<'_>, sock: &impl AsRawFd) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let fds = [sock.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let data = [0u8];
    loop {
        let iov = [io::IoSlice::new(&data)];
        match sendmsg::<()>(via.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Ok(1) => return Ok(()),
            Ok(n) => return Err(io::Error::other(format!("sendmsg: sent {n} bytes"))),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                poll_one(via.as_raw_fd(), libc::POLLOUT)?;
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}

fn poll_one(fd: RawFd, events: libc::c_short) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, -1) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Moves stdin and stdout to fresh fds for the relay and points fds 0 and 1
/// at /dev/null, so that closing the relay's stdout really closes it (ssh
/// sees EOF) and nothing later can write into ssh's stream by accident.
fn take_stdio() -> io::Result<(OwnedFd, OwnedFd)> {
    let take = |fd: RawFd| -> io::Result<OwnedFd> {
        // SAFETY: fcntl on an fd number; the result is a new fd we own.
        // F_DUPFD_CLOEXEC is POSIX (2008): macOS and FreeBSD have it too.
        let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
        // SAFETY: `new` was just created and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    let input = take(libc::STDIN_FILENO)?;
    let output = take(libc::STDOUT_FILENO)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: dup2 onto the standard fds, which stay open.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok((input, output))
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Relays `input` to `sock` and `sock` to `output` until both directions
/// are closed. EOF on `input` shuts down the socket's sending side; EOF from
/// the socket closes `output` (shut down first if it is a socket, since ssh
/// may hold the same socket as our stdin too). On Linux bytes move with
/// splice(2) through a pipe per direction, or read/write where splice
/// refuses an fd (EINVAL: a tty, a file opened O_APPEND); elsewhere (and
/// built with `--cfg rosh_portable`) always with read/write through a buffer.
pub fn relay(input: OwnedFd, output: OwnedFd, sock: OwnedFd) -> io::Result<()> {
    let (in_fd, out_fd) = (input.as_raw_fd(), output.as_raw_fd());
    let mut output = Some(output);
    // Declared after `output`, so dropped (flags put back) while it is open.
    let _in_flags = Blocking::off(in_fd);
    let mut out_flags = Blocking::off(out_fd);
    set_nonblocking(sock.as_raw_fd())?;
    let mut up = Flow::new(in_fd, sock.as_raw_fd())?;
    let mut down = Flow::new(sock.as_raw_fd(), out_fd)?;
    loop {
        if up.drained() && !up.closed {
            // SAFETY: shutdown on our socket.
            let _ = unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_WR) };
            up.closed = true;
        }
        if down.drained() && !down.closed {
            out_flags.restore();
            if let Some(out) = output.take() {
                // A socket stdout may be shared with stdin: only a shutdown ends it.
                // SAFETY: shutdown on an fd we own; ENOTSOCK is fine.
                let _ = unsafe { libc::shutdown(out.as_raw_fd(), libc::SHUT_WR) };
            }
            down.closed = true;
        }
        if up.closed && down.closed {
            return Ok(());
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut who: Vec<(usize, bool)> = Vec::with_capacity(4);
        for (i, flow) in [&up, &down].into_iter().enumerate() {
            if flow.closed {
                continue;
            }
            if flow.wants_read() {
                fds.push(pollfd(flow.src, libc::POLLIN));
                who.push((i, false));
            }
            if flow.pending() > 0 {
                fds.push(pollfd(flow.dst, libc::POLLOUT));
                who.push((i, true));
            }
        }
        if fds.is_empty() {
            // Every open flow either reads or writes: unreachable, but a
            // bug here must not become a proxy that hangs forever.
            return Err(io::Error::other("relay has nothing to wait for"));
        }
        // SAFETY: `fds` is a valid array of its length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for (pfd, &(i, write)) in fds.iter().zip(&who) {
            if pfd.revents == 0 {
                continue;
            }
            let flow = if i == 0 { &mut up } else { &mut down };
            if write {
                flow.write_step()?;
            } else {
                flow.read_step()?;
            }
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: fcntl flag calls on an open fd.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(flags)
}

/// O_NONBLOCK set on a pipe or socket stdin/stdout for the relay, and put
/// back as it was when dropped: the open file description may be shared
/// with the shell that started us. Ttys and files are left alone (poll
/// says they are ready, and the fallback writes them whole).
struct Blocking {
    fd: RawFd,
    flags: Option<libc::c_int>,
}

impl Blocking {
    fn off(fd: RawFd) -> Blocking {
        // SAFETY: fstat into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let kind = match unsafe { libc::fstat(fd, &mut st) } {
            0 => st.st_mode & libc::S_IFMT,
            _ => 0,
        };
        let flags = match kind {
            libc::S_IFIFO | libc::S_IFSOCK => set_nonblocking(fd).ok(),
            _ => None,
        };
        Blocking { fd, flags }
    }

    fn restore(&mut self) {
        if let Some(flags) = self.flags.take() {
            // SAFETY: puts back the flags read from this (still open) fd.
            unsafe { libc::fcntl(self.fd, libc::F_SETFL, flags) };
        }
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        self.restore();
    }
}

/// How one direction moves its bytes.
enum Mode {
    /// `src` -> pipe -> `dst` by splice (Linux); `held` bytes wait in the pipe.
    Splice { pipe: SplicePipe, held: usize },
    /// `src` -> buf -> `dst` by read/write; `buf[start..end]` waits.
    Copy {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
}

/// One direction of the relay.
struct Flow {
    src: RawFd,
    dst: RawFd,
    mode: Mode,
    /// EOF read from `src` (or `dst` went away): nothing more will come.
    src_done: bool,
    /// `dst` shut down.
    closed: bool,
}

impl Flow {
    fn new(src: RawFd, dst: RawFd) -> io::Result<Flow> {
        let mode = match SplicePipe::open() {
            Some(pipe) => Mode::Splice { pipe, held: 0 },
            None => copy_mode(Vec::new()),
        };
        Ok(Flow {
            src,
            dst,
            mode,
            src_done: false,
            closed: false,
        })
    }

    fn pending(&self) -> usize {
        match &self.mode {
            Mode::Splice { held, .. } => *held,
            Mode::Copy { start, end, .. } => end - start,
        }
    }

    fn wants_read(&self) -> bool {
        !self.src_done
            && match &self.mode {
                Mode::Splice { pipe, held } => *held < pipe.size(),
                Mode::Copy { buf, end, .. } => *end < buf.len(),
            }
    }

    fn drained(&self) -> bool {
        self.src_done && self.pending() == 0
    }

    fn read_step(&mut self) -> io::Result<()> {
        let got = match &mut self.mode {
            Mode::Splice { pipe, held } => {
                let room = pipe.size() - *held;
                pipe.fill(self.src, room).inspect(|&n| *held += n)
            }
            Mode::Copy { buf, end, .. } => {
                let room = &mut buf[*end..];
                // SAFETY: reads into the unused tail of our buffer.
                let n = unsafe { libc::read(self.src, room.as_mut_ptr().cast(), room.len()) };
                cvt_size(n).inspect(|&n| *end += n)
            }
        };
        match got {
            Ok(0) => self.src_done = true,
            Ok(_) => {}
            Err(err) if retry_later(&err) => {}
            Err(err) if self.splice_refused(&err) => {
                self.switch_to_copy()?;
                return self.read_step();
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    fn write_step(&mut self) -> io::Result<()> {
        let put = match &mut self.mode {
            Mode::Splice { pipe, held } => pipe.drain(self.dst, *held).inspect(|&n| *held -= n),
            Mode::Copy { buf, start, end } => {
                let data = &buf[*start..*end];
                // SAFETY: writes from our buffer's pending bytes.
                let n = unsafe { libc::write(self.dst, data.as_ptr().cast(), data.len()) };
                cvt_size(n).inspect(|&n| {
                    *start += n;
                    if start == end {
                        // All out: the whole buffer is free for reading again.
                        (*start, *end) = (0, 0);
                    }
                })
            }
        };
        match put {
            Ok(_) => {}
            Err(err) if retry_later(&err) => {}
            Err(err) if self.splice_refused(&err) => {
                self.switch_to_copy()?;
                return self.write_step();
            }
            // The reader is gone (ssh exited, or the server reset): drop
            // what is pending, read no more for it.
            Err(err) if err.raw_os_error() == Some(libc::EPIPE) => {
                self.src_done = true;
                self.mode = copy_mode(Vec::new());
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// splice(2) refused one of this flow's fds (a tty, an O_APPEND file).
    fn splice_refused(&self, err: &io::Error) -> bool {
        matches!(self.mode, Mode::Splice { .. }) && SplicePipe::refused(err)
    }

    /// Leaves splice for read/write, keeping the bytes already in the pipe.
    fn switch_to_copy(&mut self) -> io::Result<()> {
        if let Mode::Splice { pipe, held } = &self.mode {
            self.mode = copy_mode(pipe.take_back(*held)?);
        }
        Ok(())
    }
}

/// A copy-mode buffer holding `pending` first.
fn copy_mode(pending: Vec<u8>) -> Mode {
    let end = pending.len();
    let mut buf = pending;
    buf.resize(end.max(COPY_SIZE), 0);
    Mode::Copy { buf, start: 0, end }
}

/// EAGAIN after a spurious wake-up, or EINTR: poll again.
fn retry_later(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    /// The parent's AddressFamily decides which addresses are tried.
    #[test]
    fn family_filters_addresses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = |family| Options {
            host: "127.0.0.1".into(),
            port,
            fdpass: false,
            wait: None,
            connect_timeout: Some(Duration::from_secs(5)),
            family,
        };
        assert!(connect(&opts(Family::Inet)).is_ok());
        assert!(connect(&opts(Family::Any)).is_ok());
        match connect(&opts(Family::Inet6)) {
            Err(ProxyError::Resolve { .. }) => {}
            other => panic!("an IPv4 address tried under inet6: {other:?}"),
        }
    }

    /// A blackholed link gives timeouts, not errors: they must be retried
    /// under `--wait` like a refused port; a real refusal of another kind not.
    #[test]
    fn timeouts_are_transient() {
        let connect = |e: io::Error| Failure::Connect(e).is_transient();
        assert!(connect(io::Error::from(io::ErrorKind::TimedOut)));
        assert!(connect(io::Error::from_raw_os_error(libc::ETIMEDOUT)));
        assert!(connect(io::Error::from_raw_os_error(libc::ECONNREFUSED)));
        assert!(connect(io::Error::from_raw_os_error(libc::EHOSTUNREACH)));
        assert!(!connect(io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!connect(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)));
        assert!(Failure::Resolve("x".into()).is_transient());
    }

    #[test]
    fn grammar() {
        let ok = |host: &str, port, fdpass, wait: Option<f64>, timeout: Option<f64>| {
            Ok(Options {
                host: host.into(),
                port,
                fdpass,
                wait: wait.map(Duration::from_secs_f64),
                connect_timeout: timeout.map(Duration::from_secs_f64),
                family: Family::Any,
            })
        };
        let table: &[(&str, Result<Options, &str>)] = &[
            ("h 22", ok("h", 22, false, None, None)),
            ("h 22 --fdpass", ok("h", 22, true, None, None)),
            ("--fdpass h 22", ok("h", 22, true, None, None)),
            ("h 22 --wait 30", ok("h", 22, false, Some(30.0), None)),
            ("h 22 --wait=2.5", ok("h", 22, false, Some(2.5), None)),
            (
                "h 22 --connect-timeout 5",
                ok("h", 22, false, None, Some(5.0)),
            ),
            ("[::1] 2222", ok("::1", 2222, false, None, None)),
            ("::1 65535", ok("::1", 65535, false, None, None)),
            ("", Err("missing HOST and PORT")),
            ("h", Err("missing PORT")),
            ("h ssh", Err("bad port \"ssh\"")),
            ("h 0", Err("bad port \"0\"")),
            ("h 65536", Err("bad port \"65536\"")),
            ("h -1", Err("bad port \"-1\"")),
            ("h +22", Err("bad port \"+22\"")),
            ("h 22 x", Err("unexpected argument x")),
            ("h 22 --bogus", Err("unknown option --bogus")),
            ("h 22 --fdpass=1", Err("unknown option --fdpass=1")),
            ("h 22 --wait", Err("--wait needs SECONDS")),
            ("h 22 --wait soon", Err("--wait: bad SECONDS \"soon\"")),
            ("h 22 --wait -1", Err("--wait: bad SECONDS \"-1\"")),
            ("h 22 --wait 1e3", Err("--wait: bad SECONDS \"1e3\"")),
            ("h 22 --wait 99999", Err("--wait: bad SECONDS \"99999\"")),
        ];
        for (line, expected) in table {
            let got = parse_args(&args(line));
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{line}"),
                (Err(ProxyError::Usage(msg)), Err(want)) => assert_eq!(&msg, want, "{line}"),
                (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn messages() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let err = ProxyError::Connect {
            host: "h".into(),
            port: 22,
            err: refused,
            waited: None,
        };
        assert_eq!(
            err.to_string(),
            "connect to host h port 22: Connection refused"
        );
        let err = ProxyError::Connect {
            host: "h".into(),
            port: 22,
            err: io::Error::from_raw_os_error(libc::ENETUNREACH),
            waited: Some(Duration::from_millis(2500)),
        };
        assert_eq!(
            err.to_string(),
            "connect to host h port 22: Network is unreachable (still, after waiting 2.5 s)"
        );
        let table = [(0, "0 s"), (1000, "1 s"), (1500, "1.5 s"), (30, "0.03 s")];
        for (ms, text) in table {
            assert_eq!(seconds(Duration::from_millis(ms)), text);
        }
    }

    /// Runs `relay` on a socketpair with pipes as stdin/stdout; returns what
    /// came out on stdout and what the far end of the socket received.
    fn relay_through(up: &[u8], down: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (near, mut far) = UnixStream::pair().unwrap();
        let (in_r, mut in_w) = os_pipe::pipe().unwrap();
        let (mut out_r, out_w) = os_pipe::pipe().unwrap();
        let worker = std::thread::spawn(move || {
            relay(
                OwnedFd::from(in_r),
                OwnedFd::from(out_w),
                OwnedFd::from(near),
            )
        });
        let up = up.to_vec();
        let feeder = std::thread::spawn(move || in_w.write_all(&up));
        let down = down.to_vec();
        let server = std::thread::spawn(move || {
            let mut writer = far.try_clone().unwrap();
            let w = std::thread::spawn(move || {
                writer.write_all(&down).unwrap();
                writer.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            far.read_to_end(&mut got).unwrap();
            w.join().unwrap();
            got
        });
        let mut out = Vec::new();
        out_r.read_to_end(&mut out).unwrap();
        feeder.join().unwrap().unwrap();
        worker.join().unwrap().unwrap();
        (out, server.join().unwrap())
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn relays_both_ways_exactly() {
        for len in [0, 1, 4095, 1 << 20, 3 << 20] {
            let (a, b) = (pattern(len, 1), pattern(len + 7, 2));
            let (out, sent) = relay_through(&a, &b);
            assert!(sent == a, "up, {len} bytes");
            assert!(out == b, "down, {len} bytes");
        }
    }

    /// The build decides the relay: splice on Linux, read/write where there
    /// is no splice and in the `--cfg rosh_portable` build, which must never
    /// reach for splice (the tests above then run the copy path end to end).
    #[test]
    fn the_build_chooses_its_relay() {
        let (r, w) = os_pipe::pipe().unwrap();
        let flow = Flow::new(r.as_raw_fd(), w.as_raw_fd()).unwrap();
        let splices = !matches!(flow.mode, Mode::Copy { .. });
        assert_eq!(splices, cfg!(all(target_os = "linux", not(rosh_portable))));
    }

    #[test]
    fn copy_mode_when_input_is_a_tty() {
        // splice(2) from a tty fails with EINVAL: the fallback must carry it.
        let pty = nix::pty::openpty(None, None).unwrap();
        let (near, mut far) = UnixStream::pair().unwrap();
        let (mut out_r, out_w) = os_pipe::pipe().unwrap();
        let mut master = std::fs::File::from(pty.master);
        far.shutdown(std::net::Shutdown::Write).unwrap();
        let worker =
            std::thread::spawn(move || relay(pty.slave, OwnedFd::from(out_w), OwnedFd::from(near)));
        // A line, then VEOF (^D) at the start of a line: read() gives 0.
        master.write_all(b"typed line\n\x04").unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"typed line\n");
        let mut out = Vec::new();
        out_r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"");
        worker.join().unwrap().unwrap();
    }

    #[test]
    fn copy_mode_when_output_is_an_append_file() {
        // splice(2): EINVAL when the target file is opened in append mode.
        let path = std::env::temp_dir().join(format!("rosh-proxy-append-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        drop(file);
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let (near, mut far) = UnixStream::pair().unwrap();
        let (in_r, in_w) = os_pipe::pipe().unwrap();
        drop(in_w);
        let data = pattern(1 << 20, 9);
        let sent = data.clone();
        let server = std::thread::spawn(move || {
            far.write_all(&sent).unwrap();
            far.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            far.read_to_end(&mut rest).unwrap();
            rest
        });
        relay(OwnedFd::from(in_r), OwnedFd::from(out), OwnedFd::from(near)).unwrap();
        assert_eq!(server.join().unwrap(), b"");
        assert!(std::fs::read(&path).unwrap() == data);
        let _ = std::fs::remove_file(&path);
    }
}
