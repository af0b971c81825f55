//! ssh's own log lines, read from the `-E` FIFO when the supervisor's loop
//! finds it readable: relayed unchanged to where they would have gone and
//! scanned by the matcher, without touching the session's stdin, stdout or
//! stderr.
//!
//! A failure line that names a kept forward is replaced, as it happens, by
//! one `rosh-ssh:` line for that forward (ssh goes on: rosh-ssh runs it
//! with ExitOnForwardFailure=no): the reader hands the forward to its
//! caller, in order with the lines it relays. Lines rosh-ssh forced out with
//! LogVerbose are held back from a user whose LogLevel would hide them, and
//! so is what the master logs about a forward rosh-ssh is still restoring.

use crate::blame::{self, Refusal};
use crate::forward::{Forward, Kind};
use crate::matcher::{Call, Failure, Matcher, Piece};
use crate::probe::{self, Opts};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where ssh would have written its log lines.
pub enum Dest {
    Stderr,
    /// The user's own `-E` file, opened as ssh opens it (append, 0600).
    File(File),
}

impl Dest {
    /// Opens the user's `-E` file like log.c log_redirect_stderr_to. A
    /// FIFO is opened without waiting for a reader (ssh's own open would
    /// wait; rosh-ssh must not hang before ssh has started).
    pub fn file(path: &Path) -> std::io::Result<Dest> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        // Writes wait as ssh's would: nothing it logs is lost.
        let flags = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_retain(flags) - OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(Dest::File(f))
    }

    fn write(&mut self, b: &[u8]) {
        // A closed stderr must not end the session: ssh ignores it too.
        let _ = match self {
            Dest::Stderr => std::io::stderr().write_all(b),
            Dest::File(f) => f.write_all(b),
        };
    }
}

/// What to watch for: the forwards of the plan, by index.
pub struct Watch {
    /// Every forward of the plan, dropped ones too: a restore that loses
    /// a race makes the master log a failure naming it.
    pub forwards: Vec<Forward>,
    /// The ones already reported (dropped before ssh started).
    pub reported: Vec<usize>,
    pub probe: Opts,
    /// Drop lines with a LogVerbose tag: rosh-ssh forced them out.
    pub hide_forced: bool,
}

/// A forward that a line of ssh's log says failed: its plan index and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub index: usize,
    pub forward: Forward,
    pub refusal: Refusal,
}

/// How long after a `bind [ADDR]:PORT: ...` line the reader waits for
/// channels.c's `cannot listen to port` (written in the same call when no
/// address bound at all) before it takes the forward as partly bound.
const SETTLE: Duration = Duration::from_millis(250);

/// A local forward whose bind failed on some address, not yet judged.
struct Binding {
    index: usize,
    /// Each address ssh named, the call that failed there, and why.
    failed: Vec<(Call, Vec<u8>, Vec<u8>)>,
    since: Instant,
}

/// The FIFO and what has been read from it.
pub struct LogReader {
    /// `None` once every writer has closed it.
    fifo: Option<File>,
    matcher: Matcher,
    buf: Vec<u8>,
    judge: Judge,
}

/// What the matcher's pieces are relayed to and judged against.
struct Judge {
    dest: Dest,
    /// Lines ready to go, written once per read from the FIFO rather than
    /// one write(2) per line.
    out: Vec<u8>,
    watch: Watch,
    /// Plan indexes reported so far (the dropped ones included).
    failed: Vec<usize>,
    /// Local forwards whose bind failed somewhere, until judged.
    binding: Vec<Binding>,
    /// Which forward a port-only line means (two remote forwards may
    /// share a port).
    attribution: blame::Attribution,
    /// The server's answers to remote forwards seen (`-f`).
    answers: usize,
    /// A `listen: REASON` line (before 8.9), held until the next line
    /// tells whether it goes with a forward's `listen [ADDR]:PORT` line
    /// (ssh writes that one right after it), and since when: relayed after
    /// [`SETTLE`] if no line came.
    unnamed: Option<(Vec<u8>, Instant)>,
}

/// Reads per readiness, so that a log that never pauses (ssh -vvv) still
/// lets the loop see signals and ssh's end.
const READS_PER_TURN: usize = 16;

