//! What ssh's standard error says about how the attempt ended, read on the
//! way through (every byte is passed on, but lines rosh itself forced out).
//!
//! `~.` makes ssh leave its session loop with no exit status: ssh exits 255,
//! as for a lost link. What tells them apart is how the loop ended
//! (clientloop.c client_loop): only a loop ended at this end prints
//! `Connection to HOST closed.` (quit_message, at LogLevel INFO and above)
//! and frees its session channel (`channel N: free: client-session`, which
//! rosh forces out with LogVerbose where the user's LogLevel hides INFO);
//! a loop ended because the server closed the connection says so first
//! (`Connection to HOST closed by remote host.`, `Read from remote host`,
//! printed at any LogLevel), and a link found dead by ServerAlive, or
//! broken, ends ssh without leaving the loop at all (cleanup_exit).
//!
//! A server that closes the connection before its greeting (sshd does for a
//! source under PerSourcePenalties, and over MaxStartups) shows as
//! `kex_exchange_identification: Connection closed by remote host` (before
//! 9.5), or the fatal `Connection closed by HOST port N` / `Connection
//! reset by ...` that ends a connection which never logged in.

/// Lines are matched on their first bytes only, and held at most this long.
const KEEP: usize = 512;

/// The scanner; `feed` the bytes as they come, `finish` at the end.
#[derive(Debug, Default)]
pub struct Watch {
    /// Drop lines with a LogVerbose tag: the user forces none, rosh did.
    hide_tagged: bool,
    /// The current line's first bytes.
    line: Vec<u8>,
    /// The current line's length so far.
    len: usize,
    /// Bytes of the current line not passed on yet.
    held: Vec<u8>,
    /// The current line is held because it may be a tagged line.
    hold_tag: bool,
    /// The current line began while the terminal was in raw mode: it goes
    /// out whole, on a line of its own.
    hold_raw: bool,
    normal_end: bool,
    remote_closed: bool,
    dropped: bool,
}

impl Watch {
    pub fn new(hide_tagged: bool) -> Watch {
        Watch {
            hide_tagged,
            ..Watch::default()
        }
    }

    /// ssh's session loop ended at this end with the connection alive: `~.`
    /// (with exit status 255; see outcome.rs).
    pub fn quit(&self) -> bool {
        self.normal_end && !self.remote_closed
    }

