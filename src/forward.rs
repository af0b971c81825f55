//! Forward specifications: ssh's parse_forward (readconf.c) and the lines `ssh -G` prints.
//!
//! This is a byte-for-byte port of OpenSSH 9.2p1 `parse_forward` and
//! `parse_fwd_field` (readconf.c), `dollar_expand` and `a2port` (misc.c), the
//! `-L`/`-D`/`-R` cases of ssh.c's getopt loop, the
//! `LocalForward`/`RemoteForward`/`DynamicForward` keywords of
//! `process_config_line` (readconf.c) and `dump_cfg_forwards` (readconf.c,
//! what `ssh -G` prints). The parser works on a NUL-terminated copy the way
//! the C code does, because its quirks (a trailing `\` that empties a field,
//! `\/` that does not make a path, a trailing `:` that is ignored) come from
//! that in-place mutation and ssh is the judge of what is valid.
//!
//! Not mirrored: ssh.c %-expands unix-socket *paths* (`%h`, `%%`, ...) after
//! parsing and before `ssh -G` prints them (an unknown `%x` is fatal there).
//! Paths here are kept as written; a path with `%` prints differently, and
//! [`Forward::prints_as`] matches it to its expansion ([`percent_match`];
//! effective.rs `resolve` reads `ssh -G` lines with it).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Mutex;

/// Which list and which keyword a forward came from.
///
/// `Dynamic` is a local SOCKS listener (`-D`, `DynamicForward`). A remote
/// dynamic forward (`-R 1080`, one-argument `RemoteForward`) is `Remote`
/// with `connect: None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Remote,
    Dynamic,
}

/// One side of a forward: a TCP `[host:]port` or a unix-socket path.
///
/// `host: None` is "no bind address given" (ssh binds loopback unless
/// GatewayPorts); `Some(b"")` and `Some(b"*")` are distinct spellings that
/// ssh both treats as the wildcard (channels.c `channel_fwd_bind_addr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: Option<Vec<u8>>, port: u16 },
    Path(Vec<u8>),
}

/// A parsed forward. `connect` is `None` exactly for SOCKS forwards (ssh's
/// `connect_host "socks"`, `connect_port 0`): `-D` and remote dynamic `-R`.
///
/// `-D` accepts two path-ish shapes too (`-D /a:/b`, `-D 8080:/b`): those
/// are `Dynamic` with `connect: Some(Path)`; ssh sets them up as local
/// forwards to the path. `ssh -G` prints a dynamicforward and a
/// localforward line for them, as for every local forward to a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub kind: Kind,
    pub listen: Endpoint,
    pub connect: Option<Endpoint>,
}

/// misc.h: port value marking a unix-socket side of `struct Forward`.
const PORT_STREAMLOCAL: i32 = -2;
/// netdb.h NI_MAXHOST: parse_forward rejects host names at least this long.
const NI_MAXHOST: usize = 1025;
/// readconf.h PATH_MAX_SUN = sizeof(sun_path): 108 on Linux, 104 on the
/// BSDs, taken from the target's own `struct sockaddr_un`.
pub const PATH_MAX_SUN: usize =
    size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path);
/// readconf.c process_config_line: `char fwdarg[256]`, filled with
/// snprintf/strlcpy, so keyword specs are silently cut to 255 bytes.
const FWDARG_MAX: usize = 255;
/// readconf.c parse_forward: `struct fwdarg fwdargs[4]`.
const MAX_FIELDS: usize = 4;
/// ssh's connect_host for SOCKS forwards (readconf.c parse_forward).
const SOCKS: &[u8] = b"socks";

/// An environment lookup for `${VAR}` expansion: `None` is an unset variable.
pub type Env<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;

/// The process environment, as ssh's `getenv` sees it.
pub fn process_env(name: &[u8]) -> Option<Vec<u8>> {
    std::env::var_os(OsStr::from_bytes(name)).map(|v| v.into_vec())
}

/// ssh's `struct Forward` (misc.h), kept to print and compare exactly as
/// ssh does.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Raw {
    listen_host: Option<Vec<u8>>,
    listen_port: i32,
    listen_path: Option<Vec<u8>>,
    connect_host: Option<Vec<u8>>,
    connect_port: i32,
    connect_path: Option<Vec<u8>>,
}

/// ssh.c -L/-D/-R: `letter` is b'L', b'D' or b'R'. None where ssh exits "Bad ... forwarding specification".
pub fn parse_arg(letter: u8, spec: &[u8]) -> Option<Forward> {
    parse_arg_with_env(letter, spec, &process_env)
}

/// [`parse_arg`] with `${VAR}` looked up in `env` instead of the process
/// environment (for tests and for checking against a child's environment).
pub fn parse_arg_with_env(letter: u8, spec: &[u8], env: Env) -> Option<Forward> {
    match letter {
        // ssh.c: parse_forward(&fwd, optarg, 0, 0)
        b'L' => parse_forward(spec, false, false, env).map(|r| from_raw(Kind::Local, r)),
        // ssh.c: parse_forward(&fwd, optarg, 1, 0)
        b'D' => parse_forward(spec, true, false, env).map(|r| from_raw(Kind::Dynamic, r)),
        // ssh.c: a plain remote forward first, then a remote dynamic one.
        b'R' => parse_forward(spec, false, true, env)
            .or_else(|| parse_forward(spec, true, true, env))
            .map(|r| from_raw(Kind::Remote, r)),
        _ => None,
    }
}

/// readconf.c keyword form; `args` are the words after the keyword as ssh's argv_split gives them.
pub fn parse_keyword(kind: Kind, args: &[&[u8]]) -> Option<Forward> {
    parse_keyword_with_env(kind, args, &process_env)
}

/// [`parse_keyword`] with `${VAR}` looked up in `env`.
pub fn parse_keyword_with_env(kind: Kind, args: &[&[u8]], env: Env) -> Option<Forward> {
    // readconf.c case oLocalForward/oRemoteForward/oDynamicForward.
    let arg = c_str(args.first()?);
    if arg.is_empty() {
        return None; // "Missing argument."
    }
    let remotefwd = kind == Kind::Remote;
    let mut dynamicfwd = kind == Kind::Dynamic;
    let mut consumed = 1;
    let mut fwdarg = Vec::new();
    if !dynamicfwd {
        let arg2 = args.get(1).map(|a| c_str(a));
        if arg2.is_some() {
            consumed = 2;
        }
        match arg2 {
            Some(arg2) if !arg2.is_empty() => {
                fwdarg.extend_from_slice(arg);
                fwdarg.push(b':');
                fwdarg.extend_from_slice(arg2);
            }
            // One argument: RemoteForward means a remote SOCKS forward.
            _ if remotefwd => dynamicfwd = true,
            _ => return None, // "Missing target argument."
        }
    }
    if dynamicfwd {
        fwdarg = arg.to_vec();
    }
    fwdarg.truncate(FWDARG_MAX);
    let raw = parse_forward(&fwdarg, dynamicfwd, remotefwd, env)?;
    // readconf.c: "keyword %s extra arguments at end of line".
    if args.len() > consumed {
        return None;
    }
    Some(from_raw(kind, raw))
}

