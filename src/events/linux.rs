//! Linux event sources: a signalfd for the blocked signals, a pidfd per
//! watched process, PR_SET_PDEATHSIG for children; sockets made
//! close-on-exec in the call, and the proxy's splice pipes.

use super::Caught;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// si_code of a signal the kernel sent (a terminal's SIGINT, SIGWINCH...).
const SI_KERNEL: i32 = 0x80;

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks `signals` in this (only) thread and reads them from a
    /// signalfd: nothing runs in signal context.
    pub fn install(signals: &[i32]) -> std::io::Result<Signals> {
        let mut set = SigSet::empty();
        for &s in signals {
            if let Ok(sig) = Signal::try_from(s) {
                set.add(sig);
            }
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn read(&mut self) -> Vec<Caught> {
        let mut out = Vec::new();
        // The signalfd is non-blocking: None (EAGAIN) once drained.
        while let Ok(Some(info)) = self.fd.read_signal() {
            out.push(Caught {
                signo: info.ssi_signo as i32,
                from_kernel: info.ssi_code == SI_KERNEL,
            });
        }
        out
    }
}

pub fn child_reset() {
    // SAFETY: sigemptyset and pthread_sigmask are async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

pub fn tie_to_parent(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() != parent {
            libc::_exit(255);
        }
    }
    Ok(())
}

pub struct ProcWatch(OwnedFd);

impl ProcWatch {
    pub fn open(pid: u32) -> Option<ProcWatch> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd
        // or -1; the pidfd is close-on-exec.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: a non-negative return is a new fd this process owns.
        (fd >= 0).then(|| ProcWatch(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

pub fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

pub fn stream_socket(family: AddressFamily, nonblocking: bool) -> nix::Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    socket::socket(family, SockType::Stream, flags, None)
}

/// Pipe size asked for the splice pipes: fewer trips through poll than the
/// 64 KiB default; unprivileged processes may go up to fs.pipe-max-size (1 MiB).
const PIPE_SIZE: libc::c_int = 256 * 1024;

/// A non-blocking, close-on-exec pipe that bytes cross by splice(2): from
/// a source into the pipe ([`fill`](Self::fill)), from the pipe to a
/// destination ([`drain`](Self::drain)), never through user memory.
pub struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl SplicePipe {
    pub fn open() -> Option<SplicePipe> {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
        // SAFETY: fcntl on a pipe this process owns. A bigger pipe is only
        // an optimisation: the default stays if it is refused.
        let size = unsafe {
            libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        let size = usize::try_from(size).ok().filter(|&n| n > 0)?;
        Some(SplicePipe { read, write, size })
    }

    /// How many bytes the pipe holds at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Moves up to `len` bytes from `src` into the pipe.
    pub fn fill(&self, src: RawFd, len: usize) -> io::Result<usize> {
        splice(src, self.write.as_raw_fd(), len)
    }

    /// Moves up to `len` bytes from the pipe to `dst`.
    pub fn drain(&self, dst: RawFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_raw_fd(), dst, len)
    }

    /// The `held` bytes the pipe still holds, read back (the relay leaves
    /// splice for read/write, and keeps them).
    pub fn take_back(&self, held: usize) -> io::Result<Vec<u8>> {
        let mut pending = vec![0u8; held];
        let mut got = 0;
        while got < pending.len() {
            match nix::unistd::read(&self.read, &mut pending[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        pending.truncate(got);
        Ok(pending)
    }

    /// splice(2) does not work with that fd (a tty, an O_APPEND file, an
    /// old kernel): the relay copies instead.
    pub fn refused(err: &io::Error) -> bool {
        matches!(
            err.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
        )
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: splice between fds with no offsets.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
