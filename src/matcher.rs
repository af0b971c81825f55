//! Diagnostics matcher: relays ssh's own log lines byte for byte and spots the forward failures in them.
//!
//! rosh-ssh runs ssh with `-E <fifo>`, so only ssh's own log lines reach this matcher; the
//! remote program's stderr stays on the real stderr and is never scanned (a remote program
//! printing `bind [127.0.0.1]:1: ...` cannot fool rosh-ssh this way).
//!
//! The matcher is pure: bytes in, [`Piece`]s out, no I/O. Every input byte comes out exactly
//! once, in order, unchanged. It is incremental over arbitrary chunk boundaries and bounded:
//! at most `cap` bytes of a partial line are held; a line that cannot fit is relayed as
//! [`Piece::Raw`] as it arrives and never matched. ssh itself never writes a line longer than
//! about 1 KiB (log.c: `MSGBUFSIZ` 1024), so the 64 KiB default cap only guards against
//! garbage.
//!
//! What ssh writes (OpenSSH 9.2p1, log.c `do_log`/`sshlogv`): with `-E` the log goes to a
//! file through `log_redirect_stderr_to`, formatted exactly as on stderr: each line ends in
//! `\r\n`; debug lines start with `debug1: ` (2, 3); error and fatal lines carry no level
//! word and no `ssh: ` progname prefix (`log_on_stderr` is 1 for ssh, only scp uses 2);
//! `error_f` and friends prefix `function: `. A message forced out by `LogVerbose` instead
//! carries the tag `file.c:function():LINE (pid=N): ` (newer OpenSSH:
//! `(bin=ARGV0, pid=N)`), truncated to 127 bytes by `tag[128]`. Text is `strnvis`-encoded
//! (VIS_SAFE|VIS_OCTAL), so paths are reported as ssh printed them.

use memchr::memchr;
use regex_lite::Regex;
use std::sync::OnceLock;

/// Default cap on the partial line held between chunks.
pub const DEFAULT_CAP: usize = 64 * 1024;

/// One forward failure reported by ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// ssh.c `ssh_confirm_remote_forward`: `Warning:` (`fatal: false`) or `Error:`
    /// (`fatal: true`, ExitOnForwardFailure) `remote port forwarding failed for listen port N`.
    /// Names the port only: two remote forwards on one port with different listen addresses
    /// (GatewayPorts clientspecified) can't be told apart by it (see [`Failure::RemoteRefused`]).
    RemotePort { port: u16, fatal: bool },
    /// ssh.c `ssh_confirm_remote_forward`'s debug line `remote forward failure for: listen
    /// [HOST:]N, connect ...`, written right before the `Warning:`/`Error:` line of the same
    /// refusal: it names the listen host as the forward has it (`None`: the forward gave
    /// none; `Some(b"")` for `:N`). It does not say whether the failure is fatal.
    RemoteRefused {
        listen_host: Option<Vec<u8>>,
        port: u16,
    },
    /// As [`Failure::RemotePort`], for `... for listen path P` (and `listen P:-2` in the
    /// debug line, where -2 is misc.h `PORT_STREAMLOCAL`).
    RemotePath { path: Vec<u8>, fatal: bool },
    /// channels.c `channel_setup_fwd_listener_tcpip`: `bind [ADDR]:PORT: REASON` for one
    /// address of a local (or dynamic) forward. `error` for the last address, `verbose` for
    /// the others, so at LogLevel INFO only the last address's failure shows. Or, the bind
    /// done, `listen [ADDR]:PORT: REASON` (always `error`): two ssh's that bound one port at
    /// once (SO_REUSEADDR, neither listening yet) race at listen(2) and the loser says so.
    LocalBind {
        call: Call,
        addr: Vec<u8>,
        port: u16,
        reason: Vec<u8>,
    },
    /// channels.c `channel_setup_fwd_listener_tcpip` before 8.9: `listen: REASON`, written
    /// right before the `listen [ADDR]:PORT: REASON` of the same failure. Names nothing by
    /// itself (the client has no other `listen:` line: x11_create_display_inet's is sshd's).
    ListenUnnamed { reason: Vec<u8> },
    /// channels.c `channel_setup_fwd_listener_tcpip`: `cannot listen to port: N` (no address
    /// of the forward could listen).
    LocalCannotListen { port: u16 },
    /// ssh.c `ssh_init_forwarding`: `Could not request local forwarding.` Fatal with
    /// ExitOnForwardFailure when any local forward failed, else an error when none succeeded.
    /// Names no port.
    LocalNoneSucceeded,
    /// misc.c `unix_listener`: `cannot bind to path P: REASON` or `cannot listen on path P:
    /// REASON`, for a local forward listening on a Unix socket.
    LocalPath { path: Vec<u8> },
    /// Not a failure: mux.c `mux_client_forward`'s debug line `Requesting forwarding of
    /// remote forward HOST:N -> ...` (HOST `LOCALHOST` when the forward gave none, shown
    /// `None` here). The master's answer is read right after it, so a failure reply that
    /// follows is this forward's.
    MuxRequest {
        listen_host: Option<Vec<u8>>,
        port: u16,
    },
    /// mux.c, through a ControlMaster: `mux_client_forward: forwarding request failed: R`
    /// (R as sent by the master, e.g. `Port forwarding failed` or `remote port forwarding
    /// failed for listen port N`), `Master refused forwarding request: R`, and `muxclient:
    /// master forward request failed` (reason is that text).
    Mux { reason: Vec<u8> },
}

/// Which call of channels.c `channel_setup_fwd_listener_tcpip` failed for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Bind,
    Listen,
}

impl Call {
    /// The word ssh's line starts with.
    pub fn word(self) -> &'static str {
        match self {
            Call::Bind => "bind",
            Call::Listen => "listen",
        }
    }
}

/// What the matcher hands out. Concatenating the bytes of all pieces gives the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// One whole line, including its `\n` (or `\r\n`); only the last line before
    /// [`Matcher::finish`] may lack it.
    Line {
        bytes: &'a [u8],
        failure: Option<Failure>,
        /// The line carries a `LogVerbose` tag `file.c:function():LINE (pid=N): `.
        forced: bool,
    },
    /// Part of a line longer than the cap, relayed as it came and never matched.
    Raw(&'a [u8]),
}

/// Streaming matcher; see the module documentation.
pub struct Matcher {
    /// Start of the current line, carried over from earlier chunks. Invariant: empty while
    /// `overlong`; otherwise `held.len() < cap` and it has no `\n`, so the line can still end
    /// within the cap. Its allocation never exceeds `cap`.
    held: Vec<u8>,
    cap: usize,
    /// The current line already exceeded the cap: relay as `Raw` up to and including its `\n`.
    overlong: bool,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Matcher {
    /// A matcher holding at most [`DEFAULT_CAP`] bytes of a partial line.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAP)
    }

    /// A matcher holding at most `cap` bytes of a line: a line longer than `cap` bytes
    /// (counting its line end; a last line without one, `cap` bytes or more) comes out as
    /// [`Piece::Raw`]. Capacity 0 relays everything raw.
    pub fn with_capacity(cap: usize) -> Self {
        Matcher {
            held: Vec::new(),
            cap,
            overlong: false,
        }
    }

