//! One attempt as a process: rosh-ssh (the wrapper) run with the terminal,
//! its standard error passed on through the watch, the signals rosh gets
//! meanwhile noted; and the pause before the next attempt, which Ctrl-C
//! ends.
//!
//! Signals arrive through a self-pipe fed by sigaction handlers (portable:
//! no signalfd). Handlers, unlike ignored signals, are reset by exec, so the
//! child starts with the defaults.

use super::watch::Watch;
use crate::child::End;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

static WAKE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WAKE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the byte lives on this stack.
        // A full pipe already holds a wake-up: the lost byte does not matter.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// The signals that end the loop (SIGINT, SIGTERM, SIGHUP) and SIGCHLD,
/// caught from `install` on.
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

/// A pipe whose two ends are close-on-exec and non-blocking (pipe2 is not
/// everywhere).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe().map_err(io::Error::from)?;
    for fd in [&r, &w] {
        set_flags(fd.as_raw_fd(), true)?;
    }
    Ok((r, w))
}

fn set_flags(fd: RawFd, nonblock: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == -1 {
            return Err(io::Error::last_os_error());
        }
        let fl = libc::fcntl(fd, libc::F_GETFL);
        let fl = if nonblock {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let s = Signals::uncaught()?;
        WAKE.store(s._write.as_raw_fd(), Ordering::Relaxed);
        let act = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGCHLD,
        ] {
            // SAFETY: the handler only writes one byte to a pipe.
            unsafe { sigaction(sig, &act) }.map_err(io::Error::from)?;
        }
        Ok(s)
    }

    /// The pipe alone, no handler (the unit tests share their process).
    fn uncaught() -> io::Result<Signals> {
        let (read, write) = pipe()?;
        Ok(Signals {
            read,
            _write: write,
        })
    }

    /// The signals caught since the last call.
    fn take(&self) -> Vec<i32> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a local buffer of its length.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return got;
            }
            got.extend(buf[..n as usize].iter().map(|&b| i32::from(b)));
        }
    }

    /// Sleeps `secs` seconds; false when a signal that ends the loop came.
    pub fn sleep(&self, secs: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs.into());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            let ms = left.as_millis().min(60_000) as libc::c_int + 1;
            poll(&mut [pollfd(self.read.as_raw_fd())], ms);
            if self.take().iter().any(|&s| ends_loop(s)) {
                return false;
            }
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
pub fn attempt(mut cmd: Command, mut watch: Watch, signals: &Signals) -> io::Result<Ran> {
    let (r, w) = pipe()?;
    set_flags(w.as_raw_fd(), false)?;
    cmd.stderr(Stdio::from(w));
    let mut child = cmd.spawn()?;
    drop(cmd);
    let mut pipe_open = true;
    let mut interrupted = false;
    let mut out = Vec::new();
    let status = loop {
        let mut fds = [pollfd(signals.read.as_raw_fd()), pollfd(r.as_raw_fd())];
        let n = if pipe_open { 2 } else { 1 };
        // SIGCHLD wakes the poll; the bound is for a wake-up lost to a full pipe.
        poll(&mut fds[..n], 250);
        for sig in signals.take() {
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
        let signals = Signals::uncaught().unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "printf 'Connection to h closed.\\r\\n' >&2; exit 255"]);
        let ran = attempt(c, Watch::new(false), &signals).unwrap();
        assert_eq!(ran.end, End::Exited(255));
        assert!(ran.watch.quit());
        assert!(!ran.interrupted);
        let mut c = Command::new("sh");
        c.args(["-c", "kill -9 $$"]);
        assert_eq!(
            attempt(c, Watch::new(false), &signals).unwrap().end,
            End::Signaled(9)
        );
        // A background process holding standard error is not waited for.
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 5 & exit 3"]);
        let t = Instant::now();
        assert_eq!(
            attempt(c, Watch::new(false), &signals).unwrap().end,
            End::Exited(3)
        );
        assert!(t.elapsed() < Duration::from_secs(4));
        assert!(signals.sleep(0));
    }
}