impl LogReader {
    /// Opens the FIFO before ssh does, so that ssh's open finds a reader.
    pub fn open(fifo: &Path, dest: Dest, watch: Watch) -> std::io::Result<LogReader> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = open(fifo, flags, Mode::empty())?;
        Ok(LogReader {
            fifo: Some(File::from(fd)),
            matcher: Matcher::new(),
            buf: vec![0u8; 64 * 1024],
            judge: Judge {
                dest,
                out: Vec::new(),
                failed: watch.reported.clone(),
                binding: Vec::new(),
                attribution: blame::Attribution::default(),
                watch,
                answers: 0,
                unnamed: None,
            },
        })
    }

    /// The descriptor to poll; `None` once every writer has gone.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fifo.as_ref().map(|f| f.as_fd())
    }

    /// The server's answers to remote forwards seen so far.
    pub fn answers(&self) -> usize {
        self.judge.answers
    }

    /// Reads what the FIFO holds now (it never blocks) and relays it; `on`
    /// hears of each forward a failure line names, after the lines before
    /// it have been written. Returns whether bytes may still come.
    pub fn on_readable(&mut self, on: &mut dyn FnMut(Failed)) -> bool {
        for _ in 0..READS_PER_TURN {
            let Some(fifo) = self.fifo.as_mut() else {
                return false;
            };
            match fifo.read(&mut self.buf) {
                Ok(0) => {
                    // Every writer is gone.
                    self.fifo = None;
                    return false;
                }
                Ok(n) => {
                    let judge = &mut self.judge;
                    self.matcher
                        .feed(&self.buf[..n], &mut |p| judge.piece(p, &mut *on));
                    self.judge.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EAGAIN: drained for now.
                Err(_) => return true,
            }
        }
        true
    }

    /// The end: relays a last line without its line end, and returns the
    /// plan indexes of the forwards the log showed failing.
    pub fn close(mut self, on: &mut dyn FnMut(Failed)) -> Vec<usize> {
        let judge = &mut self.judge;
        self.matcher.finish(&mut |p| judge.piece(p, &mut *on));
        self.judge.flush();
        self.on_time(Instant::now() + SETTLE, on);
        self.judge.failed
    }

    /// When [`LogReader::on_time`] has a forward to judge, or a held line
    /// to relay.
    pub fn deadline(&self) -> Option<Instant> {
        let held = self.judge.unnamed.as_ref().map(|(_, since)| *since);
        let binding = self.judge.binding.iter().map(|b| b.since);
        binding.chain(held).min().map(|t| t + SETTLE)
    }

    /// Judges the forwards whose bind failed on some address a while ago
    /// and that ssh did not give up on: listening on the others.
    pub fn on_time(&mut self, now: Instant, on: &mut dyn FnMut(Failed)) {
        self.judge.on_time(now, on)
    }
}

impl Judge {
    fn on_time(&mut self, now: Instant, on: &mut dyn FnMut(Failed)) {
        if let Some((held, since)) = self.unnamed.take() {
            if since + SETTLE > now {
                self.unnamed = Some((held, since));
            } else {
                self.out.extend_from_slice(&held);
                self.flush();
            }
        }
        let mut i = 0;
        while i < self.binding.len() {
            if self.binding[i].since + SETTLE > now {
                i += 1;
                continue;
            }
            let b = self.binding.remove(i);
            let Some(fwd) = self.watch.forwards.get(b.index).cloned() else {
                continue;
            };
            let parsed: Vec<(SocketAddr, String)> = b
                .failed
                .iter()
                .filter_map(|(_, addr, why)| {
                    let ip: IpAddr = std::str::from_utf8(addr).ok()?.parse().ok()?;
                    Some((
                        SocketAddr::new(ip, listen_port(&fwd)?),
                        String::from_utf8_lossy(why).into_owned(),
                    ))
                })
                .collect();
            let bound: Vec<SocketAddr> = match fwd.local_tcp_listen() {
                Some((host, port)) => probe::addresses(host, port, &self.watch.probe)
                    .into_iter()
                    .filter(|a| !parsed.iter().any(|(f, _)| f.ip() == a.ip()))
                    .collect(),
                None => Vec::new(),
            };
            self.failed.push(b.index);
            let refusal = if bound.is_empty() || parsed.is_empty() {
                Refusal::Unbound {
                    port: listen_port(&fwd).unwrap_or(0),
                    failed: b.failed,
                }
            } else {
                Refusal::Partial {
                    bound,
                    failed: parsed,
                }
            };
            self.flush();
            on(Failed {
                index: b.index,
                forward: fwd,
                refusal,
            });
        }
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.dest.write(&self.out);
            self.out.clear();
        }
    }
}