    /// Scans `chunk`, handing every complete line (and every piece of an over-long line) to
    /// `out` in order; keeps the start of an unfinished line for the next call. Pieces borrow
    /// from `chunk` or from the matcher, so `out` must write them before it returns.
    pub fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Piece<'_>)) {
        let mut chunk = chunk;
        if self.overlong {
            match memchr(b'\n', chunk) {
                None => {
                    if !chunk.is_empty() {
                        out(Piece::Raw(chunk));
                    }
                    return;
                }
                Some(i) => {
                    out(Piece::Raw(&chunk[..=i]));
                    self.overlong = false;
                    chunk = &chunk[i + 1..];
                }
            }
        }
        if !self.held.is_empty() {
            match memchr(b'\n', chunk) {
                None => {
                    self.hold(chunk, out);
                    return;
                }
                Some(i) => {
                    let (tail, rest) = chunk.split_at(i + 1);
                    if self.held.len() + tail.len() <= self.cap {
                        self.grow_held(tail);
                        let (failure, forced) = classify(&self.held);
                        out(Piece::Line {
                            bytes: &self.held,
                            failure,
                            forced,
                        });
                    } else {
                        out(Piece::Raw(&self.held));
                        out(Piece::Raw(tail));
                    }
                    self.held.clear();
                    chunk = rest;
                }
            }
        }
        // Whole lines straight from the chunk, without copying.
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let end = nl + 1;
            let line = &chunk[start..end];
            if line.len() <= self.cap {
                let (failure, forced) = classify(line);
                out(Piece::Line {
                    bytes: line,
                    failure,
                    forced,
                });
            } else {
                out(Piece::Raw(line));
            }
            start = end;
        }
        self.hold(&chunk[start..], out);
    }

    /// Ends the input: a last line without `\n` is handed out as a [`Piece::Line`]. The
    /// matcher is then ready for a new stream.
    pub fn finish(&mut self, out: &mut dyn FnMut(Piece<'_>)) {
        self.overlong = false;
        if !self.held.is_empty() {
            let (failure, forced) = classify(&self.held);
            out(Piece::Line {
                bytes: &self.held,
                failure,
                forced,
            });
            self.held.clear();
        }
    }

    /// Keeps `part` (no `\n` in it) as the continuation of the held line, or relays the
    /// whole line so far as raw once it can no longer end within the cap.
    fn hold(&mut self, part: &[u8], out: &mut dyn FnMut(Piece<'_>)) {
        if part.is_empty() {
            return;
        }
        // The line will be at least `held + part + 1` bytes long with its `\n`.
        if self.held.len() + part.len() < self.cap {
            self.grow_held(part);
        } else {
            if !self.held.is_empty() {
                out(Piece::Raw(&self.held));
                self.held.clear();
            }
            out(Piece::Raw(part));
            self.overlong = true;
        }
    }

    /// Appends to `held` without letting its allocation pass `cap` (callers check the length).
    fn grow_held(&mut self, part: &[u8]) {
        let need = self.held.len() + part.len();
        if need > self.held.capacity() {
            let want = need.max(self.held.capacity() * 2).min(self.cap).max(need);
            self.held.reserve_exact(want - self.held.len());
        }
        self.held.extend_from_slice(part);
    }
}

/// Parses one line (with its line end): whether it reports a failure, and whether it carries
/// a `LogVerbose` tag. Cheap for the lines of no interest, the bulk of a debug log: only the
/// first word is looked at, and the regexes run only on a line whose message starts like a
/// failure message.
#[inline]
fn classify(line: &[u8]) -> (Option<Failure>, bool) {
    let text = strip_level(strip_line_end(line));
    // Without `:` right after the first word there is neither a tag nor a `function: `.
    if !may_start_failure(text) && !first_word_ends_in_colon(text) {
        return (None, false);
    }
    classify_message(text)
}

/// Bytes that end the first word of a message: no file or function name of a tag contains
/// them (log.c `sshlogv`: `file:func():line (`).
static WORD_END: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b':' as usize] = true;
    t[b'(' as usize] = true;
    t[b')' as usize] = true;
    t
};

/// Whether the first word of a message ends in a colon: a tag (`file.c:func():...`) or a
/// `function: ` comes first. This runs on every line, so it looks at eight bytes at a time
/// (a first word is usually shorter) and only the remainder byte by byte.
#[inline]
fn first_word_ends_in_colon(text: &[u8]) -> bool {
    /// High bit set in each byte of `w` equal to `b`. Bits above the lowest true match may be
    /// false positives (borrows), so only the lowest set bit is to be trusted.
    fn eq_bytes(w: u64, b: u8) -> u64 {
        const LO: u64 = 0x0101_0101_0101_0101;
        let x = w ^ (LO * u64::from(b));
        x.wrapping_sub(LO) & !x & (LO << 7)
    }
    let mut rest = text;
    while let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        let w = u64::from_le_bytes(*eight);
        let m = eq_bytes(w, b' ') | eq_bytes(w, b':') | eq_bytes(w, b'(') | eq_bytes(w, b')');
        if m != 0 {
            return eight[(m.trailing_zeros() / 8) as usize] == b':';
        }
        rest = tail;
    }
    match rest.iter().position(|&b| WORD_END[usize::from(b)]) {
        Some(i) => rest[i] == b':',
        None => false,
    }
}

/// The rest of [`classify`], for a message after its level word.
#[inline(never)]
fn classify_message(text: &[u8]) -> (Option<Failure>, bool) {
    let (body, forced) = strip_tag(text);
    (match_body(body), forced)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Strips the level word that precedes a message. ssh writes only `debugN: ` to stderr or
/// `-E`; `error: ` and `fatal: ` appear in other modes of log.c `do_log` and cost nothing to
/// accept. Byte tests, not a table of words: this runs on every line.
fn strip_level(text: &[u8]) -> &[u8] {
    match text {
        [
            b'd',
            b'e',
            b'b',
            b'u',
            b'g',
            b'1'..=b'3',
            b':',
            b' ',
            rest @ ..,
        ] => rest,
        [b'e', b'r', b'r', b'o', b'r', b':', b' ', rest @ ..] => rest,
        [b'f', b'a', b't', b'a', b'l', b':', b' ', rest @ ..] => rest,
        _ => text,
    }
}

/// log.c `sshlogv`: `char tag[128]`, so a tag is at most 127 bytes.
const TAG_MAX: usize = 127;
/// log.c `sshlogv`: file and function names are cut to 48 bytes (`%.48s`).
const TAG_NAME_MAX: usize = 48;

/// Returns the message after the `LogVerbose` tag, and whether there was one. A
/// `function: ` prefix of an unforced `_f` message is left for the rules.
fn strip_tag(text: &[u8]) -> (&[u8], bool) {
    match tag_len(text) {
        Some(n) => (&text[n..], true),
        None => (text, false),
    }
}

/// Length of a log.c `sshlogv` tag plus its `: ` at the start of `text`:
/// `%.48s:%.48s():%d (pid=%ld): `, or `(bin=%s, pid=%ld): ` in newer OpenSSH.
fn tag_len(text: &[u8]) -> Option<usize> {
    let name = |s: &[u8]| {
        let n = s.iter().position(|&b| WORD_END[usize::from(b)])?;
        (1..=TAG_NAME_MAX).contains(&n).then_some(n)
    };
    let file = name(text)?;
    let rest = text[file..].strip_prefix(b":")?;
    let func = name(rest)?;
    let rest = rest[func..].strip_prefix(b"():")?;
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].strip_prefix(b" (")?;
    let head = text.len() - rest.len();
    // pid=N): , or bin=ARGV0, pid=N): where ARGV0 ends at the first ", pid=".
    let pid = if rest.starts_with(b"bin=") {
        memchr::memmem::find(rest, b", pid=").map(|i| i + 2)
    } else {
        rest.starts_with(b"pid=").then_some(0)
    };
    if let Some(pid) = pid {
        let digits = rest[pid + 4..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let after = pid + 4 + digits;
        if digits > 0 && rest[after..].starts_with(b"): ") {
            return Some(head + after + 3);
        }
    }
    // A long `bin=` cut the tag at 127 bytes; the `: ` follows right there.
    let cut = rest.starts_with(b"bin=") || rest.starts_with(b"pid=");
    match text.get(TAG_MAX..TAG_MAX + 2) {
        Some(b": ") if cut && head <= TAG_MAX => Some(TAG_MAX + 2),
        _ => None,
    }
}

/// Which message a rule recognises; the captures of its regex fill the [`Failure`].
#[derive(Clone, Copy)]
enum Rule {
    Remote,
    RemoteDebug,
    LocalBind,
    ListenUnnamed,
    CannotListen,
    NoneSucceeded,
    UnixListener,
    MuxFailed,
    MuxRefused,
    MuxMaster,
    MuxConfirm,
    MuxRequest,
}

/// An ssh function name as `error_f` prints it. ssh's are lower case, which keeps out the
/// `Remote: ` that ssh puts before messages relayed from sshd.
const FUNC: &str = "[a-z_][a-z0-9_]*";

/// One regex per message, anchored at both ends, and the words the message starts with: the
/// regex runs only on a message that starts with one of them, bare or after a `function: `.
/// `(?:{FUNC}: )?` is the `function: ` of an unforced `error_f`; a forced line has the tag
/// instead.
struct RuleRe {
    rule: Rule,
    starts: &'static [&'static str],
    re: &'static str,
}

