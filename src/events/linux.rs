//! Linux event sources: a signalfd for the blocked signals, a pidfd per
//! watched process, PR_SET_PDEATHSIG for children.

use super::Caught;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

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