fn listen_port(f: &Forward) -> Option<u16> {
    f.local_tcp_listen().map(|(_, port)| port)
}

impl Judge {
    /// Relays one piece, and calls `on` for each failure it names after
    /// writing the lines before it.
    fn piece(&mut self, p: Piece<'_>, on: &mut dyn FnMut(Failed)) {
        let (bytes, failure, forced) = match p {
            Piece::Line {
                bytes,
                failure,
                forced,
            } => (bytes, failure, forced),
            Piece::Raw(b) => (b, None, false),
        };
        if blame::is_remote_answer(bytes) {
            self.answers += 1;
        }
        let unnamed = matches!(failure, Some(Failure::ListenUnnamed { .. }));
        let local = matches!(failure, Some(Failure::LocalBind { .. }));
        let hits = failure.map(|f| self.blame(&f));
        // 8.0's `listen: REASON` goes with the `listen [ADDR]:PORT` line
        // written right after it: hidden with it when that names a forward.
        if let Some((held, _)) = self.unnamed.take()
            && !(local && hits.as_ref().is_some_and(|h| h.named))
        {
            self.out.extend_from_slice(&held);
        }
        if unnamed && !(forced && self.watch.hide_forced) {
            self.unnamed = Some((bytes.to_vec(), Instant::now()));
            return;
        }
        if let Some(hits) = &hits {
            for hit in hits.new.iter().cloned() {
                self.flush();
                on(hit);
            }
        }
        let named = hits.is_some_and(|h| h.named);
        if named || (forced && self.watch.hide_forced) {
            return;
        }
        self.out.extend_from_slice(bytes);
    }
}

/// What one failure line names.
struct Hits {
    /// Forwards it names that were not reported before.
    new: Vec<Failed>,
    /// It names some forward of the plan: rosh-ssh's line replaces it.
    named: bool,
}

impl Judge {
    fn blame(&mut self, raw: &Failure) -> Hits {
        let named = match self.attribution.blame(raw, &self.watch.forwards) {
            blame::Blamed::Nothing => Vec::new(),
            blame::Blamed::Named(named) => named,
            blame::Blamed::Shared { among, port } => {
                // ssh names the port alone and several forwards share it:
                // said once, restored never.
                // One of them reported already: this is a try to restore
                // it, refused again (the master's mux_confirm_remote_forward
                // line names the port alone).
                let first = among.first().copied().unwrap_or(0);
                let new = if among.iter().any(|i| self.failed.contains(i)) {
                    Vec::new()
                } else {
                    self.failed.extend(among.iter().copied());
                    vec![Failed {
                        index: first,
                        forward: self.watch.forwards[first].clone(),
                        refusal: Refusal::Shared { among, port },
                    }]
                };
                return Hits { new, named: true };
            }
        };
        let f = blame::through_master(raw);
        let mut hit: Vec<Failed> = Vec::new();
        for i in named {
            let Some(fwd) = self.watch.forwards.get(i) else {
                continue;
            };
            match &f {
                // One address of a local forward: the others may bind. Held
                // back until ssh says it gave up, or a moment has passed.
                Failure::LocalBind {
                    call, addr, reason, ..
                } if !self.failed.contains(&i) => {
                    let at = match self.binding.iter().position(|b| b.index == i) {
                        Some(at) => at,
                        None => {
                            self.binding.push(Binding {
                                index: i,
                                failed: Vec::new(),
                                since: Instant::now(),
                            });
                            self.binding.len() - 1
                        }
                    };
                    self.binding[at]
                        .failed
                        .push((*call, addr.clone(), reason.clone()));
                    return Hits {
                        new: Vec::new(),
                        named: true,
                    };
                }
                // No address bound: the addresses named before, or this line.
                Failure::LocalCannotListen { port } => {
                    let refusal = match self.binding.iter().position(|b| b.index == i) {
                        Some(at) => Refusal::Unbound {
                            port: *port,
                            failed: self.binding.remove(at).failed,
                        },
                        None => Refusal::Said(f.clone()),
                    };
                    hit.push(Failed {
                        index: i,
                        forward: fwd.clone(),
                        refusal,
                    });
                }
                _ => hit.push(Failed {
                    index: i,
                    forward: fwd.clone(),
                    refusal: Refusal::Said(f.clone()),
                }),
            }
        }
        // `Could not request local forwarding.` names no port: the one
        // whose port is taken now is the one that failed.
        if f == Failure::LocalNoneSucceeded {
            if self.failed.iter().any(|&i| self.is_local(i)) || !self.binding.is_empty() {
                return Hits {
                    new: Vec::new(),
                    named: true,
                };
            }
            for (i, fwd) in self.watch.forwards.iter().enumerate() {
                let v = crate::plan::verdict(fwd, &self.watch.probe);
                if v.drops() {
                    hit.push(Failed {
                        index: i,
                        forward: fwd.clone(),
                        refusal: Refusal::Held(v),
                    });
                }
            }
        }
        if let Failure::Mux { reason } = &f {
            // `master forward request failed` follows a named one.
            if reason.ends_with(b"master forward request failed") && !self.failed.is_empty() {
                return Hits {
                    new: Vec::new(),
                    named: true,
                };
            }
        }
        let named = !hit.is_empty();
        hit.retain(|h| !self.failed.contains(&h.index));
        self.failed.extend(hit.iter().map(|h| h.index));
        Hits { new: hit, named }
    }