/// Each rule's regex, compiled the first time a line starts like its message:
/// most sessions never compile one (the commonest failures are read by hand).
static COMPILED: [OnceLock<Regex>; 12] = [const { OnceLock::new() }; 12];

fn compiled(i: usize) -> &'static Regex {
    COMPILED[i].get_or_init(|| {
        let re = RULES[i].re.replace("{FUNC}", FUNC);
        Regex::new(&format!(r"(?s)\A(?:{re})\z")).expect("static regex")
    })
}

static RULES: [RuleRe; 12] = [
    // ssh.c ssh_confirm_remote_forward
    RuleRe {
        rule: Rule::Remote,
        starts: &["Warning: remote port", "Error: remote port"],
        re: r"(Warning|Error): remote port forwarding failed for listen (?:port ([0-9]+)|path (.*))",
    },
    // ssh.c ssh_confirm_remote_forward: debug("remote forward %s for: listen %s%s%d, ...")
    RuleRe {
        rule: Rule::RemoteDebug,
        starts: &["remote forward failure"],
        re: r"remote forward failure for: listen (.*?), connect .*",
    },
    // channels.c channel_setup_fwd_listener_tcpip: error/verbose("bind [%s]:%s: %.100s"),
    // error("listen [%s]:%s: %.100s")
    RuleRe {
        rule: Rule::LocalBind,
        starts: &["bind [", "listen ["],
        re: r"(bind|listen) \[([^\]]*)\]:([0-9]+): (.*)",
    },
    // channels.c channel_setup_fwd_listener_tcpip before 8.9: error("listen: %.100s")
    RuleRe {
        rule: Rule::ListenUnnamed,
        starts: &["listen: "],
        re: r"listen: (.*)",
    },
    // channels.c channel_setup_fwd_listener_tcpip: error_f("cannot listen to port: %d")
    RuleRe {
        rule: Rule::CannotListen,
        starts: &["cannot listen to port"],
        re: r"(?:{FUNC}: )?cannot listen to port: ([0-9]+)",
    },
    // ssh.c ssh_init_forwarding
    RuleRe {
        rule: Rule::NoneSucceeded,
        starts: &["Could not request local"],
        re: r"Could not request local forwarding\.",
    },
    // misc.c unix_listener: error_f("cannot bind to path %s: %s") / "cannot listen on path"
    RuleRe {
        rule: Rule::UnixListener,
        starts: &["cannot bind to path", "cannot listen on path"],
        re: r"(?:{FUNC}: )?cannot (?:bind to|listen on) path (.*): [^:]*",
    },
    // mux.c mux_client_forward: error_f("forwarding request failed: %s")
    RuleRe {
        rule: Rule::MuxFailed,
        starts: &["forwarding request failed"],
        re: r"(?:{FUNC}: )?forwarding request failed: (.*)",
    },
    // mux.c mux_client_forward: error("Master refused forwarding request: %s")
    RuleRe {
        rule: Rule::MuxRefused,
        starts: &["Master refused forwarding"],
        re: r"Master refused forwarding request: (.*)",
    },
    // mux.c muxclient: error_f/fatal_f("master forward request failed")
    RuleRe {
        rule: Rule::MuxMaster,
        starts: &["master forward request failed"],
        re: r"(?:{FUNC}: )?(master forward request failed)",
    },
    // mux.c mux_confirm_remote_forward, in the master: error_f("%s",
    // failmsg) when the server refuses a forward a mux client asked for
    // (rosh-ssh's own restore tries among them).
    RuleRe {
        rule: Rule::MuxConfirm,
        starts: &["remote port forwarding failed"],
        re: r"(?:{FUNC}: )?(remote port forwarding failed for listen (?:port [0-9]+|path .*))",
    },
    // mux.c mux_client_forward: debug("Requesting %s %s", "forwarding of", format_forward())
    // with format_forward's "remote forward %.200s:%d -> %.200s:%d"
    RuleRe {
        rule: Rule::MuxRequest,
        starts: &["Requesting forwarding of remote"],
        re: r"Requesting forwarding of remote forward (.*):([0-9]+) -> .*",
    },
];

/// `body` without a leading `function: ` (an identifier, as `__func__` is), if it has one.
fn strip_func(body: &[u8]) -> Option<&[u8]> {
    let n = body
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if n == 0 {
        return None;
    }
    body[n..].strip_prefix(b": ")
}

/// Whether a message starts with the first four bytes of one of the `RuleRe::starts` words:
/// rules out nearly every line of no interest with a few integer compares.
#[inline]
fn may_start_failure(s: &[u8]) -> bool {
    const fn word(w: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*w)
    }
    const STARTS: [u32; 11] = [
        word(b"Warn"),
        word(b"Erro"),
        word(b"remo"),
        word(b"bind"),
        word(b"list"),
        word(b"cann"),
        word(b"Coul"),
        word(b"forw"),
        word(b"Mast"),
        word(b"mast"),
        word(b"Requ"),
    ];
    match s.first_chunk::<4>() {
        Some(w) => STARTS.contains(&u32::from_le_bytes(*w)),
        None => false,
    }
}

fn match_body(body: &[u8]) -> Option<Failure> {
    let after_func = strip_func(body);
    if !may_start_failure(body) && !after_func.is_some_and(may_start_failure) {
        return None;
    }
    RULES
        .iter()
        .enumerate()
        .find_map(|(i, RuleRe { rule, starts, .. })| {
            let starts_with = |s: &[u8]| starts.iter().any(|w| s.starts_with(w.as_bytes()));
            if !starts_with(body) && !after_func.is_some_and(starts_with) {
                return None;
            }
            // The two lines a busy port writes most, read by hand: the same
            // language as their regexes, without a capture engine per line.
            match rule {
                Rule::Remote => return remote_failed(body),
                Rule::LocalBind => return local_bind(body),
                _ => {}
            }
            by_regex(i, body)
        })
}