/// Bytes up to the first NUL: what C sees of an argument.
fn c_str(s: &[u8]) -> &[u8] {
    match memchr::memchr(0, s) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// misc.c dollar_expand: `${VAR}` from `env`; a `$` not followed by `{` is
/// kept. An unterminated `${`, an empty `${}` or an unset variable fails.
fn dollar_expand(s: &[u8], env: Env) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut missing = false;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'$' && s.get(i + 1) == Some(&b'{') {
            let start = i + 2;
            let len = memchr::memchr(b'}', &s[start..])?;
            if len == 0 {
                return None;
            }
            match env(&s[start..start + len]) {
                // getenv's value is a C string.
                Some(v) => out.extend_from_slice(c_str(&v)),
                // ssh reports every missing variable before failing.
                None => missing = true,
            }
            i = start + len + 1;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    if missing { None } else { Some(out) }
}

/// One field found by [`parse_fwd_field`]: where it starts in the buffer
/// (it ends at the next NUL) and whether an unescaped `/` made it a path.
#[derive(Clone, Copy)]
struct FwdArg {
    start: usize,
    ispath: bool,
}

/// The NUL-terminated string starting at `start` in `buf`.
fn field(buf: &[u8], start: usize) -> &[u8] {
    c_str(&buf[start..])
}

/// readconf.c parse_fwd_field, on a buffer whose last byte is NUL. `p` is
/// `None` once the end of string was reached (C's `*p = NULL`).
fn parse_fwd_field(buf: &mut Vec<u8>, p: &mut Option<usize>) -> Option<FwdArg> {
    let start = (*p)?;
    if buf[start] == 0 {
        *p = None;
        return None;
    }
    let mut ispath = false;
    // A field in square brackets is used literally.
    if buf[start] == b'[' {
        let mut ep = start + 1;
        while buf[ep] != b']' && buf[ep] != 0 {
            if buf[ep] == b'/' {
                ispath = true;
            }
            ep += 1;
        }
        // No matching ']' or not at the end of the field.
        if buf[ep] != b']' || (buf[ep + 1] != b':' && buf[ep + 1] != 0) {
            return None;
        }
        buf[ep] = 0;
        ep += 1;
        if buf[ep] != 0 {
            buf[ep] = 0;
            ep += 1;
        }
        *p = Some(ep);
        return Some(FwdArg {
            start: start + 1,
            ispath,
        });
    }
    let mut cp = start;
    while buf[cp] != 0 {
        match buf[cp] {
            b'\\' => {
                // memmove(cp, cp + 1, ...): the escaped byte is then
                // skipped by the loop, so `\/` is no path and `\:` no
                // separator. A trailing `\` fails unless it was the
                // whole field, which then reads as end of string.
                buf.remove(cp);
                if buf[cp] == 0 {
                    return None;
                }
            }
            b'/' => ispath = true,
            b':' => {
                buf[cp] = 0;
                cp += 1;
                break;
            }
            _ => {}
        }
        cp += 1;
    }
    *p = Some(cp);
    Some(FwdArg { start, ispath })
}

/// C isspace in the C (or C.UTF-8) locale ssh runs in (utf8.c msetlocale).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// strtonum(s, 0, 65535) as misc.c a2port calls it: strtoll base 10
/// (leading spaces, one sign), the whole string, within range.
fn strtonum_port(s: &[u8]) -> Option<i32> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = i;
    let mut value: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        value = value
            .saturating_mul(10)
            .saturating_add(u64::from(s[i] - b'0'));
        i += 1;
    }
    if i == digits || i != s.len() || (negative && value != 0) || value > 65535 {
        return None;
    }
    i32::try_from(value).ok()
}

/// getservbyname(3) returns a static buffer; one caller at a time.
static SERVICES: Mutex<()> = Mutex::new(());

/// getservbyname(name, "tcp"), the port in host order.
fn service_port(name: &[u8]) -> Option<u16> {
    let name = CString::new(name).ok()?;
    let _guard = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: both arguments are NUL-terminated; the result is read before
    // the lock is released and not kept.
    unsafe {
        let se = libc::getservbyname(name.as_ptr(), c"tcp".as_ptr());
        if se.is_null() {
            return None;
        }
        // s_port holds a 16-bit port in network byte order.
        Some(u16::from_be((*se).s_port as u16))
    }
}

/// misc.c a2port: a number 0..65535, else a tcp service name, else -1.
fn a2port(s: &[u8]) -> i32 {
    strtonum_port(s)
        .or_else(|| service_port(s).map(i32::from))
        .unwrap_or(-1)
}