    fn is_local(&self, i: usize) -> bool {
        self.watch
            .forwards
            .get(i)
            .is_some_and(|f| f.kind != Kind::Remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;
    use crate::tmpdir::PrivateDir;
    use std::path::PathBuf;

    /// ssh.c ssh_confirm_remote_forward's answer, as `-f` forces it out.
    const ANSWER: &[u8] = b"debug1: ssh.c:ssh_confirm_remote_forward():1803 (pid=1): \
        remote forward success for: listen 8082, connect localhost:22\r\n";

    /// ssh.c ssh_init_forwarding's line, which names no port.
    const NONE: &[u8] = b"Could not request local forwarding.\r\n";

    /// A watch over `specs` (`-R` unless given as `L:spec`), by plan index.
    fn watch(specs: &[&str]) -> Watch {
        Watch {
            forwards: specs
                .iter()
                .map(|s| match s.strip_prefix("L:") {
                    Some(l) => parse_arg(b'L', l.as_bytes()).unwrap(),
                    None => parse_arg(b'R', s.as_bytes()).unwrap(),
                })
                .collect(),
            reported: Vec::new(),
            probe: Opts::default(),
            hide_forced: false,
        }
    }

    /// A reader on a fresh FIFO relaying to a file; ssh's end of the FIFO.
    struct Rig {
        dir: PrivateDir,
        out: PathBuf,
        reader: LogReader,
        ssh: File,
    }

    impl Rig {
        fn new(w: Watch) -> Rig {
            let dir = PrivateDir::new().unwrap();
            let fifo = dir.fifo("log").unwrap();
            let out = dir.path().join("out");
            let reader = LogReader::open(&fifo, Dest::file(&out).unwrap(), w).unwrap();
            // Opened after the reader: this open does not block.
            let ssh = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            Rig {
                dir,
                out,
                reader,
                ssh,
            }
        }

        /// Writes `bytes` as ssh would, reads them, and returns the
        /// failures reported, each with what had been relayed before it.
        fn feed(&mut self, bytes: &[u8]) -> Vec<(usize, String, Vec<u8>)> {
            self.ssh.write_all(bytes).unwrap();
            let mut got = Vec::new();
            let out = self.out.clone();
            assert!(self.reader.on_readable(&mut |f| {
                let reason = match &f.refusal {
                    p @ Refusal::Partial { .. } => format!("{p:?}"),
                    r => blame::reason(r),
                };
                got.push((f.index, reason, std::fs::read(&out).unwrap()))
            }));
            got
        }

        fn relayed(&self) -> Vec<u8> {
            std::fs::read(&self.out).unwrap()
        }
    }

    #[test]
    fn relays_lines_unchanged_and_counts_answers() {
        let mut rig = Rig::new(watch(&[]));
        let chunks: [&[u8]; 4] = [b"debug1: one\r\n", b"two, in ", ANSWER, b"no line end"];
        for c in chunks {
            assert!(rig.feed(c).is_empty());
        }
        assert_eq!(rig.reader.answers(), 1);
        drop(rig.ssh);
        // Every writer gone: the reader says so, and close relays the rest.
        assert!(!rig.reader.on_readable(&mut |_| panic!("no failure")));
        assert!(rig.reader.fd().is_none());
        let failed = rig.reader.close(&mut |_| panic!("no failure"));
        assert!(failed.is_empty());
        assert_eq!(std::fs::read(&rig.out).unwrap(), chunks.concat());
        drop(rig.dir);
    }

    #[test]
    fn a_failure_naming_a_forward_is_replaced_and_reported_in_order() {
        let mut rig = Rig::new(watch(&["8081:h:1", "8082:h:2"]));
        let got = rig.feed(
            b"before\r\n\
            Warning: remote port forwarding failed for listen port 8082\r\n\
            Warning: remote port forwarding failed for listen port 9999\r\n\
            after\r\n",
        );
        // Reported after `before` reached the user, before `after` did.
        assert_eq!(
            got,
            [(
                1,
                "the server refused listen port 8082".into(),
                b"before\r\n".to_vec()
            )]
        );
        // 9999 is no forward of the plan: its line is ssh's to show.
        assert_eq!(
            rig.relayed(),
            b"before\r\n\
            Warning: remote port forwarding failed for listen port 9999\r\n\
            after\r\n"
        );
        // Said again, it is not reported again and still replaced.
        let again = rig.feed(b"Warning: remote port forwarding failed for listen port 8082\r\n");
        assert!(again.is_empty());
        assert_eq!(rig.reader.close(&mut |_| {}), [1]);
    }

    #[test]
    fn a_restore_try_the_master_logs_as_refused_says_nothing() {
        // The server refused 8082; while rosh-ssh asks for it again, the
        // master logs each refusal (mux.c mux_confirm_remote_forward).
        let mut w = watch(&["8082:h:2", "80:h:80"]);
        w.reported = vec![0];
        let mut rig = Rig::new(w);
        for _ in 0..3 {
            let got = rig.feed(
                b"mux_confirm_remote_forward: remote port forwarding failed for listen port 8082\r\n",
            );
            assert!(got.is_empty());
        }
        assert_eq!(rig.relayed(), b"");
        // Another mux client's forward refused by the master: reported once.
        let got = rig.feed(
            b"mux_confirm_remote_forward: remote port forwarding failed for listen port 80\r\n",
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 1);
    }

    #[test]
    fn lines_forced_out_for_rosh_ssh_alone_are_held_back() {
        let mut w = watch(&["8082:h:2"]);
        w.hide_forced = true;
        let mut rig = Rig::new(w);
        rig.feed(ANSWER);
        rig.feed(b"debug1: not forced\r\n");
        assert_eq!(rig.relayed(), b"debug1: not forced\r\n");
        assert_eq!(rig.reader.answers(), 1);
    }

    #[test]
    fn master_request_failed_is_hidden_only_after_a_named_failure() {
        const MASTER: &[u8] = b"muxclient: master forward request failed\r\n";
        // Alone it is ssh's to show.
        let mut rig = Rig::new(watch(&["8082:h:2"]));
        assert!(rig.feed(MASTER).is_empty());
        assert_eq!(rig.relayed(), MASTER);
        // After the master's named refusal it adds nothing.
        let mut rig = Rig::new(watch(&["8082:h:2"]));
        let got = rig.feed(
            b"mux_client_forward: forwarding request failed: \
            remote port forwarding failed for listen port 8082\r\n",
        );
        assert_eq!(got.len(), 1);
        assert!(rig.feed(MASTER).is_empty());
        assert_eq!(rig.relayed(), b"");
    }

    #[test]
    fn could_not_request_local_forwarding_names_the_forward_whose_port_is_taken() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let sock = std::env::temp_dir().join(format!("rosh-log-free-{}.sock", std::process::id()));
        // Surely free: a socket path nobody binds.
        let free = format!("L:{}:h:22", sock.display());
        let busy = format!("L:127.0.0.1:{port}:h:22");
        let mut rig = Rig::new(watch(&["8082:h:2", &free, &busy]));
        let got = rig.feed(NONE);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 2);
        assert!(
            got[0].1.starts_with(&format!("in use: 127.0.0.1:{port}")),
            "{got:?}"
        );
        // Said again once the port is free: still that forward's, not ssh's.
        drop(held);
        assert!(rig.feed(NONE).is_empty());
        assert_eq!(rig.relayed(), b"");
    }