/// Rule `i`'s regex on `body`, its captures made a [`Failure`].
fn by_regex(i: usize, body: &[u8]) -> Option<Failure> {
    // log.c strnvis-encodes what ssh logs (VIS_SAFE|VIS_OCTAL): its lines
    // are ASCII, and a line that is not UTF-8 is not one of its messages.
    let c = compiled(i).captures(std::str::from_utf8(body).ok()?)?;
    let cap = |i: usize| c.get(i).map(|m| m.as_str().as_bytes());
    match RULES[i].rule {
        Rule::Remote => {
            let fatal = cap(1)? == b"Error";
            match (cap(2), cap(3)) {
                (Some(port), _) => Some(Failure::RemotePort {
                    port: parse_port(port)?,
                    fatal,
                }),
                (None, Some(path)) => Some(Failure::RemotePath {
                    path: path.to_vec(),
                    fatal,
                }),
                (None, None) => None,
            }
        }
        Rule::RemoteDebug => remote_debug_listen(cap(1)?),
        Rule::LocalBind => Some(Failure::LocalBind {
            call: if cap(1)? == b"bind" {
                Call::Bind
            } else {
                Call::Listen
            },
            addr: cap(2)?.to_vec(),
            port: parse_port(cap(3)?)?,
            reason: cap(4)?.to_vec(),
        }),
        Rule::ListenUnnamed => Some(Failure::ListenUnnamed {
            reason: cap(1)?.to_vec(),
        }),
        Rule::CannotListen => Some(Failure::LocalCannotListen {
            port: parse_port(cap(1)?)?,
        }),
        Rule::NoneSucceeded => Some(Failure::LocalNoneSucceeded),
        Rule::UnixListener => Some(Failure::LocalPath {
            path: cap(1)?.to_vec(),
        }),
        Rule::MuxFailed | Rule::MuxRefused | Rule::MuxMaster | Rule::MuxConfirm => {
            Some(Failure::Mux {
                reason: cap(1)?.to_vec(),
            })
        }
        Rule::MuxRequest => {
            let host = cap(1)?;
            Some(Failure::MuxRequest {
                listen_host: (host != b"LOCALHOST").then(|| host.to_vec()),
                port: parse_port(cap(2)?)?,
            })
        }
    }
}

/// `(Warning|Error): remote port forwarding failed for listen (?:port ([0-9]+)|path (.*))`.
fn remote_failed(body: &[u8]) -> Option<Failure> {
    let (fatal, rest) = match body.strip_prefix(b"Error: ") {
        Some(rest) => (true, rest),
        None => (false, body.strip_prefix(b"Warning: ")?),
    };
    let rest = rest.strip_prefix(b"remote port forwarding failed for listen ")?;
    if let Some(digits) = rest.strip_prefix(b"port ") {
        return Some(Failure::RemotePort {
            port: parse_port(digits)?,
            fatal,
        });
    }
    let path = rest.strip_prefix(b"path ")?;
    Some(Failure::RemotePath {
        path: path.to_vec(),
        fatal,
    })
}

/// `(bind|listen) \[([^\]]*)\]:([0-9]+): (.*)`.
fn local_bind(body: &[u8]) -> Option<Failure> {
    let (call, rest) = match body.strip_prefix(b"bind [") {
        Some(rest) => (Call::Bind, rest),
        None => (Call::Listen, body.strip_prefix(b"listen [")?),
    };
    let close = memchr(b']', rest)?;
    let addr = &rest[..close];
    let rest = rest[close..].strip_prefix(b"]:")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let reason = rest[digits..].strip_prefix(b": ")?;
    Some(Failure::LocalBind {
        call,
        addr: addr.to_vec(),
        port: parse_port(&rest[..digits])?,
        reason: reason.to_vec(),
    })
}

/// The `listen` part of the debug line: `N`, `HOST:N` (HOST may be `::1` or empty), or
/// `PATH:-2` (ssh.c: `"%s%s%d", host or path or "", ":" if either, port`).
fn remote_debug_listen(listen: &[u8]) -> Option<Failure> {
    if let Some(path) = listen.strip_suffix(b":-2") {
        return Some(Failure::RemotePath {
            path: path.to_vec(),
            fatal: false,
        });
    }
    let (listen_host, port) = match memchr::memrchr(b':', listen) {
        Some(i) => (Some(listen[..i].to_vec()), &listen[i + 1..]),
        None => (None, listen),
    };
    Some(Failure::RemoteRefused {
        listen_host,
        port: parse_port(port)?,
    })
}

