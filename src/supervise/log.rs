//! ssh's own log lines, read from the `-E` FIFO on a thread of their own:
//! relayed unchanged to where they would have gone and scanned by the
//! matcher, without touching the session's stdin, stdout or stderr.
//!
//! A failure line that names a kept forward is replaced, as it happens, by
//! one `rosh-ssh:` line for that forward (ssh goes on: rosh-ssh runs it
//! with ExitOnForwardFailure=no). Lines rosh-ssh forced out with LogVerbose
//! are held back from a user whose LogLevel would hide them.

use crate::blame;
use crate::forward::Forward;
use crate::matcher::{Failure, Matcher, Piece};
use crate::plan::probe_forward;
use crate::probe::Opts;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where ssh would have written its log lines.
pub enum Dest {
    Stderr,
    /// The user's own `-E` file, opened as ssh opens it (append, 0600).
    File(File),
}

impl Dest {
    /// Opens the user's `-E` file like log.c log_redirect_stderr_to.
    pub fn file(path: &Path) -> std::io::Result<Dest> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map(Dest::File)
    }

    fn write(&mut self, b: &[u8]) {
        // A closed stderr must not end the session: ssh ignores it too.
        let _ = match self {
            Dest::Stderr => std::io::stderr().write_all(b),
            Dest::File(f) => f.write_all(b),
        };
    }

    /// One whole line of rosh-ssh's own. While the session has the terminal
    /// in raw mode (ICANON off) the cursor may sit mid-line (a prompt): the
    /// line then starts on a fresh line and ends in `\r\n`, as ssh ends its
    /// own mid-session lines, so it begins at column 0 and leaves what was
    /// on the screen intact.
    pub fn line(&mut self, text: &str) {
        let raw = match self {
            Dest::Stderr => nix::sys::termios::tcgetattr(std::io::stderr()).is_ok_and(|t| {
                !t.local_flags
                    .contains(nix::sys::termios::LocalFlags::ICANON)
            }),
            Dest::File(_) => false,
        };
        let bytes = if raw {
            format!("\r\n{text}\r\n")
        } else {
            format!("{text}\n")
        };
        self.write(bytes.as_bytes());
    }
}

/// What to watch for: the forwards ssh was asked for, by their index in
/// the plan.
pub struct Watch {
    /// Every forward of the plan, dropped ones too: a restore that loses a
    /// race makes the master log a failure naming it.
    pub forwards: Vec<(usize, Forward)>,
    /// Each forward of the plan as the user wrote it, by plan index.
    pub names: Vec<String>,
    /// The ones dropped before ssh started: already reported.
    pub dropped: Vec<usize>,
    pub probe: Opts,
    pub require: bool,
    /// Drop lines with a LogVerbose tag: rosh-ssh forced them out.
    pub hide_forced: bool,
    /// Remote forwards whose answer `finish` waits for (`-f`).
    pub answers_wanted: usize,
    /// Where a forward that failed goes to be restored.
    pub notify: Option<crate::supervise::restore::Notify>,
}

/// What the log showed: the plan indexes of the forwards that failed.
pub struct Outcome {
    pub failed: Vec<usize>,
    pub answers: usize,
}

/// The relay's state.
struct Relay {
    dest: Dest,
    /// Lines ready to go, written once per read from the FIFO rather than
    /// one write(2) per line.
    out: Vec<u8>,
    watch: Watch,
    failed: Vec<usize>,
    answers: usize,
    /// Which forward a port-only line means (two remote forwards may share a port).
    attribution: blame::Attribution,
}