    #[test]
    fn could_not_request_local_forwarding_after_a_remote_failure_is_ssh_s_own() {
        // Only a remote forward failed so far and no local port is taken:
        // no forward can be named, the line stays.
        let sock = std::env::temp_dir().join(format!("rosh-log-free2-{}.sock", std::process::id()));
        let local = format!("L:{}:h:22", sock.display());
        let mut rig = Rig::new(watch(&["8082:h:2", &local]));
        assert_eq!(
            rig.feed(b"Warning: remote port forwarding failed for listen port 8082\r\n")
                .len(),
            1
        );
        assert!(rig.feed(NONE).is_empty());
        assert_eq!(rig.relayed(), NONE);
    }

    #[test]
    fn a_lost_listen_race_is_one_line_for_the_forward_and_none_of_ssh_s() {
        // Two ssh's bound one port at once (SO_REUSEADDR): the loser fails
        // at listen(2). 8.9 on write the addressed line; 8.0 a bare one
        // first (channels.c). Neither reaches the user: rosh-ssh's does.
        let port = 47_011;
        // With forced lines hidden too (a LogLevel that hides them): these
        // lines are not forced ones.
        for (bare, hide_forced) in [(false, false), (true, false), (true, true)] {
            let mut w = watch(&[&format!("L:127.0.0.1:{port}:h:22")]);
            w.hide_forced = hide_forced;
            let mut rig = Rig::new(w);
            let mut log = Vec::new();
            if bare {
                log.extend_from_slice(b"listen: Address already in use\r\n");
            }
            log.extend_from_slice(
                format!(
                    "listen [127.0.0.1]:{port}: Address already in use\r\n\
                     channel_setup_fwd_listener_tcpip: cannot listen to port: {port}\r\n\
                     Could not request local forwarding.\r\n"
                )
                .as_bytes(),
            );
            let got = rig.feed(&log);
            assert_eq!(
                got,
                [(
                    0,
                    format!("listen [127.0.0.1]:{port}: Address already in use"),
                    Vec::new()
                )],
                "bare: {bare}"
            );
            assert_eq!(rig.relayed(), b"", "bare: {bare}");
            assert_eq!(rig.reader.close(&mut |_| {}), [0]);
        }
    }

