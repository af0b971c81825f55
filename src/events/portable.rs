//! Portable event sources, for macOS and FreeBSD (and for Linux built with
//! `--cfg rosh_portable`, so that every line here runs in the tests): a
//! self-pipe fed by sigaction handlers, kqueue's EVFILT_PROC for a holder's
//! exit where the system has it, and no PR_SET_PDEATHSIG; close-on-exec set
//! by fcntl after socket(2), and no splice.

use super::Caught;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The self-pipe's write end, for the handlers (-1: none yet).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);
/// Bit N set: signal N has rosh-ssh's handler, so a child resets it.
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Whether a signal with this si_code came from the kernel rather than from
/// kill(2) or sigqueue(3). Linux: SI_USER 0, SI_QUEUE -1, SI_TKILL -6, the
/// kernel's are positive (SI_KERNEL 0x80). The BSDs (sys/signal.h):
/// SI_USER 0x10001, SI_QUEUE 0x10002, FreeBSD's SI_LWP 0x10007; a
/// terminal's signal carries SI_NOINFO (0) or SI_KERNEL (0x10006).
fn from_kernel(si_code: i32) -> bool {
    if cfg!(target_os = "linux") {
        si_code > 0
    } else {
        !matches!(si_code, 0x10001 | 0x10002 | 0x10007)
    }
}

pub struct Signals {
    read: OwnedFd,
    /// The write end when no handler holds it (nothing caught): kept open,
    /// so that the read end does not poll as hung up.
    _idle: Option<OwnedFd>,
}

fn set_flags(fd: &OwnedFd, fd_flags: FdFlag, status: OFlag) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(fd_flags))?;
    let now = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(now | status))?;
    Ok(())
}

impl Signals {
    /// A non-blocking, close-on-exec pipe, and a handler per signal that
    /// writes the signal and its origin into it: two bytes, one write(2),
    /// the only async-signal-safe thing the handler does.
    pub fn install(signals: &[i32]) -> std::io::Result<Signals> {
        let (read, write) = pipe()?;
        set_flags(&read, FdFlag::FD_CLOEXEC, OFlag::O_NONBLOCK)?;
        set_flags(&write, FdFlag::FD_CLOEXEC, OFlag::O_NONBLOCK)?;
        if signals.is_empty() {
            // Nothing to catch, no handler to feed: the pipe alone (a unit
            // test's; the process's handlers keep writing where they did).
            return Ok(Signals {
                read,
                _idle: Some(write),
            });
        }
        // The write end lives as long as the process: a handler may run at
        // any time after this.
        let w: RawFd = std::os::fd::IntoRawFd::into_raw_fd(write);
        WRITE_END.store(w, Ordering::SeqCst);
        for &s in signals {
            // SAFETY: the action only loads an atomic and calls write(2) on
            // a descriptor that is never closed: async-signal-safe.
            unsafe {
                signal_hook_registry::register_sigaction(s, move |info: &libc::siginfo_t| {
                    let fd = WRITE_END.load(Ordering::Relaxed);
                    let b = [info.si_signo as u8, u8::from(from_kernel(info.si_code))];
                    // A full pipe drops the byte: the loop is behind, and a
                    // SIGCHLD or SIGWINCH more or less changes nothing.
                    libc::write(fd, b.as_ptr().cast(), 2);
                })
            }?;
            if (0..64).contains(&s) {
                HANDLED.fetch_or(1 << s, Ordering::SeqCst);
            }
        }
        Ok(Signals { read, _idle: None })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub fn read(&mut self) -> Vec<Caught> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        // Two bytes per signal; a write of two bytes to a pipe is atomic.
        while let Ok(n @ 1..) = nix::unistd::read(&self.read, &mut buf) {
            for pair in buf[..n].chunks_exact(2) {
                out.push(Caught {
                    signo: i32::from(pair[0]),
                    from_kernel: pair[1] != 0,
                });
            }
        }
        out
    }
}

pub fn child_reset() {
    // Between fork and exec a signal would run rosh-ssh's handler in the
    // child and write into the parent's pipe: back to the defaults (exec
    // resets caught signals anyway). A signal the caller ignored has no
    // handler of ours and stays ignored.
    let handled = HANDLED.load(Ordering::Relaxed);
    for s in 1..64 {
        if handled & (1 << s) != 0 {
            // SAFETY: signal(2) is async-signal-safe.
            unsafe { libc::signal(s, libc::SIG_DFL) };
        }
    }
}

/// No PR_SET_PDEATHSIG here: a wrapper killed with SIGKILL leaves ssh
/// running as a shell's killed job would, and an `ssh -O` helper ends when
/// its one request is answered.
pub fn tie_to_parent(_parent: libc::pid_t) -> std::io::Result<()> {
    Ok(())
}

/// kqueue's EVFILT_PROC with NOTE_EXIT: the queue's descriptor is readable
/// once the process has exited. A pid, not a handle: between naming the
/// holder and registering here the pid could be reused; the restorer's
/// probe every 30 s (and at this exit) judges the port itself, so a wrong
/// process costs time, never a wrong restore.
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub struct ProcWatch(nix::sys::event::Kqueue);

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
impl ProcWatch {
    pub fn open(pid: u32) -> Option<ProcWatch> {
        use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent, Kqueue};
        let kq = Kqueue::new().ok()?;
        let ev = KEvent::new(
            pid as usize,
            EventFilter::EVFILT_PROC,
            EvFlags::EV_ADD | EvFlags::EV_ONESHOT,
            FilterFlag::NOTE_EXIT,
            0,
            0,
        );
        // ESRCH: already gone.
        kq.kevent(
            &[ev],
            &mut [],
            Some(libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        )
        .ok()?;
        Some(ProcWatch(kq))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Linux built portable: no kqueue, and pidfd is what the portable build
/// leaves out. No watch: the restorer probes a held port on its backoff.
#[cfg(not(any(target_os = "macos", target_os = "freebsd")))]
pub struct ProcWatch(OwnedFd);

#[cfg(not(any(target_os = "macos", target_os = "freebsd")))]
impl ProcWatch {
    pub fn open(_pid: u32) -> Option<ProcWatch> {
        None
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

pub fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe()?;
    set_flags(&read, FdFlag::FD_CLOEXEC, OFlag::empty())?;
    set_flags(&write, FdFlag::FD_CLOEXEC, OFlag::empty())?;
    Ok((read, write))
}

pub fn stream_socket(family: AddressFamily, nonblocking: bool) -> nix::Result<OwnedFd> {
    let fd = socket::socket(family, SockType::Stream, SockFlag::empty(), None)?;
    let status = if nonblocking {
        OFlag::O_NONBLOCK
    } else {
        OFlag::empty()
    };
    set_flags(&fd, FdFlag::FD_CLOEXEC, status)?;
    Ok(fd)
}

/// No splice(2) here: [`open`](Self::open) gives none, and the proxy
/// relay copies through a buffer. The methods exist for the relay's code
/// to be one on every system; they are never reached.
pub struct SplicePipe(());

impl SplicePipe {
    pub fn open() -> Option<SplicePipe> {
        None
    }

    pub fn size(&self) -> usize {
        0
    }

    pub fn fill(&self, _src: RawFd, _len: usize) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    pub fn drain(&self, _dst: RawFd, _len: usize) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    pub fn take_back(&self, _held: usize) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    pub fn refused(err: &io::Error) -> bool {
        err.raw_os_error() == Some(libc::ENOSYS)
    }
}