impl Relay {
    fn piece(&mut self, p: Piece<'_>) {
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
        let named = failure.as_ref().is_some_and(|f| self.blame(f));
        if named || (forced && self.watch.hide_forced) {
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Reports the forwards `f` names; whether it named any (then its line
    /// is replaced by rosh-ssh's).
    fn blame(&mut self, f: &Failure) -> bool {
        let mut hit: Vec<(usize, Forward, String)> = Vec::new();
        match self.attribution.blame(f, &self.watch.forwards) {
            blame::Blamed::Nothing => {}
            blame::Blamed::Named(named) => {
                for (i, r) in named {
                    if let Some((_, fwd)) = self.watch.forwards.iter().find(|(j, _)| *j == i) {
                        hit.push((i, fwd.clone(), r));
                    }
                }
            }
            blame::Blamed::Shared { among, port } => {
                let names: Vec<String> = among
                    .iter()
                    .map(|&i| self.watch.names.get(i).cloned().unwrap_or_default())
                    .collect();
                self.flush();
                Dest::Stderr.line(&blame::shared(&names, port));
                return true;
            }
        }
        let f = blame::through_master(f);
        // `Could not request local forwarding.` names no port: the one
        // whose port is taken now is the one that failed.
        if f == Failure::LocalNoneSucceeded {
            if self.failed.iter().any(|i| self.local(*i).is_some()) {
                return true;
            }
            for (i, fwd) in &self.watch.forwards {
                if let Some(r) = probe_forward(fwd, &self.watch.probe) {
                    hit.push((*i, fwd.clone(), r));
                }
            }
        }
        if let Failure::Mux { reason } = &f {
            // `master forward request failed` follows a named one.
            if reason.ends_with(b"master forward request failed") && !self.failed.is_empty() {
                return true;
            }
        }
        let any = !hit.is_empty();
        for (i, fwd, reason) in hit {
            if self.failed.contains(&i) {
                continue;
            }
            self.failed.push(i);
            let name = self.watch.names.get(i).cloned().unwrap_or_default();
            let line = blame::warning(&name, &reason, self.watch.require);
            if let Some(n) = &self.watch.notify {
                n.send(crate::supervise::restore::Item {
                    forward: fwd,
                    name,
                    cancel: true,
                    holder: None,
                });
            }
            self.flush();
            // rosh-ssh's own lines go where its other warnings go, even
            // when ssh's log goes to the user's -E file.
            Dest::Stderr.line(&line);
        }
        any
    }

    fn local(&self, i: usize) -> Option<&Forward> {
        self.watch
            .forwards
            .iter()
            .find(|(j, f)| *j == i && f.kind != crate::forward::Kind::Remote)
            .map(|(_, f)| f)
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.dest.write(&self.out);
            self.out.clear();
        }
    }
}

/// The reader thread and the pipe that tells it ssh has ended.
pub struct LogPipe {
    thread: JoinHandle<Outcome>,
    wake: OwnedFd,
    no_answers: Arc<AtomicBool>,
}

impl LogPipe {
    /// Opens the FIFO (before ssh does, so that ssh's open finds a reader)
    /// and starts relaying to `dest`.
    pub fn start(fifo: &Path, dest: Dest, watch: Watch) -> std::io::Result<LogPipe> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = open(fifo, flags, Mode::empty())?;
        let (wake_r, wake) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let relay = Relay {
            dest,
            out: Vec::new(),
            failed: watch.dropped.clone(),
            watch,
            answers: 0,
            attribution: blame::Attribution::default(),
        };
        let no_answers = Arc::new(AtomicBool::new(false));
        let flag = no_answers.clone();
        let thread = std::thread::spawn(move || run(File::from(fd), wake_r, relay, flag));
        Ok(LogPipe {
            thread,
            wake,
            no_answers,
        })
    }

    /// Called once ssh has ended: relays what it left in the FIFO and
    /// returns what the log showed. With `-f`, waits up to `wait` for the
    /// server's answers to the remote forwards, which the backgrounded ssh
    /// logs; other lines a backgrounded ssh writes later are not waited for.
    pub fn finish(self, ssh_ok: bool) -> Option<Outcome> {
        if !ssh_ok {
            // An `ssh -f` that failed never went to the background: no
            // answers will come.
            self.no_answers.store(true, Ordering::Relaxed);
        }
        drop(self.wake);
        self.thread.join().ok()
    }
}

/// How long `-f` waits for the server's answers to its remote forwards.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

fn run(mut fifo: File, wake: OwnedFd, mut relay: Relay, no_answers: Arc<AtomicBool>) -> Outcome {
    let mut matcher = Matcher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended: Option<Instant> = None;
    loop {
        let waiting = relay.answers < relay.watch.answers_wanted
            && !(ended.is_some() && no_answers.load(Ordering::Relaxed));
        let timeout = match ended {
            None => PollTimeout::NONE,
            Some(t) if waiting => {
                let left = ANSWER_WAIT.saturating_sub(t.elapsed());
                if left.is_zero() {
                    break;
                }
                PollTimeout::from(left.as_millis().min(10_000) as u16)
            }
            Some(_) => PollTimeout::ZERO,
        };
        let mut fds = vec![PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        if ended.is_none() {
            fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(0) if ended.is_some() && !waiting => break,
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let fifo_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        // The wake pipe closes when ssh has ended: drain what is left.
        if fds
            .get(1)
            .is_some_and(|f| f.revents().is_some_and(|r| !r.is_empty()))
        {
            ended = Some(Instant::now());
        }
        if !fifo_ready {
            continue;
        }
        match fifo.read(&mut buf) {
            Ok(0) => break, // every writer is gone
            Ok(n) => {
                matcher.feed(&buf[..n], &mut |p| relay.piece(p));
                relay.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if ended.is_some() && !waiting => break,
            Err(_) => {}
        }
    }
    matcher.finish(&mut |p| relay.piece(p));
    relay.flush();
    Outcome {
        failed: relay.failed,
        answers: relay.answers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;
    use crate::tmpdir::PrivateDir;
    use std::path::PathBuf;
    use std::sync::mpsc::{self, Receiver};

    /// Far above what the real code takes (milliseconds), far below the
    /// 10 s polls and 60 s answer wait a wrong `run` falls into.
    const BOUND: Duration = Duration::from_secs(5);

    /// ssh.c ssh_confirm_remote_forward's answer, as `-f` forces it out.
    const ANSWER: &[u8] = b"debug1: ssh.c:ssh_confirm_remote_forward():1803 (pid=1): \
        remote forward success for: listen 8082, connect localhost:22\r\n";

    /// Runs `f` on a thread of its own, so that a call that blocks fails
    /// the test at [`wait`] instead of hanging it (the thread is left behind).
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx
    }

    fn wait<T>(rx: Receiver<T>, what: &str) -> T {
        rx.recv_timeout(BOUND)
            .unwrap_or_else(|e| panic!("{what}: {e} (bound {BOUND:?})"))
    }

    /// A watch over `-R` forwards `specs`, by plan index.
    fn watch(specs: &[&str], answers_wanted: usize) -> Watch {
        Watch {
            forwards: specs
                .iter()
                .map(|s| parse_arg(b'R', s.as_bytes()).unwrap())
                .enumerate()
                .collect(),
            names: specs.iter().map(|s| format!("-R {s}")).collect(),
            dropped: Vec::new(),
            probe: Opts::default(),
            require: false,
            hide_forced: false,
            answers_wanted,
            notify: None,
        }
    }

    /// A FIFO nobody writes to yet, and the `-E` file the relay writes to.
    fn setup() -> (PrivateDir, PathBuf, PathBuf) {
        let dir = PrivateDir::new().unwrap();
        let fifo = dir.fifo("log").unwrap();
        let out = dir.path().join("out");
        (dir, fifo, out)
    }

    fn start(fifo: &Path, out: &Path, w: Watch) -> LogPipe {
        let (fifo, dest) = (fifo.to_owned(), Dest::file(out).unwrap());
        wait(spawn(move || LogPipe::start(&fifo, dest, w)), "start").unwrap()
    }

    fn finish(pipe: LogPipe, ssh_ok: bool) -> Outcome {
        wait(spawn(move || pipe.finish(ssh_ok)), "finish").expect("reader thread panicked")
    }

    /// ssh's side. Opened after `start`: its reader is there, so this
    /// open does not block.
    fn writer(fifo: &Path) -> File {
        std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
    }

    #[test]
    fn start_does_not_wait_for_a_writer() {
        // rosh-ssh opens the FIFO before it starts ssh: a blocking open
        // would wait for a writer that never comes.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&[], 0));
        let o = finish(pipe, true);
        assert_eq!((o.failed, o.answers), (vec![], 0));
    }

    #[test]
    fn relays_lines_unchanged() {
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8082:localhost:22"], 0));
        let mut w = writer(&fifo);
        let chunks: [&[u8]; 4] = [
            b"debug1: Connecting to h port 22.\r\n",
            ANSWER,
            b"plain \xff\xfe line\nsplit ",
            b"line\r\nno line end",
        ];
        for c in chunks {
            w.write_all(c).unwrap();
        }
        drop(w);
        let o = finish(pipe, true);
        assert_eq!(std::fs::read(&out).unwrap(), chunks.concat());
        assert_eq!((o.failed, o.answers), (vec![], 1));
    }

    #[test]
    fn failure_naming_a_forward_is_replaced_and_reported() {
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8081:h:1", "8082:h:2"], 0));
        let mut w = writer(&fifo);
        w.write_all(
            b"before\r\n\
            Warning: remote port forwarding failed for listen port 8082\r\n\
            Warning: remote port forwarding failed for listen port 9999\r\n\
            after\r\n",
        )
        .unwrap();
        drop(w);
        let o = finish(pipe, true);
        // 9999 is no forward of the plan: its line is ssh's to show.
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"before\r\n\
            Warning: remote port forwarding failed for listen port 9999\r\n\
            after\r\n"
        );
        assert_eq!(o.failed, vec![1]);
    }

    #[test]
    fn finish_waits_for_an_answer_written_after_ssh_ended() {
        // `ssh -f`: the foreground ssh has ended, its background self
        // still holds the FIFO and logs the server's answer later.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8082:localhost:22"], 1));
        let mut w = writer(&fifo);
        let done = spawn(move || pipe.finish(true));
        std::thread::sleep(Duration::from_millis(200));
        assert!(done.try_recv().is_err(), "finish did not wait");
        w.write_all(ANSWER).unwrap();
        let o = wait(done, "finish").expect("reader thread panicked");
        drop(w);
        assert_eq!(o.answers, 1);
        assert_eq!(std::fs::read(&out).unwrap(), ANSWER);
    }

    #[test]
    fn finish_does_not_wait_for_a_writer_with_no_answers_due() {
        // A backgrounded ssh holds the FIFO open for the whole session:
        // finish must not wait for it to close.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&[], 0));
        let mut w = writer(&fifo);
        w.write_all(b"left in the FIFO\r\n").unwrap();
        let o = finish(pipe, true);
        drop(w);
        assert_eq!(o.answers, 0);
        assert_eq!(std::fs::read(&out).unwrap(), b"left in the FIFO\r\n");
    }

    #[test]
    fn failed_ssh_is_not_waited_for_answers() {
        // An `ssh -f` that failed never went to the background: no answer
        // comes, however many were wanted.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8082:localhost:22"], 1));
        let w = writer(&fifo);
        let o = finish(pipe, false);
        drop(w);
        assert_eq!(o.answers, 0);
    }

    /// ssh.c ssh_init_forwarding's line, which names no port.
    const NONE: &[u8] = b"Could not request local forwarding.\r\n";

    /// Adds `-L spec` to the watch, next in the plan.
    fn add_local(w: &mut Watch, spec: &str) {
        let i = w.forwards.len();
        w.forwards
            .push((i, parse_arg(b'L', spec.as_bytes()).unwrap()));
        w.names.push(format!("-L {spec}"));
    }

    /// Waits (bounded) until the `-E` file holds `want`: the reader has
    /// dealt with everything written before it.
    fn wait_out(out: &Path, want: &[u8]) {
        let end = Instant::now() + BOUND;
        while std::fs::read(out).unwrap_or_default() != want && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(std::fs::read(out).unwrap(), want);
    }

    #[test]
    fn master_request_failed_is_hidden_only_after_a_named_failure() {
        const MASTER: &[u8] = b"muxclient: master forward request failed\r\n";
        // Alone it is ssh's to show.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8082:h:2"], 0));
        writer(&fifo).write_all(MASTER).unwrap();
        let o = finish(pipe, true);
        assert_eq!(std::fs::read(&out).unwrap(), MASTER);
        assert_eq!(o.failed, Vec::<usize>::new());
        // After the master's named refusal it adds nothing.
        let (_dir, fifo, out) = setup();
        let pipe = start(&fifo, &out, watch(&["8082:h:2"], 0));
        let mut w = writer(&fifo);
        w.write_all(b"mux_client_forward: forwarding request failed: remote port forwarding failed for listen port 8082\r\n")
            .unwrap();
        w.write_all(MASTER).unwrap();
        drop(w);
        let o = finish(pipe, true);
        assert_eq!(std::fs::read(&out).unwrap(), b"");
        assert_eq!(o.failed, vec![0]);
    }

    #[test]
    fn could_not_request_local_forwarding_names_the_forward_whose_port_is_taken() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let (dir, fifo, out) = setup();
        // Surely free: a socket path nobody binds.
        let free = format!("{}:h:22", dir.path().join("l.sock").display());
        let mut w = watch(&["8082:h:2"], 0);
        add_local(&mut w, &free);
        add_local(&mut w, &format!("127.0.0.1:{port}:h:22"));
        let pipe = start(&fifo, &out, w);
        let mut w = writer(&fifo);
        // Each line after NONE shows when the reader has dealt with NONE.
        w.write_all(NONE).unwrap();
        w.write_all(b"one\r\n").unwrap();
        wait_out(&out, b"one\r\n");
        // Said again once the port is free: still that forward's, not ssh's.
        drop(held);
        w.write_all(NONE).unwrap();
        w.write_all(b"two\r\n").unwrap();
        wait_out(&out, b"one\r\ntwo\r\n");
        drop(w);
        let o = finish(pipe, true);
        assert_eq!(o.failed, vec![2]);
    }

    #[test]
    fn could_not_request_local_forwarding_after_a_remote_failure_is_ssh_s_own() {
        // Only a remote forward failed so far and no local port is taken:
        // no forward can be named, the line stays.
        let (dir, fifo, out) = setup();
        let spec = format!("{}:h:22", dir.path().join("l.sock").display());
        let mut w = watch(&["8082:h:2"], 0);
        add_local(&mut w, &spec);
        let pipe = start(&fifo, &out, w);
        let mut w = writer(&fifo);
        w.write_all(b"Warning: remote port forwarding failed for listen port 8082\r\n")
            .unwrap();
        w.write_all(NONE).unwrap();
        drop(w);
        let o = finish(pipe, true);
        assert_eq!(std::fs::read(&out).unwrap(), NONE);
        assert_eq!(o.failed, vec![0]);
    }
}
