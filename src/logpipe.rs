//! ssh's own log lines, read from the `-E` FIFO on a thread of their own:
//! relayed unchanged to where they would have gone and scanned by the
//! matcher, without touching the session's stdin, stdout or stderr.

use crate::matcher::{Failure, Matcher, Piece};
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::thread::JoinHandle;

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

/// The reader thread and the pipe that tells it ssh has ended.
pub struct LogPipe {
    thread: JoinHandle<Vec<Failure>>,
    wake: os_pipe::PipeWriter,
}

impl LogPipe {
    /// Opens the FIFO (before ssh does, so ssh's open never blocks for
    /// long) and starts relaying. `hide_forced`: drop lines that carry a
    /// LogVerbose tag, forced out by rosh-ssh for a user who asked for quiet.
    pub fn start(fifo: &Path, mut dest: Dest, hide_forced: bool) -> std::io::Result<LogPipe> {
        let fd = open(
            fifo,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let (wake_r, wake) = os_pipe::pipe()?;
        let thread =
            std::thread::spawn(move || relay(File::from(fd), wake_r, &mut dest, hide_forced));
        Ok(LogPipe { thread, wake })
    }

    /// Called once ssh has ended: relays what it left in the FIFO and
    /// returns the failures seen. Lines a backgrounded ssh writes later are
    /// not waited for.
    pub fn finish(self) -> Vec<Failure> {
        drop(self.wake);
        self.thread.join().unwrap_or_default()
    }
}

fn relay(
    mut fifo: File,
    wake: os_pipe::PipeReader,
    dest: &mut Dest,
    hide_forced: bool,
) -> Vec<Failure> {
    let mut matcher = Matcher::new();
    let mut failures = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let emit = |p: Piece<'_>, dest: &mut Dest, failures: &mut Vec<Failure>| match p {
        Piece::Line {
            bytes,
            failure,
            forced,
        } => {
            if let Some(f) = failure {
                failures.push(f);
            }
            if !(forced && hide_forced) {
                dest.write(bytes);
            }
        }
        Piece::Raw(b) => dest.write(b),
    };
    let wake_fd: OwnedFd = wake.into();
    let mut ended = false;
    loop {
        if !ended {
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake_fd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            // The wake pipe closes when ssh has ended: drain what is left.
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                ended = true;
            }
            if fds[0].revents().is_none_or(|r| r.is_empty()) {
                continue;
            }
        }
        match fifo.read(&mut buf) {
            Ok(0) => break, // every writer is gone
            Ok(n) => matcher.feed(&buf[..n], &mut |p| emit(p, dest, &mut failures)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EAGAIN after the end: nothing more is buffered.
            Err(_) if ended => break,
            Err(_) => {}
        }
    }
    matcher.finish(&mut |p| emit(p, dest, &mut failures));
    failures
}