    /// The server closed the connection without a login.
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// Takes `chunk`, appends what is to be passed on to `out`. `raw`: the
    /// terminal is in raw mode now (ICANON off), as ssh leaves it during a
    /// session. ssh ends its lines there in `\r\n`; rosh-ssh's own lines
    /// (a forward restored mid-session) would do the same on a terminal,
    /// but see a pipe: a line of theirs that began in raw mode goes out on a
    /// line of its own and ends in `\r\n` (what rosh-ssh writes when its
    /// standard error is that terminal, supervise/log.rs).
    pub fn feed(&mut self, chunk: &[u8], raw: bool, out: &mut Vec<u8>) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.len == 0 {
                self.hold_tag = self.hide_tagged;
                self.hold_raw = raw;
            }
            let (part, newline) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[part.len()..];
            let room = KEEP.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            self.len += part.len();
            if !self.hold_tag && !self.hold_raw {
                out.extend_from_slice(part);
            } else {
                self.held.extend_from_slice(part);
                if self.hold_tag && !newline && tag_state(&self.line) == Some(false) {
                    self.hold_tag = false;
                }
                if self.len > KEEP && !newline {
                    // Too long to be either: it goes as it is.
                    self.hold_tag = false;
                    self.hold_raw = false;
                }
                if newline {
                    self.release(out);
                } else if !self.hold_tag && !self.hold_raw {
                    out.append(&mut self.held);
                }
            }
            if newline {
                self.end_line();
            }
        }
    }

    /// The whole held line goes out (or not, if rosh forced it out of ssh).
    fn release(&mut self, out: &mut Vec<u8>) {
        if self.hold_tag && is_tagged(&self.line) {
            self.held.clear();
            return;
        }
        if self.hold_raw && !self.held.ends_with(b"\r\n") {
            let text = self.held.strip_suffix(b"\n").unwrap_or(&self.held);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
            self.held.clear();
            return;
        }
        out.append(&mut self.held);
    }

    /// The end of the stream: what is held goes out.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        if !self.line.is_empty() {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.note(&line);
        self.len = 0;
        self.held.clear();
    }

    fn note(&mut self, line: &[u8]) {
        let mut l = line.strip_suffix(b"\n").unwrap_or(line);
        l = l.strip_suffix(b"\r").unwrap_or(l);
        if is_tagged(line) {
            if find(l, b": channel ") && find(l, b": free: client-session,") {
                self.normal_end = true;
            }
            return;
        }
        if l.starts_with(b"Connection to ") {
            if l.ends_with(b" closed by remote host.") {
                self.remote_closed = true;
            } else if l.ends_with(b" closed.") {
                self.normal_end = true;
            }
        }
        if l.starts_with(b"Read from remote host ")
            || l.starts_with(b"poll: ")
            || l.starts_with(b"select: ")
        {
            self.remote_closed = true;
        }
        if find(
            l,
            b"_exchange_identification: Connection closed by remote host",
        ) || find(
            l,
            b"_exchange_identification: read: Connection reset by peer",
        ) || l.starts_with(b"Connection closed by ")
            || l.starts_with(b"Connection reset by ")
            || find(l, b"Not allowed at this time")
        {
            self.dropped = true;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Whether a whole line carries a LogVerbose tag (log.c sshlogv:
/// `file.c:function():LINE (pid=N): `; newer releases `(bin=..., pid=N)`),
/// after the `debugN: ` of a debug line.
fn is_tagged(line: &[u8]) -> bool {
    tag_state(line) == Some(true)
}

/// For the first bytes of a line: `Some(true)` once a tag is complete,
/// `Some(false)` once none can follow, `None` while undecided.
fn tag_state(line: &[u8]) -> Option<bool> {
    let mut s = line;
    // "debugN: "
    const DEBUG: &[u8] = b"debug";
    let n = s.len().min(DEBUG.len());
    if s[..n] == DEBUG[..n] {
        if s.len() < DEBUG.len() + 3 {
            let tail = &s[n..];
            let ok = match tail.len() {
                0 => true,
                1 => tail[0].is_ascii_digit(),
                _ => tail[0].is_ascii_digit() && tail[1] == b':',
            };
            return if ok { None } else { Some(false) };
        }
        if !(s[5].is_ascii_digit() && &s[6..8] == b": ") {
            return Some(false);
        }
        s = &s[8..];
    }
    // file: [A-Za-z0-9_.+-]+ ending in ".c", then ':'
    let file = |c: &u8| c.is_ascii_alphanumeric() || b"_.+-".contains(c);
    let f = s.iter().take_while(|c| file(c)).count();
    if f == s.len() {
        return None;
    }
    if f < 3 || &s[f - 2..f] != b".c" || s[f] != b':' {
        return Some(false);
    }
    s = &s[f + 1..];
    // function(): [A-Za-z0-9_]+ "():"
    let g = s
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if g == s.len() {
        return None;
    }
    if g == 0 {
        return Some(false);
    }
    s = &s[g..];
    let n = s.len().min(3);
    if s[..n] != b"():"[..n] {
        return Some(false);
    }
    if s.len() < 3 {
        return None;
    }
    s = &s[3..];
    // LINE " ("
    let d = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if d == s.len() {
        return None;
    }
    if d == 0 {
        return Some(false);
    }
    s = &s[d..];
    let n = s.len().min(2);
    if s[..n] != b" ("[..n] {
        return Some(false);
    }
    if s.len() < 2 { None } else { Some(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: &[u8] =
        b"debug1: channels.c:channel_free():721 (pid=27825): channel 0: free: client-session, nchannels 1\r\n";
    const FREE_10: &[u8] =
        b"debug1: channels.c:channel_free():760 (bin=ssh, pid=8): channel 0: free: client-session, nchannels 1\r\n";

    /// Feeds `input` split at every point (and a byte at a time); all must
    /// agree on what is passed on and what is known.
    fn scan(hide: bool, input: &[u8]) -> (Vec<u8>, bool, bool) {
        scan_in(hide, false, input)
    }

    fn scan_in(hide: bool, raw: bool, input: &[u8]) -> (Vec<u8>, bool, bool) {
        let mut results = Vec::new();
        let splits: Vec<Vec<usize>> = (0..=input.len())
            .map(|i| vec![i])
            .chain(std::iter::once((1..input.len()).collect()))
            .collect();
        for cuts in splits {
            let mut w = Watch::new(hide);
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain(std::iter::once(input.len())) {
                w.feed(&input[at..c], raw, &mut out);
                at = c;
            }
            w.finish(&mut out);
            results.push((out, w.quit(), w.dropped()));
        }
        for r in &results[1..] {
            assert_eq!(r, &results[0], "{:?}", String::from_utf8_lossy(input));
        }
        results.swap_remove(0)
    }

    #[test]
    fn tilde_dot_at_info_and_below() {
        let (out, quit, _) = scan(false, b"Connection to grav closed.\r\n");
        assert!(quit);
        assert_eq!(out, b"Connection to grav closed.\r\n");
        // Forced out by rosh at ERROR: recognised and not shown.
        let (out, quit, _) = scan(true, FREE);
        assert!(quit);
        assert!(out.is_empty());
        let (out, quit, _) = scan(true, FREE_10);
        assert!(quit && out.is_empty());
        // With ssh's own lines around it, those pass untouched.
        let mut input = b"ssh: warning one\r\n".to_vec();
        input.extend_from_slice(FREE);
        input.extend_from_slice(b"debug1: not a tag here\r\npartial");
        let (out, quit, _) = scan(true, &input);
        assert!(quit);
        assert_eq!(
            out,
            b"ssh: warning one\r\ndebug1: not a tag here\r\npartial"
        );
    }

    #[test]
    fn the_server_closing_is_not_tilde_dot() {
        let mut input = FREE.to_vec();
        input.extend_from_slice(b"Connection to 127.0.0.1 closed by remote host.\r\nConnection to 127.0.0.1 closed.\r\n");
        let (out, quit, _) = scan(true, &input);
        assert!(!quit);
        assert_eq!(
            out,
            b"Connection to 127.0.0.1 closed by remote host.\r\nConnection to 127.0.0.1 closed.\r\n"
        );
        for line in [
            &b"Read from remote host grav: Connection reset by peer\r\nConnection to grav closed.\r\n"[..],
            b"poll: Interrupted system call\r\nConnection to grav closed.\r\n",
        ] {
            assert!(!scan(false, line).1, "{:?}", String::from_utf8_lossy(line));
        }
        // A link found dead: ssh ends without leaving its loop.
        assert!(!scan(false, b"Timeout, server grav not responding.\r\n").1);
        assert!(!scan(true, b"").1);
    }

    #[test]
    fn closed_before_the_greeting() {
        for line in [
            &b"kex_exchange_identification: Connection closed by remote host\r\nConnection closed by 10.0.0.2 port 22\r\n"[..],
            b"kex_exchange_identification: read: Connection reset by peer\r\nConnection reset by 10.0.0.2 port 22\r\n",
            b"ssh_exchange_identification: Connection closed by remote host\r\n",
            b"Connection closed by 10.0.0.2 port 22\r\n",
            b"debug1: kex_exchange_identification: banner line 0: Not allowed at this time\r\n",
        ] {
            let (out, quit, dropped) = scan(false, line);
            assert!(dropped && !quit, "{:?}", String::from_utf8_lossy(line));
            assert_eq!(out, line);
        }
        assert!(!scan(false, b"Permission denied (publickey).\r\n").2);
        assert!(!scan(false, b"Connection to grav closed by remote host.\r\n").2);
    }

    #[test]
    fn nothing_is_held_or_changed_unless_rosh_forced_it() {
        let input: &[u8] = b"debug1: x.c:f():1 (pid=1): looks tagged\r\nrosh-ssh: LocalForward 1 (x:1): in use; forward dropped\nno newline";
        let (out, _, _) = scan(false, input);
        assert_eq!(out, input);
        let (out, _, _) = scan(true, input);
        assert_eq!(out, &input[41..]);
    }

    #[test]
    fn in_raw_mode_a_bare_line_goes_out_on_a_line_of_its_own() {
        let input: &[u8] = b"rosh-ssh: LocalForward 3131 (x:1): restored\nssh: its own\r\n";
        let (out, _, _) = scan_in(false, true, input);
        assert_eq!(
            out,
            b"\r\nrosh-ssh: LocalForward 3131 (x:1): restored\r\nssh: its own\r\n"
        );
        // Cooked: untouched.
        assert_eq!(scan_in(false, false, input).0, input);
        // With forced lines hidden too.
        let mut both = FREE.to_vec();
        both.extend_from_slice(input);
        assert_eq!(scan_in(true, true, &both).0, out);
        // A partial line in raw mode goes out at the end, as it is.
        assert_eq!(scan_in(false, true, b"half").0, b"half");
        // The mode is taken when a line begins.
        let mut w = Watch::new(false);
        let mut o = Vec::new();
        w.feed(b"abc", false, &mut o);
        w.feed(b"def\n", true, &mut o);
        assert_eq!(o, b"abcdef\n");
    }

    #[test]
    fn tag_prefixes() {
        let table: &[(&[u8], Option<bool>)] = &[
            (b"", None),
            (b"d", None),
            (b"debug", None),
            (b"debug1", None),
            (b"debug1:", None),
            (b"debug1: ", None),
            (b"debugx", Some(false)),
            (b"debug1x", Some(false)),
            (b"channels", None),
            (b"channels.c", None),
            (b"channels.c:", None),
            (b"channels.c:channel_free", None),
            (b"channels.c:channel_free(", None),
            (b"channels.c:channel_free():", None),
            (b"channels.c:channel_free():12", None),
            (b"channels.c:channel_free():12 ", None),
            (b"channels.c:channel_free():12 (", Some(true)),
            (b"ssh: x", Some(false)),
            (b"Connection to x", Some(false)),
            (b"channels.h:", Some(false)),
            (b"a.c:f()x", Some(false)),
            (b"a.c:f():x", Some(false)),
            (b"a.c:f():1(", Some(false)),
            (b"a.c:", None),
            (b"a.c::", Some(false)),
            (b"rosh-ssh:", Some(false)),
        ];
        for (line, want) in table {
            assert_eq!(
                tag_state(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn long_lines_are_not_held_forever() {
        let mut line = b"a".repeat(2000);
        line.extend_from_slice(b"\n");
        let (out, _, _) = scan(true, &line);
        assert_eq!(out, line);
        let mut w = Watch::new(true);
        let mut out = Vec::new();
        w.feed(&b"x".repeat(KEEP + 1), false, &mut out);
        assert_eq!(out.len(), KEEP + 1, "a long undecided line goes out");
    }
}
