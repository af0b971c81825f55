//! ssh's own log lines, read from the `-E` FIFO on a thread of their own:
//! relayed unchanged to where they would have gone and scanned by the
//! matcher, without touching the session's stdin, stdout or stderr.
//!
//! The lines of a fatal forward failure are held back until ssh has ended:
//! a retry replaces them with one rosh-ssh warning per forward, and without
//! a retry they are released as they were.

use crate::matcher::{Failure, Matcher, Piece};
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
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
}

/// Failures after which ssh exits because of ExitOnForwardFailure, before
/// the session starts (so the remote command has not run).
pub fn is_fatal(f: &Failure) -> bool {
    match f {
        Failure::RemotePort { fatal, .. } | Failure::RemotePath { fatal, .. } => *fatal,
        Failure::LocalNoneSucceeded => true,
        Failure::Mux { reason } => reason.ends_with(b"master forward request failed"),
        _ => false,
    }
}

/// What a run's log showed: its forward failures, and the lines from the
/// first fatal failure on, held back.
pub struct Outcome {
    pub failures: Vec<Failure>,
    held: Vec<u8>,
    dest: Dest,
}

impl Outcome {
    /// Writes the held lines where ssh would have written them.
    pub fn release(mut self) {
        let held = std::mem::take(&mut self.held);
        self.dest.write(&held);
    }
}

/// How long a non-fatal failure line (`bind [..]: Address already in use`)
/// is held to see whether ssh's fatal line follows: ssh_init_forwarding
/// writes both in one go.
const HOLD: Duration = Duration::from_millis(200);

/// The relay's state: lines held back and the failures seen.
struct Relay {
    dest: Dest,
    /// Lines ready to go, written once per read from the FIFO rather than
    /// one write(2) per line.
    out: Vec<u8>,
    /// Drop lines with a LogVerbose tag: rosh-ssh forced them out for a
    /// user who asked for quiet.
    hide_forced: bool,
    failures: Vec<Failure>,
    /// Non-fatal failure lines waiting for a fatal one (or for HOLD).
    pending: Vec<u8>,
    pending_since: Option<Instant>,
    /// Everything from the first fatal failure line on: ssh is ending.
    fatal: Vec<u8>,
}

impl Relay {
    fn piece(&mut self, p: Piece<'_>) {
        let (bytes, failure, hidden) = match p {
            Piece::Line {
                bytes,
                failure,
                forced,
            } => (bytes, failure, forced && self.hide_forced),
            Piece::Raw(b) => (b, None, false),
        };
        let fatal = failure.as_ref().is_some_and(is_fatal);
        if let Some(f) = failure.clone() {
            self.failures.push(f);
        }
        if hidden {
            return;
        }
        if fatal {
            self.fatal.append(&mut self.pending);
            self.pending_since = None;
        }
        if !self.fatal.is_empty() || fatal {
            self.fatal.extend_from_slice(bytes);
        } else if failure.is_some() {
            self.pending.extend_from_slice(bytes);
            self.pending_since.get_or_insert_with(Instant::now);
        } else {
            self.flush_pending();
            self.out.extend_from_slice(bytes);
        }
    }

    fn flush_pending(&mut self) {
        self.out.append(&mut self.pending);
        self.pending_since = None;
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.dest.write(&self.out);
            self.out.clear();
        }
    }

    /// The poll timeout: until the pending lines are due.
    fn timeout(&self) -> PollTimeout {
        match self.pending_since {
            None => PollTimeout::NONE,
            Some(t) => {
                let left = HOLD.saturating_sub(t.elapsed()).as_millis() as u16;
                PollTimeout::from(left)
            }
        }
    }
}

/// The reader thread and the pipe that tells it ssh has ended.
pub struct LogPipe {
    thread: JoinHandle<Outcome>,
    wake: os_pipe::PipeWriter,
}

impl LogPipe {
    /// Opens the FIFO (before ssh does, so that ssh's open finds a reader)
    /// and starts relaying to `dest`.
    pub fn start(fifo: &Path, dest: Dest, hide_forced: bool) -> std::io::Result<LogPipe> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = open(fifo, flags, Mode::empty())?;
        let (wake_r, wake) = os_pipe::pipe()?;
        let relay = Relay {
            dest,
            out: Vec::new(),
            hide_forced,
            failures: Vec::new(),
            pending: Vec::new(),
            pending_since: None,
            fatal: Vec::new(),
        };
        let thread = std::thread::spawn(move || run(File::from(fd), wake_r, relay));
        Ok(LogPipe { thread, wake })
    }

    /// Called once ssh has ended: relays what it left in the FIFO and
    /// returns what the log showed. Lines a backgrounded ssh writes later
    /// are not waited for.
    pub fn finish(self) -> Option<Outcome> {
        drop(self.wake);
        self.thread.join().ok()
    }
}

fn run(mut fifo: File, wake: os_pipe::PipeReader, mut relay: Relay) -> Outcome {
    let mut matcher = Matcher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let wake: OwnedFd = wake.into();
    let mut ended = false;
    loop {
        if !ended {
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, relay.timeout()) {
                Ok(0) => {
                    relay.flush_pending();
                    relay.flush();
                    continue;
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            // The wake pipe closes when ssh has ended: drain what is left.
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                ended = true;
            }
            if !ended && fds[0].revents().is_none_or(|r| r.is_empty()) {
                continue;
            }
        }
        match fifo.read(&mut buf) {
            Ok(0) => break, // every writer is gone
            Ok(n) => {
                matcher.feed(&buf[..n], &mut |p| relay.piece(p));
                relay.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EAGAIN once ssh has ended: nothing more is buffered.
            Err(_) if ended => break,
            Err(_) => {}
        }
    }
    matcher.finish(&mut |p| relay.piece(p));
    relay.flush_pending();
    relay.flush();
    Outcome {
        failures: relay.failures,
        held: relay.fatal,
        dest: relay.dest,
    }
}
