//! One attempt as a process: rosh-ssh (the wrapper) run with the terminal,
//! its standard error passed on through the watch, the signals rosh gets
//! meanwhile noted; and the pause before the next attempt, which Ctrl-C
//! ends.
//!
//! Signals come from the wrapper's own event sources (events.rs: a
//! signalfd on Linux, a self-pipe fed by sigaction elsewhere); a child
//! started by `Command` begins with an empty mask and default handlers.

use super::watch::Watch;
use crate::child::End;
use crate::events::Signals;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts catching what ends the loop (SIGINT, SIGTERM, SIGHUP) and
/// SIGCHLD, which wakes the wait for an attempt.
pub fn signals() -> io::Result<Signals> {
    Signals::catching(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])
}

/// Sleeps `secs` seconds; false when a signal that ends the loop came.
pub fn sleep(signals: &mut Signals, secs: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs.into());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let ms = left.as_millis().min(60_000) as libc::c_int + 1;
        poll(&mut [pollfd(signals.fd().as_raw_fd())], ms);
        if signals.read().iter().any(|c| ends_loop(c.signo)) {
            return false;
        }
    }
}

fn ends_loop(sig: i32) -> bool {
    matches!(sig, libc::SIGINT | libc::SIGTERM | libc::SIGHUP)
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd], ms: libc::c_int) {
    // SAFETY: poll on a slice of pollfd structs of its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// How the attempt went.
pub struct Ran {
    pub end: End,
    pub watch: Watch,
    /// SIGINT, SIGTERM or SIGHUP came meanwhile.
    pub interrupted: bool,
}

/// Runs `cmd` with its standard error read through `watch` and passed on.
/// Returns when the child has ended; what it left in the pipe is passed on
/// then, but a process it left in the background (a ControlPersist master,
/// `-f`) holding the pipe is not waited for.
pub fn attempt(mut cmd: Command, mut watch: Watch, signals: &mut Signals) -> io::Result<Ran> {
    // Close-on-exec both ends (the child gets a dup of the write end);
    // rosh-ssh reads without blocking.
    let (r, w) = crate::events::pipe()?;
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    cmd.stderr(Stdio::from(w));
    let mut child = cmd.spawn()?;
    drop(cmd);
    let mut pipe_open = true;
    let mut interrupted = false;
    let mut out = Vec::new();
    let status = loop {
        let mut fds = [pollfd(signals.fd().as_raw_fd()), pollfd(r.as_raw_fd())];
        let n = if pipe_open { 2 } else { 1 };
        // SIGCHLD wakes the poll; the bound is for a wake-up lost to a full pipe.
        poll(&mut fds[..n], 250);
        for sig in signals.read().into_iter().map(|c| c.signo) {
            if ends_loop(sig) {
                interrupted = true;
                if sig != libc::SIGINT {
                    // The terminal sent SIGINT to the child already.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::try_from(sig).ok(),
                    );
                }
            }
        }
        if pipe_open {
            pipe_open = relay(&r, &mut watch, &mut out);
        }
        if let Some(status) = child.try_wait()? {
            if pipe_open {
                relay(&r, &mut watch, &mut out);
            }
            break status;
        }
    };
    watch.finish(&mut out);
    let _ = io::stderr().write_all(&out);
    let end = match (status.code(), status.signal()) {
        (Some(c), _) => End::Exited(c),
        (None, Some(s)) => End::Signaled(s),
        _ => End::Exited(255),
    };
    Ok(Ran {
        end,
        watch,
        interrupted,
    })
}

/// Standard error is a terminal in raw mode (a session runs).
fn stderr_raw() -> bool {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    tcgetattr(io::stderr()).is_ok_and(|t| !t.local_flags.contains(LocalFlags::ICANON))
}

/// Passes on what the pipe holds now; false at its end.
fn relay(r: &OwnedFd, watch: &mut Watch, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: reading into a local buffer of its length.
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            watch.feed(&buf[..n as usize], stderr_raw(), out);
            let _ = io::stderr().write_all(out);
            out.clear();
            continue;
        }
        if n == 0 {
            return false;
        }
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => true,
            _ => false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_stderr_and_sees_the_end() {
        // No signal caught: the unit tests share their process.
        let mut signals = Signals::catching(&[]).unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "printf 'Connection to h closed.\\r\\n' >&2; exit 255"]);
        let ran = attempt(c, Watch::new(false), &mut signals).unwrap();
        assert_eq!(ran.end, End::Exited(255));
        assert!(ran.watch.quit());
        assert!(!ran.interrupted);
        let mut c = Command::new("sh");
        c.args(["-c", "kill -9 $$"]);
        assert_eq!(
            attempt(c, Watch::new(false), &mut signals).unwrap().end,
            End::Signaled(9)
        );
        // A background process holding standard error is not waited for.
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 5 & exit 3"]);
        let t = Instant::now();
        assert_eq!(
            attempt(c, Watch::new(false), &mut signals).unwrap().end,
            End::Exited(3)
        );
        assert!(t.elapsed() < Duration::from_secs(4));
        assert!(sleep(&mut signals, 0));
    }
}