/// A decimal port as ssh prints it (`%d`); `None` if it is not one.
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(port: u16, fatal: bool) -> Option<Failure> {
        Some(Failure::RemotePort { port, fatal })
    }
    fn rpath(path: &str, fatal: bool) -> Option<Failure> {
        Some(Failure::RemotePath {
            path: path.as_bytes().to_vec(),
            fatal,
        })
    }
    fn bind(addr: &str, port: u16, reason: &str) -> Option<Failure> {
        Some(Failure::LocalBind {
            call: Call::Bind,
            addr: addr.as_bytes().to_vec(),
            port,
            reason: reason.as_bytes().to_vec(),
        })
    }
    fn lpath(path: &str) -> Option<Failure> {
        Some(Failure::LocalPath {
            path: path.as_bytes().to_vec(),
        })
    }
    fn refused(host: Option<&str>, port: u16) -> Option<Failure> {
        Some(Failure::RemoteRefused {
            listen_host: host.map(|h| h.as_bytes().to_vec()),
            port,
        })
    }
    fn request(host: Option<&str>, port: u16) -> Option<Failure> {
        Some(Failure::MuxRequest {
            listen_host: host.map(|h| h.as_bytes().to_vec()),
            port,
        })
    }
    fn mux(reason: &str) -> Option<Failure> {
        Some(Failure::Mux {
            reason: reason.as_bytes().to_vec(),
        })
    }

    /// (line without its line end, expected failure, expected forced).
    fn table() -> Vec<(&'static str, Option<Failure>, bool)> {
        vec![
            // ssh.c ssh_confirm_remote_forward
            (
                "Warning: remote port forwarding failed for listen port 8082",
                port(8082, false),
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port 8082",
                port(8082, true),
                false,
            ),
            (
                "Warning: remote port forwarding failed for listen path /tmp/a b.sock",
                rpath("/tmp/a b.sock", false),
                false,
            ),
            (
                "Error: remote port forwarding failed for listen path /run/x",
                rpath("/run/x", true),
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port 65535",
                port(65535, true),
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port 65536",
                None,
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port 99999999999999999999",
                None,
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port ",
                None,
                false,
            ),
            (
                "Error: remote port forwarding failed for listen port 80 ",
                None,
                false,
            ),
            (
                "Warning: remote port forwarding failed for listen port 0",
                port(0, false),
                false,
            ),
            // The debug line, unforced (-v) and forced (LogVerbose), old and new tag.
            (
                "debug1: remote forward failure for: listen 8082, connect localhost:22",
                refused(None, 8082),
                false,
            ),
            (
                "debug1: ssh.c:ssh_confirm_remote_forward():1827 (pid=4242): remote forward failure for: listen 8082, connect localhost:22",
                refused(None, 8082),
                true,
            ),
            (
                "debug1: ssh.c:ssh_confirm_remote_forward():1827 (bin=/usr/bin/ssh, pid=4242): remote forward failure for: listen 127.0.0.1:8082, connect localhost:22",
                refused(Some("127.0.0.1"), 8082),
                true,
            ),
            (
                "debug1: remote forward failure for: listen ::1:8082, connect [::1]:22",
                refused(Some("::1"), 8082),
                false,
            ),
            (
                "debug1: remote forward failure for: listen :8082, connect h:22",
                refused(Some(""), 8082),
                false,
            ),
            (
                "debug1: remote forward failure for: listen *:8082, connect h:22",
                refused(Some("*"), 8082),
                false,
            ),
            // -R 8082 (remote dynamic): connect host NULL, printed by glibc as (null).
            (
                "debug1: remote forward failure for: listen 8082, connect (null):0",
                refused(None, 8082),
                false,
            ),
            (
                "debug1: remote forward failure for: listen 127.0.0.1:99999, connect h:22",
                None,
                false,
            ),
            // mux.c mux_client_forward: the request the next failure reply answers.
            (
                "debug1: mux.c:mux_client_forward():1752 (pid=9): Requesting forwarding of remote forward 127.0.0.2:8082 -> localhost:22",
                request(Some("127.0.0.2"), 8082),
                true,
            ),
            (
                "debug1: Requesting forwarding of remote forward LOCALHOST:8082 -> localhost:22",
                request(None, 8082),
                false,
            ),
            (
                "debug1: Requesting forwarding of remote forward ::1:8082 -> ::1:22",
                request(Some("::1"), 8082),
                false,
            ),
            (
                "debug1: Requesting forwarding of remote forward /tmp/r.sock:-2 -> /tmp/l:-2",
                None,
                false,
            ),
            (
                "debug1: Requesting cancellation of remote forward 127.0.0.2:8082 -> localhost:22",
                None,
                false,
            ),
            (
                "debug1: Requesting forwarding of local forward LOCALHOST:8082 -> localhost:22",
                None,
                false,
            ),
            (
                "debug1: remote forward failure for: listen /tmp/r.sock:-2, connect /tmp/l.sock:-2",
                rpath("/tmp/r.sock", false),
                false,
            ),
            (
                "debug1: remote forward success for: listen 8082, connect localhost:22",
                None,
                false,
            ),
            (
                "debug1: ssh.c:ssh_confirm_remote_forward():1801 (pid=7): remote forward success for: listen 8082, connect localhost:22",
                None,
                true,
            ),
            // channels.c channel_setup_fwd_listener_tcpip
            (
                "bind [127.0.0.1]:3131: Address already in use",
                bind("127.0.0.1", 3131, "Address already in use"),
                false,
            ),
            (
                "bind [::1]:3131: Address already in use",
                bind("::1", 3131, "Address already in use"),
                false,
            ),
            (
                "bind [fe80::1%eth0]:22: Cannot assign requested address",
                bind("fe80::1%eth0", 22, "Cannot assign requested address"),
                false,
            ),
            (
                "bind [0.0.0.0]:80: Permission denied",
                bind("0.0.0.0", 80, "Permission denied"),
                false,
            ),
            (
                "channels.c:channel_setup_fwd_listener_tcpip():3820 (pid=99): bind [127.0.0.1]:3131: Address already in use",
                bind("127.0.0.1", 3131, "Address already in use"),
                true,
            ),
            // Two ssh's that bound one port at once (SO_REUSEADDR) race at
            // listen(2): the loser's line, and 8.0's bare one before it.
            (
                "listen [127.0.0.1]:3131: Address already in use",
                Some(Failure::LocalBind {
                    call: Call::Listen,
                    addr: b"127.0.0.1".to_vec(),
                    port: 3131,
                    reason: b"Address already in use".to_vec(),
                }),
                false,
            ),
            (
                "listen: Address already in use",
                Some(Failure::ListenUnnamed {
                    reason: b"Address already in use".to_vec(),
                }),
                false,
            ),
            (
                "listen [127.0.0.1]:3131 Address already in use",
                None,
                false,
            ),
            ("listen 127.0.0.1 port 3131", None, false),
            (
                "debug1: channel_setup_fwd_listener_tcpip: listen 127.0.0.1 port 3131, originator x port 1",
                None,
                false,
            ),
            (
                "channel_setup_fwd_listener_tcpip: cannot listen to port: 3131",
                Some(Failure::LocalCannotListen { port: 3131 }),
                false,
            ),
            (
                "channels.c:channel_setup_fwd_listener_tcpip():3865 (pid=99): cannot listen to port: 3131",
                Some(Failure::LocalCannotListen { port: 3131 }),
                true,
            ),
            (
                "channels.c:channel_setup_fwd_listener_tcpip():3865 (bin=ssh, pid=99): cannot listen to port: 3131",
                Some(Failure::LocalCannotListen { port: 3131 }),
                true,
            ),
            // ssh.c ssh_init_forwarding
            (
                "Could not request local forwarding.",
                Some(Failure::LocalNoneSucceeded),
                false,
            ),
            (
                "ssh.c:ssh_init_forwarding():1972 (pid=1): Could not request local forwarding.",
                Some(Failure::LocalNoneSucceeded),
                true,
            ),
            ("Could not request local forwarding", None, false),
            ("Could not request remote forwarding.", None, false),
            // misc.c unix_listener
            (
                "unix_listener: cannot bind to path /tmp/l.sock: Address already in use",
                lpath("/tmp/l.sock"),
                false,
            ),
            (
                "unix_listener: cannot listen on path /tmp/l.sock: Invalid argument",
                lpath("/tmp/l.sock"),
                false,
            ),
            (
                "unix_listener: cannot bind to path /tmp/a: b: Permission denied",
                lpath("/tmp/a: b"),
                false,
            ),
            (
                "misc.c:unix_listener():1899 (pid=5): cannot bind to path /tmp/l.sock: Address already in use",
                lpath("/tmp/l.sock"),
                true,
            ),
            // mux.c
            (
                "mux_client_forward: forwarding request failed: Port forwarding failed",
                mux("Port forwarding failed"),
                false,
            ),
            (
                "mux_client_forward: forwarding request failed: remote port forwarding failed for listen port 8082",
                mux("remote port forwarding failed for listen port 8082"),
                false,
            ),
            (
                "mux.c:mux_client_forward():1827 (pid=3): forwarding request failed: Port forwarding failed",
                mux("Port forwarding failed"),
                true,
            ),
            (
                "muxclient: master forward request failed",
                mux("master forward request failed"),
                false,
            ),
            (
                "mux.c:muxclient():2317 (pid=3): master forward request failed",
                mux("master forward request failed"),
                true,
            ),
            (
                "Master refused forwarding request: Permission denied",
                mux("Permission denied"),
                false,
            ),
            // mux.c mux_confirm_remote_forward, in the master.
            (
                "mux_confirm_remote_forward: remote port forwarding failed for listen port 80",
                mux("remote port forwarding failed for listen port 80"),
                false,
            ),
            (
                "mux_confirm_remote_forward: remote port forwarding failed for listen path /s",
                mux("remote port forwarding failed for listen path /s"),
                false,
            ),
            // Lines that look close but are not failures.
            (
                "Remote: remote port forwarding failed for listen port 80",
                None,
                false,
            ),
            (
                "debug1: Local forwarding listening on ::1 port 3131.",
                None,
                false,
            ),
            (
                "debug1: Connection to port 3131 forwarding to localhost port 3131 requested.",
                None,
                false,
            ),
            ("debug3: send packet: type 80", None, false),
            ("debug1: Remote: cannot listen to port: 22", None, false),
            ("Remote: forwarding request failed: x", None, false),
            ("Func: master forward request failed", None, false),
            (
                "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.",
                None,
                false,
            ),
            (
                "xbind [127.0.0.1]:3131: Address already in use",
                None,
                false,
            ),
            ("bind [127.0.0.1]:3131 Address already in use", None, false),
            (
                "bind 192.168.1.2: Cannot assign requested address",
                None,
                false,
            ),
            ("", None, false),
            ("():", None, false),
            (
                "debug1: ssh.c:main():100 (pid=1): forwarded nothing",
                None,
                true,
            ),
            ("debug2: ssh.c:main():100 (pid=x): hello", None, false),
        ]
    }

    /// Feeds `chunks` and returns the pieces with owned bytes.
    fn run(m: &mut Matcher, chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>, Option<Failure>, bool)> {
        let mut v = Vec::new();
        let mut push = |p: Piece<'_>| match p {
            Piece::Line {
                bytes,
                failure,
                forced,
            } => v.push((true, bytes.to_vec(), failure, forced)),
            Piece::Raw(b) => {
                assert!(!b.is_empty(), "empty raw piece");
                v.push((false, b.to_vec(), None, false))
            }
        };
        for c in chunks {
            m.feed(c, &mut push);
        }
        m.finish(&mut push);
        v
    }

    /// Merges adjacent raw pieces: how raw bytes are split depends on the chunking.
    fn normal(
        v: Vec<(bool, Vec<u8>, Option<Failure>, bool)>,
    ) -> Vec<(bool, Vec<u8>, Option<Failure>, bool)> {
        let mut out: Vec<(bool, Vec<u8>, Option<Failure>, bool)> = Vec::new();
        for p in v {
            match out.last_mut() {
                Some(last) if !last.0 && !p.0 => last.1.extend_from_slice(&p.1),
                _ => out.push(p),
            }
        }
        out
    }

    fn concat(v: &[(bool, Vec<u8>, Option<Failure>, bool)]) -> Vec<u8> {
        v.iter().flat_map(|p| p.1.iter().copied()).collect()
    }

    #[test]
    fn table_lines_with_each_line_end() {
        for (text, want, forced) in table() {
            for end in ["\r\n", "\n", ""] {
                let line = format!("{text}{end}");
                let got = run(&mut Matcher::new(), &[line.as_bytes()]);
                if line.is_empty() {
                    assert!(got.is_empty());
                    continue;
                }
                assert_eq!(
                    got,
                    vec![(true, line.as_bytes().to_vec(), want.clone(), forced)],
                    "{line:?}"
                );
            }
        }
    }

    #[test]
    fn table_lines_with_debug_prefix_and_forced_tag() {
        // A LogVerbose tag can precede any message; at debug level a level word precedes it.
        for (text, want, forced) in table() {
            if forced || text.is_empty() || text.starts_with("debug") {
                continue;
            }
            for pre in [
                "channels.c:channel_setup_fwd_listener_tcpip():3820 (pid=12): ",
                "debug1: ssh.c:ssh_init_forwarding():1950 (bin=/usr/bin/ssh, pid=12): ",
            ] {
                let line = format!("{pre}{text}\r\n");
                let got = run(&mut Matcher::new(), &[line.as_bytes()]);
                assert_eq!(
                    got,
                    vec![(true, line.as_bytes().to_vec(), want.clone(), true)],
                    "{line:?}"
                );
            }
        }
    }

    #[test]
    fn truncated_tag_of_long_argv0() {
        // log.c sshlogv: tag[128], so a long bin= is cut at 127 bytes and ": " follows.
        let head = "channels.c:channel_setup_fwd_listener_tcpip():3820 (bin=/";
        let tag = format!("{head}{}", "a".repeat(TAG_MAX - head.len()));
        assert_eq!(tag.len(), TAG_MAX);
        let line = format!("{tag}: bind [127.0.0.1]:3131: Address already in use\r\n");
        let got = run(&mut Matcher::new(), &[line.as_bytes()]);
        assert_eq!(
            got,
            vec![(
                true,
                line.as_bytes().to_vec(),
                bind("127.0.0.1", 3131, "Address already in use"),
                true
            )]
        );
    }

    fn multi_line_input() -> Vec<u8> {
        let mut s = Vec::new();
        for (i, (text, _, _)) in table().iter().enumerate() {
            s.extend_from_slice(text.as_bytes());
            s.extend_from_slice(if i % 3 == 0 { b"\n" } else { b"\r\n" });
        }
        s.extend_from_slice(b"\xff\xfe binary \x00 junk\r\n");
        s.extend_from_slice(b"Error: remote port forwarding failed for listen port 9"); // no line end
        s
    }

    #[test]
    fn every_split_point_and_one_byte_chunks_agree() {
        let input = multi_line_input();
        let whole = run(&mut Matcher::new(), &[&input]);
        assert_eq!(concat(&whole), input);
        // Every table line, then the junk line and the unterminated last line.
        assert_eq!(whole.len(), table().len() + 2);
        assert_eq!(whole.last().unwrap().2, port(9, true));
        for (got, (_, want, forced)) in whole.iter().zip(table()) {
            assert_eq!(
                (&got.2, got.3),
                (&want, forced),
                "{:?}",
                String::from_utf8_lossy(&got.1)
            );
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(run(&mut Matcher::new(), &[a, b]), whole, "split at {at}");
        }
        for at in (0..input.len()).step_by(7) {
            let (a, rest) = input.split_at(at);
            let (b, c) = rest.split_at(rest.len() / 2);
            assert_eq!(run(&mut Matcher::new(), &[a, b, c]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&mut Matcher::new(), &bytes), whole);
    }

    #[test]
    fn small_capacities_relay_everything() {
        let input = multi_line_input();
        for cap in 0..=3 {
            for size in [1, 2, 5, input.len()] {
                let chunks: Vec<&[u8]> = input.chunks(size).collect();
                let got = run(&mut Matcher::with_capacity(cap), &chunks);
                assert_eq!(concat(&got), input, "cap {cap} size {size}");
                for p in &got {
                    assert!(p.2.is_none());
                    if p.0 {
                        // Only lines shorter than the cap (with their line end) are lines.
                        assert!(p.1.len() <= cap);
                    }
                }
            }
        }
        // Capacity 1: an empty line ("\n") still fits.
        let got = run(&mut Matcher::with_capacity(1), &[b"\nab\n\n"]);
        assert_eq!(
            normal(got),
            vec![
                (true, b"\n".to_vec(), None, false),
                (false, b"ab\n".to_vec(), None, false),
                (true, b"\n".to_vec(), None, false),
            ]
        );
    }

    #[test]
    fn lines_at_the_cap_boundary_agree_across_chunkings() {
        let fail = b"Could not request local forwarding.\r\n";
        let n = fail.len();
        for cap in [n - 1, n, n + 1] {
            let mut input = fail.to_vec();
            input.extend_from_slice(fail);
            input.extend_from_slice(&fail[..n - 2]);
            let whole = normal(run(&mut Matcher::with_capacity(cap), &[&input]));
            assert_eq!(concat(&whole), input);
            let matched = whole.iter().filter(|p| p.2.is_some()).count();
            // Whole lines of n bytes match iff n <= cap; the final n-2 bytes iff n-2 < cap.
            let want = if n <= cap {
                3
            } else if n - 2 < cap {
                1
            } else {
                0
            };
            assert_eq!(matched, want, "cap {cap}");
            for at in 0..=input.len() {
                let (a, b) = input.split_at(at);
                let got = normal(run(&mut Matcher::with_capacity(cap), &[a, b]));
                assert_eq!(got, whole, "cap {cap} split {at}");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(normal(run(&mut Matcher::with_capacity(cap), &bytes)), whole);
        }
    }

    /// log.c sshlogv's tag[128]: a long `bin=` cuts the tag at 127 bytes and
    /// ": " follows right there; the same shape without `bin=`/`pid=` is no tag.
    #[test]
    fn a_tag_cut_at_127_bytes() {
        let cut = format!(
            "channels.c:channel_setup_fwd_listener_tcpip():3820 (bin=/{}: bind [127.0.0.1]:3131: Address already in use\n",
            "a".repeat(70)
        );
        let not_a_tag = cut.replace("(bin=/", "(xxxxx");
        assert_eq!(&cut[TAG_MAX..TAG_MAX + 2], ": ");
        let got = run(&mut Matcher::new(), &[cut.as_bytes()]);
        assert_eq!(
            (&got[0].2, got[0].3),
            (&bind("127.0.0.1", 3131, "Address already in use"), true)
        );
        let got = run(&mut Matcher::new(), &[not_a_tag.as_bytes()]);
        assert_eq!((&got[0].2, got[0].3), (&None, false));
    }

    /// The default cap holds a line of 60 000 bytes across chunks: it is
    /// still read as a line.
    #[test]
    fn default_cap_reads_a_long_line_across_chunks() {
        let line = format!(
            "bind [{}]:3131: Address already in use\n",
            "a".repeat(60_000)
        );
        let chunks: Vec<&[u8]> = line.as_bytes().chunks(1000).collect();
        let got = run(&mut Matcher::new(), &chunks);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].2,
            bind(&"a".repeat(60_000), 3131, "Address already in use")
        );
    }

    /// The held start of a line grows within the cap, whatever the parts.
    #[test]
    fn held_allocation_never_passes_the_cap() {
        let cap = 1000;
        let mut m = Matcher::with_capacity(cap);
        for part in [600, 300, 99] {
            m.feed(&vec![b'x'; part], &mut |_| {});
            assert!(
                m.held.capacity() <= cap,
                "{} after {part}",
                m.held.capacity()
            );
        }
        assert_eq!(m.held.len(), 999);
    }

    #[test]
    fn hundred_megabyte_line_stays_within_cap() {
        let cap = 64 * 1024;
        let mut m = Matcher::with_capacity(cap);
        let chunk = vec![b'x'; 1 << 20];
        let mut raw = 0usize;
        let mut lines = Vec::new();
        let mut out = |p: Piece<'_>| match p {
            Piece::Raw(b) => raw += b.len(),
            Piece::Line { bytes, failure, .. } => lines.push((bytes.to_vec(), failure)),
        };
        // The first bytes look like a failure: an over-long line must still not match.
        m.feed(b"Could not request local forwarding.", &mut out);
        for _ in 0..100 {
            m.feed(&chunk, &mut out);
            assert!(m.held.capacity() <= cap);
        }
        m.feed(b"tail\r\nCould not request local forwarding.\r\n", &mut out);
        m.finish(&mut out);
        assert_eq!(raw, 35 + 100 * (1 << 20) + 6);
        assert_eq!(
            lines,
            vec![(
                b"Could not request local forwarding.\r\n".to_vec(),
                Some(Failure::LocalNoneSucceeded)
            )]
        );
        assert!(m.held.capacity() <= cap);
        // Small chunks too: the held line grows only to the cap.
        let mut m = Matcher::with_capacity(cap);
        let mut raw = 0usize;
        for _ in 0..(4 * cap / 1000) {
            m.feed(&chunk[..1000], &mut |p| {
                if let Piece::Raw(b) = p {
                    raw += b.len()
                }
            });
            assert!(m.held.capacity() <= cap && m.held.len() < cap);
        }
        assert_eq!(raw + m.held.len(), 4 * cap / 1000 * 1000);
    }

    #[test]
    fn matcher_is_reusable_after_finish() {
        let mut m = Matcher::with_capacity(8);
        let first = run(&mut m, &[b"0123456789"]);
        assert_eq!(first, vec![(false, b"0123456789".to_vec(), None, false)]);
        let second = run(&mut m, &[b"abc\n"]);
        assert_eq!(second, vec![(true, b"abc\n".to_vec(), None, false)]);
    }

    /// ssh's own `-E` output, captured from OpenSSH 9.2p1 (Debian 12) on loopback with
    /// 127.0.0.1:22977 taken (by sshd itself): `-v -L/-R 22977:...`, the forced form of
    /// `-q -o LogVerbose=ssh.c:ssh_confirm_remote_forward():*,channels.c:...`, a Unix socket
    /// path that exists, ExitOnForwardFailure, and a ControlMaster client.
    const TRANSCRIPT: &[u8] = b"OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026\r\n\
debug1: Local connections to LOCALHOST:22977 forwarded to remote address localhost:22\r\n\
debug1: Local forwarding listening on ::1 port 22977.\r\n\
debug1: channel 0: new port-listener [port listener] (inactive timeout: 0)\r\n\
debug1: Local forwarding listening on 127.0.0.1 port 22977.\r\n\
bind [127.0.0.1]:22977: Address already in use\r\n\
debug1: Remote connections from LOCALHOST:22977 forwarded to local address localhost:22\r\n\
debug1: Remote: /tmp/matcher-lab/authorized_keys:1: key options: agent-forwarding port-forwarding pty user-rc x11-forwarding\r\n\
debug1: remote forward failure for: listen 22977, connect localhost:22\r\n\
Warning: remote port forwarding failed for listen port 22977\r\n\
debug1: channel 0: free: port listener, nchannels 1\r\n\
Transferred: sent 3568, received 3340 bytes, in 0.7 seconds\r\n\
debug3: channels.c:channel_setup_fwd_listener_tcpip():3744 (pid=28392): type 2 wildcard 0 addr 127.0.0.1\r\n\
debug1: channels.c:channel_setup_fwd_listener_tcpip():3810 (pid=28392): Local forwarding listening on 127.0.0.1 port 22977.\r\n\
channels.c:channel_setup_fwd_listener_tcpip():3820 (pid=28392): bind [127.0.0.1]:22977: Address already in use\r\n\
channels.c:channel_setup_fwd_listener_tcpip():3865 (pid=28392): cannot listen to port: 22977\r\n\
debug1: ssh.c:ssh_confirm_remote_forward():1827 (pid=28392): remote forward failure for: listen 127.0.0.1:22977, connect localhost:22\r\n\
ssh.c:ssh_confirm_remote_forward():1874 (pid=28392): Warning: remote port forwarding failed for listen port 22977\r\n\
Warning: Permanently added '[127.0.0.1]:22977' (ED25519) to the list of known hosts.\r\n\
channel_setup_fwd_listener_tcpip: cannot listen to port: 22977\r\n\
Could not request local forwarding.\r\n\
Error: remote port forwarding failed for listen port 22977\r\n\
unix_listener: cannot bind to path /tmp/matcher-lab/taken.sock: Address already in use\r\n\
mux_client_forward: forwarding request failed: remote port forwarding failed for listen port 22977\r\n\
muxclient: master forward request failed\r\n\
debug1: mux.c:mux_client_forward():1762 (pid=31110): Requesting forwarding of local forward 127.0.0.1:22977 -> localhost:22\r\n\
mux.c:mux_client_forward():1837 (pid=31110): forwarding request failed: Port forwarding failed\r\n\
mux.c:muxclient():2331 (pid=31110): master forward request failed\r\n";

    #[test]
    fn real_ssh_transcript() {
        let want: Vec<(Option<Failure>, bool)> = vec![
            (bind("127.0.0.1", 22977, "Address already in use"), false),
            (refused(None, 22977), false),
            (port(22977, false), false),
            (None, true),
            (None, true),
            (bind("127.0.0.1", 22977, "Address already in use"), true),
            (Some(Failure::LocalCannotListen { port: 22977 }), true),
            (refused(Some("127.0.0.1"), 22977), true),
            (port(22977, false), true),
            (Some(Failure::LocalCannotListen { port: 22977 }), false),
            (Some(Failure::LocalNoneSucceeded), false),
            (port(22977, true), false),
            (lpath("/tmp/matcher-lab/taken.sock"), false),
            (
                mux("remote port forwarding failed for listen port 22977"),
                false,
            ),
            (mux("master forward request failed"), false),
            (None, true),
            (mux("Port forwarding failed"), true),
            (mux("master forward request failed"), true),
        ];
        for size in [1, 2, 3, 7, 64, 4096] {
            let chunks: Vec<&[u8]> = TRANSCRIPT.chunks(size).collect();
            let got = run(&mut Matcher::new(), &chunks);
            assert_eq!(concat(&got), TRANSCRIPT);
            assert_eq!(
                got.len(),
                TRANSCRIPT.iter().filter(|&&b| b == b'\n').count()
            );
            let interesting: Vec<_> = got
                .into_iter()
                .filter(|p| p.2.is_some() || p.3)
                .map(|p| (p.2, p.3))
                .collect();
            assert_eq!(interesting, want, "chunks of {size}");
        }
    }

    #[test]
    fn tag_len_table() {
        for (text, want) in [
            ("ssh.c:main():1 (pid=2): x", true),
            ("ssh.c:main():-1 (pid=2): x", true),
            ("ssh.c:main():1 (bin=ssh, pid=2): x", true),
            ("ssh.c:main():1 (bin=/a b, c, pid=2): x", true),
            ("ssh.c:main():1 (pid=2):x", false),
            ("ssh.c:main():1 (pid=): x", false),
            ("ssh.c:main():x (pid=2): x", false),
            ("ssh.c:main(): (pid=2): x", false),
            ("ssh.c:main:1 (pid=2): x", false),
            (":main():1 (pid=2): x", false),
            ("ssh.c:():1 (pid=2): x", false),
            ("ssh c:main():1 (pid=2): x", false),
            ("ssh.c:main():1 (bin=ssh): x", false),
            (
                "channel_setup_fwd_listener_tcpip: cannot listen to port: 1",
                false,
            ),
            ("Warning: remote port forwarding failed", false),
            ("", false),
        ] {
            // The tag with its ": " is everything but the final "x".
            let want = want.then(|| text.len() - 1);
            assert_eq!(tag_len(text.as_bytes()), want, "{text:?}");
        }
        // Names are cut to 48 bytes by ssh, so a longer one is not a tag.
        let long = format!("{}:f():1 (pid=2): x", "a".repeat(TAG_NAME_MAX + 1));
        assert_eq!(tag_len(long.as_bytes()), None);
        let just = format!("{}:f():1 (pid=2): x", "a".repeat(TAG_NAME_MAX));
        assert_eq!(tag_len(just.as_bytes()), Some(just.len() - 1));
    }

    /// The hand readers of the two commonest lines accept exactly what
    /// their rules' regexes accept, with the same captures.
    #[test]
    fn hand_readers_agree_with_their_regexes() {
        let bodies = [
            "bind [127.0.0.1]:3131: Address already in use",
            "bind [::1]:3131: Cannot assign requested address",
            "bind []:1: x",
            "bind [a]b]:1: x",
            "bind [a]:: x",
            "bind [a]:1:x",
            "bind [a]:99999: x",
            "bind [a]:12a: x",
            "bind [a:1: x",
            "bind [a]:1: ",
            "Warning: remote port forwarding failed for listen port 8082",
            "Error: remote port forwarding failed for listen port 0",
            "Error: remote port forwarding failed for listen port 65536",
            "Error: remote port forwarding failed for listen port 80x",
            "Error: remote port forwarding failed for listen port ",
            "Warning: remote port forwarding failed for listen path /tmp/a b",
            "Warning: remote port forwarding failed for listen path ",
            "Warning: remote port forwarding failed for listen socket x",
            "Notice: remote port forwarding failed for listen port 1",
        ];
        for (i, rule) in RULES.iter().enumerate() {
            let hand: fn(&[u8]) -> Option<Failure> = match rule.rule {
                Rule::Remote => remote_failed,
                Rule::LocalBind => local_bind,
                _ => continue,
            };
            for b in bodies {
                assert_eq!(hand(b.as_bytes()), by_regex(i, b.as_bytes()), "{b:?}");
            }
        }
    }

    #[test]
    fn fast_path_admits_every_rule() {
        // The fast path must never hide a message that a rule would match.
        for RuleRe { starts, .. } in RULES.iter() {
            for w in starts.iter() {
                assert!(may_start_failure(w.as_bytes()), "{w:?}");
            }
        }
        for (text, want) in [
            ("func: x", true),
            ("ssh.c:main():1 (pid=2): x", true),
            ("channel 0: x", false),
            ("receive packet: type 94", false),
            ("(x): y", false),
            ("word", false),
            ("abcdefg:", true),
            ("abcdefgh:", true),
            ("abcdefgh ijklmnop:", false),
            ("abcdefghijklmnopq(", false),
            // '(' and ')' stop the first word within an eight-byte block too.
            ("abc(def): x", false),
            ("abcdefg)x: y", false),
            ("abcdefghijklmnopq:", true),
            ("a:b c", true),
            ("a)b:", false),
            ("\x00\x01 :", false),
            ("\u{ff}\u{fe}\u{80}:", true),
            ("", false),
        ] {
            assert_eq!(first_word_ends_in_colon(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn strip_level_table() {
        for (text, want) in [
            ("debug1: x", "x"),
            ("debug3: x", "x"),
            ("debug4: x", "debug4: x"),
            ("debug1:x", "debug1:x"),
            ("error: x", "x"),
            ("fatal: x", "x"),
            ("Error: x", "Error: x"),
            ("debug1: ", ""),
            ("debug", "debug"),
        ] {
            assert_eq!(strip_level(text.as_bytes()), want.as_bytes(), "{text:?}");
        }
    }

    #[test]
    fn parse_port_table() {
        for (s, want) in [
            ("0", Some(0)),
            ("22", Some(22)),
            ("65535", Some(65535)),
            ("65536", None),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1a", None),
            ("000022", None),
        ] {
            assert_eq!(parse_port(s.as_bytes()), want, "{s:?}");
        }
    }
}