    #[test]
    fn a_bare_listen_line_not_followed_by_a_forward_s_is_relayed_in_place() {
        let port = 47_012;
        let fwd = format!("L:127.0.0.1:{port}:h:22");
        // Before an unrelated line, and before a listen line of no forward
        // of the plan: ssh's lines, in ssh's order.
        for next in [
            "debug1: other\r\n".to_string(),
            "listen [127.0.0.1]:1: Address already in use\r\n".to_string(),
        ] {
            let mut rig = Rig::new(watch(&[&fwd]));
            let log = format!("one\r\nlisten: Address already in use\r\n{next}two\r\n");
            assert!(rig.feed(log.as_bytes()).is_empty());
            assert_eq!(rig.relayed(), log.as_bytes());
        }
        // Alone: relayed once a moment has passed, or when the log ends.
        let mut rig = Rig::new(watch(&[&fwd]));
        assert!(rig.feed(b"listen: Address already in use\r\n").is_empty());
        assert_eq!(rig.relayed(), b"");
        let due = rig.reader.deadline().expect("a deadline for the held line");
        rig.reader
            .on_time(due - SETTLE / 2, &mut |_| panic!("no failure"));
        assert_eq!(rig.relayed(), b"");
        rig.reader.on_time(due, &mut |_| panic!("no failure"));
        assert_eq!(rig.relayed(), b"listen: Address already in use\r\n");
        assert_eq!(rig.reader.deadline(), None);
        let mut rig = Rig::new(watch(&[&fwd]));
        assert!(rig.feed(b"listen: Address already in use\r\n").is_empty());
        drop(rig.ssh);
        assert!(!rig.reader.on_readable(&mut |_| panic!("no failure")));
        assert!(rig.reader.close(&mut |_| panic!("no failure")).is_empty());
        assert_eq!(
            std::fs::read(&rig.out).unwrap(),
            b"listen: Address already in use\r\n"
        );
    }