/// readconf.c parse_forward: `Some` where it returns non-zero.
fn parse_forward(spec: &[u8], dynamicfwd: bool, remotefwd: bool, env: Env) -> Option<Raw> {
    // Variables are expanded before fields are split, so that a ${VAR}
    // holding a path makes a path field.
    let mut buf = dollar_expand(c_str(spec), env)?;
    let len = c_str(&buf).len();
    buf.truncate(len);
    buf.push(0);

    let mut cp = 0;
    while is_c_space(buf[cp]) {
        cp += 1;
    }
    let mut p = Some(cp);
    let mut fwdargs = [FwdArg {
        start: 0,
        ispath: false,
    }; MAX_FIELDS];
    let mut i = 0;
    while i < MAX_FIELDS {
        match parse_fwd_field(&mut buf, &mut p) {
            Some(arg) => fwdargs[i] = arg,
            None => break,
        }
        i += 1;
    }
    // Trailing garbage, including a field parse_fwd_field refused.
    if let Some(cp) = p
        && buf[cp] != 0
    {
        i = 0;
    }

    let arg = |n: usize| field(&buf, fwdargs[n].start).to_vec();
    let port = |n: usize| a2port(field(&buf, fwdargs[n].start));
    let path = |n: usize| fwdargs[n].ispath;
    let mut fwd = Raw {
        listen_host: None,
        listen_port: 0,
        listen_path: None,
        connect_host: None,
        connect_port: 0,
        connect_path: None,
    };
    match i {
        1 => {
            if path(0) {
                fwd.listen_path = Some(arg(0));
                fwd.listen_port = PORT_STREAMLOCAL;
            } else {
                fwd.listen_port = port(0);
            }
            fwd.connect_host = Some(SOCKS.to_vec());
        }
        2 => {
            if path(0) && path(1) {
                fwd.listen_path = Some(arg(0));
                fwd.listen_port = PORT_STREAMLOCAL;
                fwd.connect_path = Some(arg(1));
                fwd.connect_port = PORT_STREAMLOCAL;
            } else if path(1) {
                fwd.listen_port = port(0);
                fwd.connect_path = Some(arg(1));
                fwd.connect_port = PORT_STREAMLOCAL;
            } else {
                fwd.listen_host = Some(arg(0));
                fwd.listen_port = port(1);
                fwd.connect_host = Some(SOCKS.to_vec());
            }
        }
        3 => {
            if path(0) {
                fwd.listen_path = Some(arg(0));
                fwd.listen_port = PORT_STREAMLOCAL;
                fwd.connect_host = Some(arg(1));
                fwd.connect_port = port(2);
            } else if path(2) {
                fwd.listen_host = Some(arg(0));
                fwd.listen_port = port(1);
                fwd.connect_path = Some(arg(2));
                fwd.connect_port = PORT_STREAMLOCAL;
            } else {
                fwd.listen_port = port(0);
                fwd.connect_host = Some(arg(1));
                fwd.connect_port = port(2);
            }
        }
        4 => {
            fwd.listen_host = Some(arg(0));
            fwd.listen_port = port(1);
            fwd.connect_host = Some(arg(2));
            fwd.connect_port = port(3);
        }
        _ => return None,
    }

    if dynamicfwd {
        if !(i == 1 || i == 2) {
            return None;
        }
    } else {
        if !(i == 3 || i == 4) && fwd.connect_path.is_none() && fwd.listen_path.is_none() {
            return None;
        }
        if fwd.connect_port <= 0 && fwd.connect_path.is_none() {
            return None;
        }
    }
    // Port 0 ("server allocates") only makes sense remotely.
    if (fwd.listen_port < 0 && fwd.listen_path.is_none()) || (!remotefwd && fwd.listen_port == 0) {
        return None;
    }
    let too_long = |s: &Option<Vec<u8>>, max: usize| s.as_ref().is_some_and(|s| s.len() >= max);
    if too_long(&fwd.connect_host, NI_MAXHOST)
        || too_long(&fwd.connect_path, PATH_MAX_SUN)
        || too_long(&fwd.listen_host, NI_MAXHOST)
        || too_long(&fwd.listen_path, PATH_MAX_SUN)
    {
        return None;
    }
    Some(fwd)
}

/// The ssh struct as this module's types. Ports are in range here: parse_forward
/// rejected every negative port that is not a path marker.
fn from_raw(kind: Kind, raw: Raw) -> Forward {
    let port = |p: i32| u16::try_from(p).unwrap_or(0);
    let listen = match raw.listen_path {
        Some(path) => Endpoint::Path(path),
        None => Endpoint::Tcp {
            host: raw.listen_host,
            port: port(raw.listen_port),
        },
    };
    let connect = match (raw.connect_path, raw.connect_host) {
        (Some(path), _) => Some(Endpoint::Path(path)),
        (None, Some(host)) if host == SOCKS && raw.connect_port == 0 => None,
        (None, host) => Some(Endpoint::Tcp {
            host,
            port: port(raw.connect_port),
        }),
    };
    Forward {
        kind,
        listen,
        connect,
    }
}

impl Endpoint {
    /// This side as ssh's (host, port, path) triple.
    fn to_raw(&self) -> (Option<Vec<u8>>, i32, Option<Vec<u8>>) {
        match self {
            Endpoint::Tcp { host, port } => (host.clone(), i32::from(*port), None),
            Endpoint::Path(path) => (None, PORT_STREAMLOCAL, Some(path.clone())),
        }
    }
}

impl Forward {
    fn to_raw(&self) -> Raw {
        let (listen_host, listen_port, listen_path) = self.listen.to_raw();
        let (connect_host, connect_port, connect_path) = match &self.connect {
            Some(c) => c.to_raw(),
            None => (Some(SOCKS.to_vec()), 0, None),
        };
        Raw {
            listen_host,
            listen_port,
            listen_path,
            connect_host,
            connect_port,
            connect_path,
        }
    }

    /// Exactly the line `ssh -G` prints for it, e.g. b"localforward [127.0.0.1]:3131 [localhost]:3131".
    ///
    /// A local or dynamic forward to a path (`-L 8080:/b`, `-D 8080:/b`)
    /// makes ssh print two lines, a dynamicforward and a localforward one;
    /// they are joined with `\n` here (see [`Forward::ssh_g_lines`]). The
    /// `-L 1234:socks:80` quirk prints only `dynamicforward 1234`, like ssh.
    pub fn ssh_g(&self) -> Vec<u8> {
        self.ssh_g_lines().join(&b'\n')
    }

    /// The lines `ssh -G` prints for this forward, in its order, without
    /// newlines: dynamicforward, then localforward, then remoteforward.
    pub fn ssh_g_lines(&self) -> Vec<Vec<u8>> {
        let raw = self.to_raw();
        let codes: &[Code] = match self.kind {
            Kind::Remote => &[Code::Remote],
            Kind::Local | Kind::Dynamic => &[Code::Dynamic, Code::Local],
        };
        codes.iter().filter_map(|&c| dump_line(c, &raw)).collect()
    }

    /// Parses one `ssh -G` forward line back (localforward/remoteforward/dynamicforward ...).
    ///
    /// ssh prints hosts, paths and ports unquoted, so a line whose path or
    /// host holds a space is ambiguous; the split that reads the most
    /// sides as TCP endpoints, then as absolute paths, wins, then the
    /// leftmost. What is returned
    /// prints `line` among its [`Forward::ssh_g_lines`].
    pub fn from_ssh_g(line: &[u8]) -> Option<Forward> {
        Forward::from_ssh_g_all(line).into_iter().next()
    }

