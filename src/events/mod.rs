//! Event sources for the supervisor's one loop: the few system facilities
//! that differ between Linux and the BSDs, behind one small surface.
//!
//! - [`Signals`]: the signals the wrapper handles, as a descriptor to poll
//!   (Linux: blocked and read from a signalfd; elsewhere: a self-pipe fed
//!   by sigaction handlers), each with whether the kernel sent it.
//! - [`ProcWatch`]: a descriptor that becomes readable when a process other
//!   than a child exits (Linux: a pidfd).
//! - [`tie_to_parent`]: in a forked child, ask the kernel to end it when the
//!   wrapper dies without a word (Linux: PR_SET_PDEATHSIG).
//! - [`stream_socket`], [`pipe`]: descriptors no exec'd child inherits
//!   (Linux: SOCK_CLOEXEC, pipe2's O_CLOEXEC, in the call).
//! - [`SplicePipe`]: the proxy relay's pipe for splice(2) (Linux only;
//!   elsewhere there is none and the relay copies).
//!
//! The Linux calls (signalfd, pidfd_open, prctl, splice, pipe2,
//! SOCK_CLOEXEC) live in `linux.rs` and nowhere else (but sockdiag.rs,
//! whose netlink socket is Linux's alone); `portable.rs` is the
//! rest of the world's (a self-pipe fed by sigaction, kqueue, fcntl after
//! the call), chosen at build time, and on Linux too with
//! `--cfg rosh_portable`.

#[cfg(all(target_os = "linux", not(rosh_portable)))]
mod linux;
#[cfg(all(target_os = "linux", not(rosh_portable)))]
use linux as imp;
#[cfg(any(not(target_os = "linux"), rosh_portable))]
mod portable;
#[cfg(any(not(target_os = "linux"), rosh_portable))]
use portable as imp;

use std::os::fd::{BorrowedFd, OwnedFd};

pub use imp::SplicePipe;

/// The signals passed on to ssh. A terminal's SIGINT, SIGQUIT or SIGWINCH
/// goes to the whole foreground process group, ssh included: those come
/// from the kernel and are not delivered twice.
pub const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// One signal the wrapper received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    pub signo: i32,
    /// Sent by the kernel (a terminal's keys, a hangup), not by kill(2).
    pub from_kernel: bool,
}

/// Whether `signal`'s disposition is SIG_IGN.
pub fn ignored(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// The signals the wrapper handles: [`FORWARDED`] but those the caller
/// ignores (they stay ignored, for the wrapper and across exec for ssh:
/// `nohup ssh` and `ssh ... &` in a script rely on that), and SIGCHLD.
fn handled() -> Vec<i32> {
    let mut set: Vec<i32> = FORWARDED.iter().copied().filter(|&s| !ignored(s)).collect();
    set.push(libc::SIGCHLD);
    set
}

/// The wrapper's signals, readable from one descriptor.
pub struct Signals(imp::Signals);

impl Signals {
    /// Starts catching the handled signals. Call it before the first child
    /// is spawned, so that no SIGCHLD is missed.
    pub fn install() -> std::io::Result<Signals> {
        imp::Signals::install(&handled()).map(Signals)
    }

    /// Starts catching `signals` but those the caller ignores (`rosh`'s
    /// loop: the ones that end it, and SIGCHLD). One set per process.
    pub fn catching(signals: &[i32]) -> std::io::Result<Signals> {
        let set: Vec<i32> = signals.iter().copied().filter(|&s| !ignored(s)).collect();
        imp::Signals::install(&set).map(Signals)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.fd()
    }

    /// Every signal caught since the last call; never blocks.
    pub fn read(&mut self) -> Vec<Caught> {
        self.0.read()
    }
}

/// In a forked child, before exec: undo what [`Signals::install`] did to
/// the signal mask, so the new program starts as the caller would have
/// started it. Async-signal-safe.
pub fn child_reset() {
    imp::child_reset()
}

/// In a forked child, before exec: end the child (SIGTERM) if the wrapper
/// dies without a word (SIGKILL), where the system offers that; and fail
/// the exec when the wrapper is already gone. Async-signal-safe.
pub fn tie_to_parent(parent: libc::pid_t) -> std::io::Result<()> {
    imp::tie_to_parent(parent)
}

/// A process (not a child of this one) whose exit can be waited for in a
/// poll: the descriptor becomes readable when it has exited.
pub struct ProcWatch(imp::ProcWatch);

impl ProcWatch {
    /// `None` when the process is already gone or cannot be watched.
    pub fn open(pid: u32) -> Option<ProcWatch> {
        imp::ProcWatch::open(pid).map(ProcWatch)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.fd()
    }
}

/// A stream socket of `family` that no exec'd child inherits (ssh and the
/// `ssh -O` helpers must never hold a probe's bound port or a control
/// connection), non-blocking when asked. Where socket(2) takes no flags
/// they are set right after: rosh-ssh has one thread, so no fork comes
/// between.
pub fn stream_socket(
    family: nix::sys::socket::AddressFamily,
    nonblocking: bool,
) -> nix::Result<OwnedFd> {
    imp::stream_socket(family, nonblocking)
}

/// A pipe whose two ends no exec'd child inherits (one given to a child
/// as its stdin or stderr is dup'ed there by `Command`).
pub fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    imp::pipe()
}