    #[test]
    fn an_address_that_does_not_read_as_one_leaves_the_forward_unbound() {
        // ssh names an address rosh-ssh cannot read (a scope id): what else
        // listens is unknown, so it is said as ssh said it, not as partial.
        let port = 47_013;
        let mut rig = Rig::new(watch(&[&format!("L:{port}:h:22")]));
        let line = format!("bind [fe80::1%eth0]:{port}: Cannot assign requested address\r\n");
        assert!(rig.feed(line.as_bytes()).is_empty());
        let mut judged = Vec::new();
        rig.reader
            .on_time(Instant::now() + SETTLE, &mut |f| judged.push(f));
        assert_eq!(judged.len(), 1);
        assert_eq!(
            judged[0].refusal,
            Refusal::Unbound {
                port,
                failed: vec![(
                    Call::Bind,
                    b"fe80::1%eth0".to_vec(),
                    b"Cannot assign requested address".to_vec()
                )],
            }
        );
        assert_eq!(rig.relayed(), b"");
    }

    #[test]
    fn a_bind_that_failed_on_one_address_is_judged_once_ssh_has_had_its_say() {
        let (port, other) = (47_001, 47_002);
        let mut rig = Rig::new(watch(&[
            &format!("L:{port}:h:22"),
            &format!("L:{other}:h:22"),
        ]));
        // No address bound: ssh gives up in the same breath.
        let got = rig.feed(
            format!(
                "bind [127.0.0.1]:{other}: Address already in use\r\n\
                 bind [::1]:{other}: Address already in use\r\n\
                 channel_setup_fwd_listener_tcpip: cannot listen to port: {other}\r\n"
            )
            .as_bytes(),
        );
        let both = format!(
            "bind [127.0.0.1]:{other}: Address already in use, \
             bind [::1]:{other}: Address already in use"
        );
        assert_eq!(got, [(1, both, Vec::new())]);
        // One address failed, and ssh goes on: held back, then judged.
        let got =
            rig.feed(format!("bind [127.0.0.1]:{port}: Address already in use\r\n").as_bytes());
        assert!(got.is_empty());
        assert!(rig.reader.deadline().is_some());
        let mut judged = Vec::new();
        rig.reader.on_time(Instant::now(), &mut |f| judged.push(f));
        assert!(judged.is_empty(), "judged before ssh had its say");
        rig.reader
            .on_time(Instant::now() + SETTLE, &mut |f| judged.push(f));
        assert_eq!(judged.len(), 1);
        let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let want_bound: Vec<SocketAddr> = probe::addresses(None, port, &Opts::default())
            .into_iter()
            .filter(|a| *a != v4)
            .collect();
        let want = if want_bound.is_empty() {
            // No other loopback family here: nothing else could bind.
            Refusal::Unbound {
                port,
                failed: vec![(
                    Call::Bind,
                    b"127.0.0.1".to_vec(),
                    b"Address already in use".to_vec(),
                )],
            }
        } else {
            Refusal::Partial {
                bound: want_bound,
                failed: vec![(v4, "Address already in use".into())],
            }
        };
        assert_eq!(judged[0].refusal, want);
        assert_eq!(rig.reader.deadline(), None);
        assert_eq!(rig.relayed(), b"");
        assert_eq!(rig.reader.close(&mut |_| {}), [1, 0]);
    }

    #[test]
    fn the_users_own_e_file_is_opened_without_waiting_for_a_reader() {
        // A FIFO as the user's -E with nobody reading it: ssh's own open
        // would wait; rosh-ssh's must fail at once instead of hanging.
        let dir = PrivateDir::new().unwrap();
        let fifo = dir.fifo("theirs").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Dest::file(&fifo).is_err());
        });
        let failed = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("Dest::file blocked on a FIFO without a reader");
        assert!(failed);
    }
}