    /// Every reading of one `ssh -G` forward line, the likeliest first (see
    /// [`Forward::from_ssh_g`]): a path with a space reads more than one way.
    pub fn from_ssh_g_all(line: &[u8]) -> Vec<Forward> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let Some((keyword, rest)) = split_once(line, b' ') else {
            return Vec::new();
        };
        let kind = match keyword {
            b"localforward" => Kind::Local,
            b"remoteforward" => Kind::Remote,
            b"dynamicforward" => Kind::Dynamic,
            _ => return Vec::new(),
        };
        if kind == Kind::Dynamic {
            return parse_printed(rest)
                .map(|listen| Forward {
                    kind,
                    listen,
                    connect: None,
                })
                .into_iter()
                .collect();
        }
        let mut all: Vec<(usize, Forward)> = Vec::new();
        for (n, _) in rest.iter().enumerate().filter(|&(_, &b)| b == b' ') {
            let (Some(listen), Some(connect)) =
                (parse_printed(&rest[..n]), parse_printed(&rest[n + 1..]))
            else {
                continue;
            };
            // parse_forward always sets connect_host for a TCP target.
            if matches!(connect, Endpoint::Tcp { host: None, .. }) {
                continue;
            }
            let score = likelihood(&listen) + likelihood(&connect);
            let connect = match (&kind, &connect) {
                // `[socks]:0` is how ssh prints a remote dynamic forward;
                // no plain forward may connect to port 0.
                (
                    Kind::Remote,
                    Endpoint::Tcp {
                        host: Some(h),
                        port: 0,
                    },
                ) if h == SOCKS => None,
                _ => Some(connect),
            };
            let fwd = Forward {
                kind,
                listen,
                connect,
            };
            all.push((score, fwd));
        }
        // Stable: among equals the leftmost split stays first.
        all.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        all.into_iter().map(|(_, f)| f).collect()
    }

    /// The local TCP listen port to bind-probe, if this forward listens locally on TCP (Local or Dynamic).
    pub fn local_tcp_listen(&self) -> Option<(Option<&[u8]>, u16)> {
        match (&self.kind, &self.listen) {
            (Kind::Local | Kind::Dynamic, Endpoint::Tcp { host, port }) => {
                Some((host.as_deref(), *port))
            }
            _ => None,
        }
    }

    /// The local unix-socket path this forward listens on (Local with a path listen).
    ///
    /// A `-D /path` listens on a local unix socket too, so `Dynamic`
    /// counts here as well.
    pub fn local_path_listen(&self) -> Option<&[u8]> {
        match (&self.kind, &self.listen) {
            (Kind::Local | Kind::Dynamic, Endpoint::Path(path)) => Some(path),
            _ => None,
        }
    }

    /// Whether `ssh -G` shows these two as the same forward: ssh's own
    /// duplicate test, or the same printed lines (dump_cfg_forwards prints
    /// a local forward to a host named `socks` as a dynamicforward, which
    /// reads back as a different forward).
    ///
    /// A path written with `%` tokens (ssh.c expands them in socket paths
    /// after parsing, before `ssh -G` prints them) matches its expansion.
    pub fn prints_as(&self, other: &Forward) -> bool {
        self.ssh_equals(other)
            || self.ssh_g_lines() == other.ssh_g_lines()
            || self.expands_to(other)
            || other.expands_to(self)
    }

    /// Whether `expanded` can be this forward once ssh.c has expanded the
    /// `%` tokens of its paths: the same sides, TCP sides equal, each path
    /// matching with every `%x` standing for any text (`%%` for `%`).
    pub fn expands_to(&self, expanded: &Forward) -> bool {
        let side = |w: &Endpoint, e: &Endpoint| match (w, e) {
            (Endpoint::Path(w), Endpoint::Path(e)) => percent_match(w, e),
            _ => w == e,
        };
        let connect = match (&self.connect, &expanded.connect) {
            (Some(w), Some(e)) => side(w, e),
            (None, None) => true,
            _ => false,
        };
        (self.kind == Kind::Remote) == (expanded.kind == Kind::Remote)
            && self.has_percent_path()
            && side(&self.listen, &expanded.listen)
            && connect
    }

    /// Whether a unix-socket path of this forward holds a `%` token.
    pub fn has_percent_path(&self) -> bool {
        let p = |e: &Endpoint| matches!(e, Endpoint::Path(p) if memchr::memchr(b'%', p).is_some());
        p(&self.listen) || self.connect.as_ref().is_some_and(p)
    }

    /// The same forward in another spelling that binds exactly the same
    /// listener, for a local or dynamic forward: what `-O forward` asks for
    /// when the master still lists the original (mux.c compares spellings,
    /// misc.c `forward_equals`, while channels.c `channel_fwd_bind_addr`
    /// binds what they mean). On the client: no bind address and
    /// `localhost` both bind loopback of every family unless GatewayPorts;
    /// `*` and the empty address are both the wildcard; an address literal
    /// has other spellings getaddrinfo reads the same (`127.0.0.1` is
    /// `127.0.1`); a path names the same file through `./`. A host name has
    /// none: `None`.
    pub fn respelled(&self, gateway_ports: bool) -> Option<Forward> {
        if self.kind == Kind::Remote {
            return None;
        }
        let listen = match &self.listen {
            Endpoint::Tcp { host, port } => {
                let host = match host.as_deref() {
                    None if !gateway_ports => Some(b"localhost".to_vec()),
                    Some(b"localhost") if !gateway_ports => None,
                    Some(b"*") => Some(Vec::new()),
                    Some(b"") => Some(b"*".to_vec()),
                    Some(h) => Some(respell_address(h)?),
                    None => return None,
                };
                Endpoint::Tcp { host, port: *port }
            }
            Endpoint::Path(p) => {
                let cut = p.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                let mut q = p[..cut].to_vec();
                q.extend_from_slice(b"./");
                q.extend_from_slice(&p[cut..]);
                if q.len() >= PATH_MAX_SUN {
                    return None;
                }
                Endpoint::Path(q)
            }
        };
        Some(Forward {
            listen,
            ..self.clone()
        })
    }

    /// misc.c forward_equals: ssh's duplicate test. Only forwards of the
    /// same list (local+dynamic, or remote) are ever compared by ssh.
    pub fn ssh_equals(&self, other: &Forward) -> bool {
        (self.kind == Kind::Remote) == (other.kind == Kind::Remote)
            && self.to_raw() == other.to_raw()
    }
}

/// An IP address literal written another way that getaddrinfo(3) reads as
/// the same address: `a.b.c.d` as inet_aton's `a.b.N` (N = c * 256 + d),
/// an IPv6 address in full if it was compressed, else compressed.
fn respell_address(h: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(h).ok()?;
    if let Ok(v4) = text.parse::<std::net::Ipv4Addr>() {
        let [a, b, c, d] = v4.octets();
        return Some(format!("{a}.{b}.{}", u16::from(c) * 256 + u16::from(d)).into_bytes());
    }
    let v6: std::net::Ipv6Addr = text.parse().ok()?;
    let full = v6
        .segments()
        .iter()
        .map(|s| format!("{s:x}"))
        .collect::<Vec<_>>()
        .join(":");
    Some(if full == text { v6.to_string() } else { full }.into_bytes())
}

/// `text` as ssh.c's percent_expand could have made it from `pattern`:
/// `%%` is a `%`, any other `%x` stands for any text (the values of
/// DEFAULT_CLIENT_PERCENT_EXPAND_ARGS: %C, %d, %h, %i, %j, %k, %L, %l,
/// %n, %p, %r, %u, ...). Bounded: paths are under PATH_MAX_SUN bytes.
pub fn percent_match(pattern: &[u8], text: &[u8]) -> bool {
    // The pattern as tokens: Some(byte) to match, None for any text.
    let mut toks: Vec<Option<u8>> = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        match (pattern[i], pattern.get(i + 1)) {
            (b'%', Some(b'%')) => toks.push(Some(b'%')),
            (b'%', Some(_)) => toks.push(None),
            // percent_expand: a trailing `%` is fatal ("invalid format").
            (b'%', None) => return false,
            (c, _) => {
                toks.push(Some(c));
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    // ok[j]: the tokens so far can make text[..j]. One row per token:
    // O(tokens x text), whatever the number of wildcards.
    let mut ok = vec![false; text.len() + 1];
    ok[0] = true;
    for t in toks {
        let mut next = vec![false; text.len() + 1];
        match t {
            None => {
                let mut any = false;
                for j in 0..=text.len() {
                    any |= ok[j];
                    next[j] = any;
                }
            }
            Some(c) => {
                for j in 1..=text.len() {
                    next[j] = ok[j - 1] && text[j - 1] == c;
                }
            }
        }
        ok = next;
    }
    ok[text.len()]
}

/// readconf.c add_local_forward/add_remote_forward: forwards in ssh's
/// order with later duplicates dropped.
pub fn dedup(forwards: &[Forward]) -> Vec<Forward> {
    let mut kept: Vec<Forward> = Vec::with_capacity(forwards.len());
    for f in forwards {
        if !kept.iter().any(|k| k.ssh_equals(f)) {
            kept.push(f.clone());
        }
    }
    kept
}

/// The forward lines `ssh -G` prints for these forwards given in this
/// order, each ending in `\n` (readconf.c dump_client_config: all
/// dynamicforward lines, then localforward, then remoteforward).
pub fn dump_ssh_g(forwards: &[Forward]) -> Vec<u8> {
    let kept = dedup(forwards);
    let mut out = Vec::new();
    for code in [Code::Dynamic, Code::Local, Code::Remote] {
        for f in &kept {
            if (f.kind == Kind::Remote) != (code == Code::Remote) {
                continue;
            }
            if let Some(line) = dump_line(code, &f.to_raw()) {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
    }
    out
}

/// The opcode dump_cfg_forwards is called with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    Dynamic,
    Local,
    Remote,
}

/// readconf.c dump_cfg_forwards for one forward: `None` where it skips it.
fn dump_line(code: Code, fwd: &Raw) -> Option<Vec<u8>> {
    let socks = fwd.connect_host.as_deref().map(|h| h == SOCKS);
    // Dynamic and local forwards share one list; a connect_host of
    // "socks" is what tells them apart when printing, whatever the port.
    match code {
        Code::Dynamic if socks == Some(false) => return None,
        Code::Local if socks == Some(true) => return None,
        _ => {}
    }
    let mut out = match code {
        Code::Dynamic => b"dynamicforward".to_vec(),
        Code::Local => b"localforward".to_vec(),
        Code::Remote => b"remoteforward".to_vec(),
    };
    push_side(
        &mut out,
        &fwd.listen_host,
        fwd.listen_port,
        &fwd.listen_path,
    );
    if code != Code::Dynamic {
        push_side(
            &mut out,
            &fwd.connect_host,
            fwd.connect_port,
            &fwd.connect_path,
        );
    }
    Some(out)
}

/// One side as dump_cfg_forwards prints it: ` path`, ` port` or ` [host]:port`.
fn push_side(out: &mut Vec<u8>, host: &Option<Vec<u8>>, port: i32, path: &Option<Vec<u8>>) {
    out.push(b' ');
    match (port, host, path) {
        (PORT_STREAMLOCAL, _, path) => out.extend_from_slice(path.as_deref().unwrap_or(b"(null)")),
        (port, None, _) => out.extend_from_slice(port.to_string().as_bytes()),
        (port, Some(host), _) => {
            out.push(b'[');
            out.extend_from_slice(host);
            out.extend_from_slice(b"]:");
            out.extend_from_slice(port.to_string().as_bytes());
        }
    }
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let n = memchr::memchr(sep, s)?;
    Some((&s[..n], &s[n + 1..]))
}

/// How much a split reading this side is to be believed: a bracketed TCP
/// side cannot be an accident, an absolute path is the usual socket path.
fn likelihood(side: &Endpoint) -> usize {
    match side {
        Endpoint::Tcp { .. } => 2,
        Endpoint::Path(p) if p.starts_with(b"/") => 1,
        Endpoint::Path(_) => 0,
    }
}

/// A port as printf("%d") wrote it: digits, no sign, no leading zero.
fn printed_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// One side as [`push_side`] printed it. A path always holds a `/`:
/// parse_forward only takes a field as a path when it saw one.
fn parse_printed(s: &[u8]) -> Option<Endpoint> {
    if let Some(port) = printed_port(s) {
        return Some(Endpoint::Tcp { host: None, port });
    }
    if let Some(inner) = s.strip_prefix(b"[")
        && let Some(colon) = memchr::memrchr(b':', inner)
        && let Some(host) = inner[..colon].strip_suffix(b"]")
        && let Some(port) = printed_port(&inner[colon + 1..])
    {
        return Some(Endpoint::Tcp {
            host: Some(host.to_vec()),
            port,
        });
    }
    if memchr::memchr(b'/', s).is_some() {
        return Some(Endpoint::Path(s.to_vec()));
    }
    None
}

#[cfg(test)]
mod tests {

    /// misc.h limits, each side alone (checked with ssh -G): host names
    /// shorter than NI_MAXHOST (1025), socket paths shorter than sun_path
    /// (108 on Linux, 104 on the BSDs).
    #[test]
    fn each_side_too_long_alone_is_refused() {
        let a = |n: usize| "a".repeat(n);
        let path = |n: usize| format!("/tmp/{}", "p".repeat(n - 5));
        let sun = PATH_MAX_SUN;
        let table = [
            (format!("{}:1:h:2", a(1024)), true),
            (format!("{}:1:h:2", a(1025)), false),
            (format!("{}:h:2", path(sun - 1)), true),
            (format!("{}:h:2", path(sun)), false),
            (format!("1:{}:2", a(1025)), false),
            (format!("1:{}", path(sun)), false),
        ];
        for (spec, ok) in table {
            assert_eq!(
                parse_arg(b'L', spec.as_bytes()).is_some(),
                ok,
                "{}",
                spec.len()
            );
        }
    }

    /// A local forward to a host named `socks` keeps its target (ssh -G
    /// prints it as a dynamicforward all the same).
    #[test]
    fn a_forward_to_a_host_named_socks_keeps_its_target() {
        let f = parse_arg(b'L', b"1080:socks:80").unwrap();
        assert_eq!(
            f.connect,
            Some(Endpoint::Tcp {
                host: Some(b"socks".to_vec()),
                port: 80
            })
        );
        let d = parse_arg(b'D', b"1080").unwrap();
        assert_eq!(d.connect, None);
        assert!(!f.ssh_equals(&d));
        assert_eq!(f.ssh_g_lines(), d.ssh_g_lines());
        assert!(f.prints_as(&d) && d.prints_as(&f));
    }

    /// A path written with `%` tokens matches its expansion, and only that.
    #[test]
    fn percent_paths_match_their_expansion() {
        let f = |l: u8, s: &str| parse_arg(l, s.as_bytes()).unwrap();
        let table = [
            (f(b'L', "/tmp/%u.s:h:2"), f(b'L', "/tmp/root.s:h:2"), true),
            (f(b'L', "/tmp/%u.s:h:2"), f(b'L', "/tmp/root.x:h:2"), false),
            (f(b'L', "/tmp/%u.s:h:2"), f(b'R', "/tmp/root.s:h:2"), false),
            (f(b'L', "/tmp/%u.s:h:2"), f(b'L', "/tmp/root.s:h:3"), false),
            (f(b'L', "1:/run/%u"), f(b'L', "1:/run/root"), true),
            (f(b'D', "/tmp/%u.s"), f(b'D', "/tmp/root.s"), true),
            (f(b'D', "/tmp/%u.s"), f(b'L', "/tmp/root.s:h:2"), false),
            // No '%': nothing to expand, equal or not.
            (f(b'L', "1:h:2"), f(b'L', "1:h:2"), false),
            (f(b'L', "/tmp/a:h:2"), f(b'L', "/tmp/a:h:2"), false),
        ];
        for (written, expanded, want) in table {
            assert_eq!(
                written.expands_to(&expanded),
                want,
                "{written:?} -> {expanded:?}"
            );
            if want {
                assert!(written.prints_as(&expanded) && expanded.prints_as(&written));
            }
        }
        assert!(f(b'L', "/tmp/%u:h:2").has_percent_path());
        assert!(f(b'L', "1:/run/%u").has_percent_path());
        assert!(!f(b'L', "1:h%u:2").has_percent_path());
    }

    /// `${VAR}` in a forward reads the process environment (ssh -G agrees:
    /// `-L '${HOME}/s:h:2'` is `localforward $HOME/s [h]:2`).
    #[test]
    fn dollar_names_read_the_process_environment() {
        let home = std::env::var_os("HOME").expect("HOME is set").into_vec();
        let f = parse_arg(b'L', b"${HOME}/s:h:2").unwrap();
        assert_eq!(f.listen, Endpoint::Path([home, b"/s".to_vec()].concat()));
        assert_eq!(process_env(b"ROSH_TEST_SURELY_UNSET_VARIABLE"), None);
    }

    use super::*;

    /// A fixed environment so the tables do not depend on the caller's.
    fn env(name: &[u8]) -> Option<Vec<u8>> {
        match name {
            b"HOME" => Some(b"/home/u".to_vec()),
            b"PORT" => Some(b"8080".to_vec()),
            b"HP" => Some(b"h:80".to_vec()),
            b"EMPTY" => Some(Vec::new()),
            _ => None,
        }
    }

    /// (letter, spec, what ssh -G prints or None for "Bad ... specification").
    /// Expected lines were checked against `ssh -G` 9.2p1.
    const ARGS: &[(u8, &str, Option<&str>)] = &[
        // [bind:]port:host:hostport
        (
            b'L',
            "3131:localhost:3131",
            Some("localforward 3131 [localhost]:3131"),
        ),
        (
            b'L',
            "127.0.0.1:3131:localhost:3131",
            Some("localforward [127.0.0.1]:3131 [localhost]:3131"),
        ),
        (
            b'L',
            "[::1]:8080:h:80",
            Some("localforward [::1]:8080 [h]:80"),
        ),
        (b'L', "8001:[::1]:22", Some("localforward 8001 [::1]:22")),
        (b'L', "*:8003:h:22", Some("localforward [*]:8003 [h]:22")),
        (b'L', ":8004:h:22", Some("localforward []:8004 [h]:22")),
        (b'L', "[]:8004:h:22", Some("localforward []:8004 [h]:22")),
        // [bind:]port:/remote/socket, /local/socket:host:hostport, /local:/remote
        // A path target leaves connect_host NULL, which dump_cfg_forwards
        // also prints as a dynamicforward.
        (
            b'L',
            "8080:/run/s",
            Some("dynamicforward 8080\nlocalforward 8080 /run/s"),
        ),
        (
            b'L',
            "h:8080:/run/s",
            Some("dynamicforward [h]:8080\nlocalforward [h]:8080 /run/s"),
        ),
        (b'L', "/tmp/l:h:80", Some("localforward /tmp/l [h]:80")),
        (
            b'L',
            "/tmp/l:/run/r",
            Some("dynamicforward /tmp/l\nlocalforward /tmp/l /run/r"),
        ),
        (
            b'L',
            "[/tmp/a:b]:/r",
            Some("dynamicforward /tmp/a:b\nlocalforward /tmp/a:b /r"),
        ),
        (b'L', "/tmp/l", None),
        // Brackets: a '/' inside makes a path; ']' must end the field;
        // the last field may be bracketed (each checked with ssh -G).
        (b'L', "[h]:/r", None),
        (b'L', "[h]2:h:80", None),
        (b'D', "[1080]", Some("dynamicforward 1080")),
        (b'L', "1:h:[80]", Some("localforward 1 [h]:80")),
        (b'L', "[/tmp/p]:h:80", Some("localforward /tmp/p [h]:80")),
        (b'D', "/tmp/l:80", Some("dynamicforward [/tmp/l]:80")),
        (b'L', "/tmp/l:80", None),
        // Backslash escapes: `\:` is no separator, `\/` no path marker.
        (b'L', "8080:a\\:b:80", Some("localforward 8080 [a:b]:80")),
        (b'L', "8080:h\\/x:80", Some("localforward 8080 [h/x]:80")),
        (b'L', "8080:h\\\\x:80", Some("localforward 8080 [h\\x]:80")),
        (b'L', "8080:h:80\\", None),
        (b'D', "1080:\\", Some("dynamicforward 1080")),
        // Ports: 0 only for -R, 65535 ok, 65536 not, services by name.
        (b'L', "0:h:80", None),
        (b'L', "1:h:0", None),
        (b'L', "65535:h:65535", Some("localforward 65535 [h]:65535")),
        (b'L', "65536:h:80", None),
        (b'L', "ssh:h:ssh", Some("localforward 22 [h]:22")),
        (b'L', "nosuchservice:h:80", None),
        (b'L', " 22:h:022", Some("localforward 22 [h]:22")),
        (b'D', "0", None),
        (b'D', "-1", None),
        (b'D', "abc", None),
        (b'R', "0:h:80", Some("remoteforward 0 [h]:80")),
        (b'R', "-0:h:80", Some("remoteforward 0 [h]:80")),
        (b'R', "0", Some("remoteforward 0 [socks]:0")),
        // Dynamic forwards and their -G quirks.
        (b'D', "1080", Some("dynamicforward 1080")),
        (
            b'D',
            "localhost:1080",
            Some("dynamicforward [localhost]:1080"),
        ),
        (b'D', "8080:", Some("dynamicforward 8080")),
        (b'D', "8080::", None),
        (b'D', "/tmp/socks", Some("dynamicforward /tmp/socks")),
        (b'D', "/a:/b", Some("dynamicforward /a\nlocalforward /a /b")),
        (
            b'D',
            "8080:/b",
            Some("dynamicforward 8080\nlocalforward 8080 /b"),
        ),
        (b'D', "1:h:2", None),
        (b'L', "1234:socks:80", Some("dynamicforward 1234")),
        (b'R', "1080", Some("remoteforward 1080 [socks]:0")),
        (b'R', "h:1080", Some("remoteforward [h]:1080 [socks]:0")),
        (b'R', "/tmp/r", Some("remoteforward /tmp/r [socks]:0")),
        (
            b'R',
            "8082:localhost:8082",
            Some("remoteforward 8082 [localhost]:8082"),
        ),
        (b'R', "/r:/l", Some("remoteforward /r /l")),
        // Trailing garbage, brackets, spaces, empty fields.
        (b'L', "1:h:2:3:4", None),
        (b'L', "1:h:2:", Some("localforward 1 [h]:2")),
        (b'L', "[::1:8080:h:80", None),
        (b'L', "[::1]x:8080:h:80", None),
        (b'L', "8080:[h]:80x", None),
        (b'L', "  8080:h:80", Some("localforward 8080 [h]:80")),
        (b'L', "\t8080:h:80", Some("localforward 8080 [h]:80")),
        (b'L', "8080: h:80", Some("localforward 8080 [ h]:80")),
        (b'L', "8080:h:80 ", None),
        (b'L', "8080::80", Some("localforward 8080 []:80")),
        (b'L', "", None),
        (b'L', "   ", None),
        (b'D', ":", None),
        // ${VAR} expansion; `$` without `{` is literal.
        (
            b'L',
            "${HOME}/s:h:80",
            Some("localforward /home/u/s [h]:80"),
        ),
        (b'L', "${PORT}:${HP}", Some("localforward 8080 [h]:80")),
        (b'L', "1:${EMPTY}h:2", Some("localforward 1 [h]:2")),
        (b'L', "1:$h:2", Some("localforward 1 [$h]:2")),
        (b'L', "1:$${PORT}:2", Some("localforward 1 [$8080]:2")),
        (b'L', "1:${NOPE}:2", None),
        (b'L', "1:${}:2", None),
        (b'L', "1:${PORT:2", None),
        // Other letters, even -W (stdio forwarding), are not forwards.
        (b'W', "h:22", None),
    ];

    #[test]
    fn percent_match_table() {
        let table: &[(&str, &str, bool)] = &[
            ("/a/%h.sock", "/a/host.sock", true),
            ("/a/%h.sock", "/a/.sock", true),
            ("/a/%h.sock", "/a/host.sok", false),
            ("/a/%%h", "/a/%h", true),
            ("/a/%%h", "/a/xh", false),
            ("/a/%h%p%r", "/a/h22u", true),
            ("/a/%", "/a/%", false),
            ("/plain", "/plain", true),
            ("/plain", "/plainx", false),
        ];
        for &(p, t, want) in table {
            assert_eq!(percent_match(p.as_bytes(), t.as_bytes()), want, "{p} {t}");
        }
        // Many wildcards stay cheap (one row per token).
        let p = "%a".repeat(50) + "x";
        assert!(!percent_match(p.as_bytes(), "y".repeat(100).as_bytes()));
    }

    #[test]
    fn parse_arg_table() {
        for &(letter, spec, want) in ARGS {
            let got = parse_arg_with_env(letter, spec.as_bytes(), &env).map(|f| f.ssh_g());
            let got = got.as_deref().map(String::from_utf8_lossy);
            assert_eq!(got.as_deref(), want, "-{} {spec:?}", letter as char);
        }
    }

    #[test]
    fn minus_zero_port_is_zero() {
        // strtoll takes "-0" as 0, and port 0 is refused for -L.
        assert_eq!(parse_arg_with_env(b'L', b"-0:h:22", &env), None);
        let f = parse_arg_with_env(b'L', b"1:h:+22", &env).unwrap();
        assert_eq!(f.ssh_g(), b"localforward 1 [h]:22");
    }

    #[test]
    fn non_utf8_passes_through() {
        let f = parse_arg_with_env(b'L', b"1:h\xff\xfe:2", &env).unwrap();
        assert_eq!(f.ssh_g(), b"localforward 1 [h\xff\xfe]:2");
        assert_eq!(Forward::from_ssh_g(&f.ssh_g()), Some(f));
    }

    #[test]
    fn lengths() {
        // NI_MAXHOST 1025 and PATH_MAX_SUN, as strlen >= limit.
        let host = |n: usize| format!("1:{}:2", "h".repeat(n));
        assert!(parse_arg_with_env(b'L', host(1024).as_bytes(), &env).is_some());
        assert!(parse_arg_with_env(b'L', host(1025).as_bytes(), &env).is_none());
        let path = |n: usize| format!("1:/{}", "p".repeat(n - 1));
        let sun = PATH_MAX_SUN;
        assert!(parse_arg_with_env(b'L', path(sun - 1).as_bytes(), &env).is_some());
        assert!(parse_arg_with_env(b'L', path(sun).as_bytes(), &env).is_none());
    }

    /// sizeof(sun_path) from the target's struct: 108 on Linux, 104 on the BSDs.
    #[test]
    fn sun_path_is_the_targets() {
        let want = if cfg!(any(target_os = "linux", target_os = "android")) {
            108
        } else {
            104
        };
        assert_eq!(PATH_MAX_SUN, want);
    }

    /// (keyword, args, ssh -G output or None for an error).
    const KEYWORDS: &[(Kind, &[&str], Option<&str>)] = &[
        (
            Kind::Local,
            &["127.0.0.1:3131", "localhost:3131"],
            Some("localforward [127.0.0.1]:3131 [localhost]:3131"),
        ),
        (Kind::Local, &["3131"], None),
        (Kind::Local, &["3131", ""], None),
        (Kind::Local, &[""], None),
        (Kind::Local, &[], None),
        (
            Kind::Local,
            &["127.0.0.1", "3131", "localhost", "3131"],
            None,
        ),
        (
            Kind::Local,
            &["/l", "/r"],
            Some("dynamicforward /l\nlocalforward /l /r"),
        ),
        (
            Kind::Remote,
            &["1080"],
            Some("remoteforward 1080 [socks]:0"),
        ),
        (
            Kind::Remote,
            &["1080", ""],
            Some("remoteforward 1080 [socks]:0"),
        ),
        (Kind::Remote, &["1080", "", "x"], None),
        (
            Kind::Remote,
            &["8082", "localhost:8082"],
            Some("remoteforward 8082 [localhost]:8082"),
        ),
        (Kind::Remote, &["0", "h:1"], Some("remoteforward 0 [h]:1")),
        (Kind::Remote, &["/r:/l"], Some("remoteforward /r /l")),
        (Kind::Dynamic, &["1080"], Some("dynamicforward 1080")),
        (Kind::Dynamic, &["1080", "x"], None),
        (Kind::Dynamic, &["0"], None),
        (Kind::Dynamic, &["${PORT}"], Some("dynamicforward 8080")),
    ];

    #[test]
    fn parse_keyword_table() {
        for &(kind, args, want) in KEYWORDS {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let got = parse_keyword_with_env(kind, &args, &env).map(|f| f.ssh_g());
            let got = got.as_deref().map(String::from_utf8_lossy);
            assert_eq!(got.as_deref(), want, "{kind:?} {args:?}");
        }
    }

    #[test]
    fn keyword_spec_is_cut_at_255_bytes() {
        // "1:" + 251 bytes of host + ":80" is cut inside the port.
        let host = "h".repeat(251);
        let target = format!("{host}:80");
        let args: [&[u8]; 2] = [b"1", target.as_bytes()];
        let f = parse_keyword_with_env(Kind::Local, &args, &env).unwrap();
        assert_eq!(
            f.connect,
            Some(Endpoint::Tcp {
                host: Some(host.clone().into_bytes()),
                port: 8
            })
        );
        // The same spec given with -L is not cut.
        let spec = format!("1:{host}:80");
        let f = parse_arg_with_env(b'L', spec.as_bytes(), &env).unwrap();
        assert_eq!(
            f.connect,
            Some(Endpoint::Tcp {
                host: Some(host.into_bytes()),
                port: 80
            })
        );
    }

    #[test]
    fn dollar_expand_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"", Some(b"")),
            (b"$", Some(b"$")),
            (b"a$b", Some(b"a$b")),
            (b"${HOME}", Some(b"/home/u")),
            (b"x${HOME}y${PORT}", Some(b"x/home/uy8080")),
            (b"${EMPTY}", Some(b"")),
            (b"${", None),
            (b"${}", None),
            (b"${HOME", None),
            (b"${NOPE}${HOME}", None),
            (b"}${HOME}}", Some(b"}/home/u}")),
        ];
        for &(input, want) in cases {
            assert_eq!(dollar_expand(input, &env).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn a2port_table() {
        let cases: &[(&[u8], i32)] = &[
            (b"0", 0),
            (b"1", 1),
            (b"65535", 65535),
            (b"65536", -1),
            (b"-1", -1),
            (b"-0", 0),
            (b"+7", 7),
            (b" 7", 7),
            (b"7 ", -1),
            (b"0x10", -1),
            (b"", -1),
            (b"99999999999999999999999", -1),
            (b"ssh", 22),
            (b"abc", -1),
        ];
        for &(input, want) in cases {
            assert_eq!(a2port(input), want, "{input:?}");
        }
    }

    #[test]
    fn from_ssh_g_table() {
        let lines: &[&[u8]] = &[
            b"localforward [127.0.0.1]:3131 [localhost]:3131",
            b"localforward 8001 [::1]:22",
            b"localforward []:8004 [h]:22",
            b"localforward /a b/c [h]:1",
            b"localforward [a b]:1 [c d]:2",
            b"remoteforward 1080 [socks]:0",
            b"remoteforward 0 /x",
            b"dynamicforward 1080",
            b"dynamicforward /tmp/s",
            b"dynamicforward [*]:1080",
        ];
        for &line in lines {
            let f = Forward::from_ssh_g(line).unwrap_or_else(|| panic!("{line:?}"));
            assert!(f.ssh_g_lines().iter().any(|l| l == line), "{line:?}");
        }
        // A path target is one forward that ssh prints on two lines.
        let f = Forward::from_ssh_g(b"localforward 1 /b").unwrap();
        assert_eq!(f.ssh_g(), b"dynamicforward 1\nlocalforward 1 /b");
        let f = Forward::from_ssh_g(b"localforward /a b/c [h]:1").unwrap();
        assert_eq!(f.listen, Endpoint::Path(b"/a b/c".to_vec()));
        let f = Forward::from_ssh_g(b"remoteforward /a b /tmp/a:b").unwrap();
        assert_eq!(f.listen, Endpoint::Path(b"/a b".to_vec()));
        // A relative listen path: the split with an absolute target wins.
        let f = Forward::from_ssh_g(b"localforward a/ b /c").unwrap();
        assert_eq!(f.listen, Endpoint::Path(b"a/ b".to_vec()));
        let f = Forward::from_ssh_g(b"remoteforward 1080 [socks]:0").unwrap();
        assert_eq!(f, parse_arg_with_env(b'R', b"1080", &env).unwrap());
        for bad in [
            &b"localforward 1"[..],
            b"dynamicforward x",
            b"dynamicforward 65536",
            b"dynamicforward 01",
            b"localforward 1 [h]:-1",
            // ssh always has a connect host for a TCP target.
            b"localforward 1 2",
            b"remoteforward 1 2",
            b"forwardagent no",
            b"",
        ] {
            assert_eq!(Forward::from_ssh_g(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn listen_accessors() {
        let f = |l: u8, s: &str| parse_arg_with_env(l, s.as_bytes(), &env).unwrap();
        assert_eq!(
            f(b'L', "127.0.0.1:3131:h:1").local_tcp_listen(),
            Some((Some(&b"127.0.0.1"[..]), 3131))
        );
        assert_eq!(f(b'D', "1080").local_tcp_listen(), Some((None, 1080)));
        assert_eq!(f(b'R', "8082:h:1").local_tcp_listen(), None);
        assert_eq!(f(b'L', "/l:h:1").local_tcp_listen(), None);
        assert_eq!(f(b'L', "/l:h:1").local_path_listen(), Some(&b"/l"[..]));
        assert_eq!(f(b'D', "/s").local_path_listen(), Some(&b"/s"[..]));
        assert_eq!(f(b'R', "/r:/l").local_path_listen(), None);
    }

    #[test]
    fn dedup_and_dump_follow_ssh() {
        let f = |l: u8, s: &str| parse_arg_with_env(l, s.as_bytes(), &env).unwrap();
        let all = [
            f(b'R', "1080"),
            f(b'L', "1:h:2"),
            f(b'D', "1080"),
            f(b'L', "1:h:2"),
            f(b'L', "1234:socks:80"),
            f(b'D', "8080:/b"),
            f(b'L', "8080:/b"),
            f(b'R', "1080"),
        ];
        assert_eq!(dedup(&all).len(), 5);
        assert_eq!(
            String::from_utf8_lossy(&dump_ssh_g(&all)),
            "dynamicforward 1080\ndynamicforward 1234\ndynamicforward 8080\n\
             localforward 1 [h]:2\nlocalforward 8080 /b\nremoteforward 1080 [socks]:0\n"
        );
    }
}
