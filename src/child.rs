//! The real ssh as a process: exec'd on the fast path, or run as a child
//! with inherited stdio whose signals are passed on and whose end is
//! mirrored exactly (after tini).

use crate::error::Error;
use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
};
use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// How a process ended, as wait(2) tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

impl End {
    /// "exit 255", "signal 9 (SIGKILL)": for `--verbose`.
    pub fn describe(&self) -> String {
        match *self {
            End::Exited(c) => format!("exit {c}"),
            End::Signaled(s) => match Signal::try_from(s) {
                Ok(sig) => format!("signal {s} ({})", sig.as_str()),
                Err(_) => format!("signal {s}"),
            },
        }
    }

    /// Ends this process the same way: exit N, or die of signal S with its
    /// default action, so the caller's wait status matches ssh's.
    pub fn mirror(self) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match self {
            End::Exited(c) => std::process::exit(c),
            End::Signaled(s) => {
                // SAFETY: plain libc calls on this process, about to die.
                unsafe {
                    // A core of the wrapper is no one's business.
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::setrlimit(libc::RLIMIT_CORE, &none);
                    libc::signal(s, libc::SIG_DFL);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, s);
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                    libc::raise(s);
                }
                // A signal whose default action is not to terminate.
                std::process::exit(128 + s)
            }
        }
    }
}

/// The command that runs the real ssh with `words`. argv\[0\] is the real
/// ssh's path, so its messages say `ssh:` and ProxyJump finds the same ssh.
pub fn command(ssh: &Path, words: &[OsString], depth: u32) -> Command {
    let mut cmd = Command::new(ssh);
    cmd.arg0(ssh).args(words);
    cmd.env(crate::locate::DEPTH_VAR, (depth + 1).to_string());
    cmd
}

/// The fast path: become the real ssh with `words`. Returns only on failure.
///
/// The depth variable is set in this process's own environment rather than
/// on the `Command`: with the environment unchanged, std hands `environ` to
/// execve as it is instead of copying every variable into a map and back
/// (a measurable part of the fast path's cost).
pub fn exec(ssh: &Path, words: &[OsString], depth: u32) -> Error {
    // SAFETY: no other thread exists yet (the fast path runs before any is
    // started), so nothing reads the environment concurrently.
    unsafe { std::env::set_var(crate::locate::DEPTH_VAR, (depth + 1).to_string()) };
    let mut cmd = Command::new(ssh);
    cmd.arg0(ssh).args(words);
    Error::Spawn(ssh.to_path_buf(), cmd.exec())
}

/// Signals passed on to ssh. A terminal's SIGINT, SIGQUIT or SIGWINCH goes
/// to the whole foreground process group, ssh included: those come from the
/// kernel and are not delivered twice.
const FORWARDED: &[i32] = &[
    SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT,
];

/// Whether `signal`'s disposition is SIG_IGN.
fn ignored(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// A terminal's hangup goes to the session leader only: when that is the
/// wrapper (a terminal window running `rosh-ssh host` directly), ssh hears
/// of it from the wrapper or not at all.
fn hangup_for_leader(signal: i32) -> bool {
    signal == SIGHUP && nix::unistd::getsid(None) == Ok(nix::unistd::getpid())
}

/// The signals the wrapper handles, blocked so that a signalfd reads them.
/// Made before any thread starts (threads inherit the mask, so no thread
/// takes one of them with its default action); a child gets an empty mask
/// again from [`unblock_all`] before its exec.
pub struct Signals {
    set: SigSet,
}

impl Signals {
    /// A signal the caller ignores stays ignored, for the wrapper and, across
    /// exec, for ssh: `nohup ssh` and `ssh ... &` in a script rely on that
    /// (ssh keeps an ignored SIGHUP, SIGINT, SIGQUIT or SIGTERM ignored).
    pub fn block() -> Result<Signals, Error> {
        let mut set = SigSet::empty();
        for &s in FORWARDED.iter().filter(|&&s| !ignored(s)) {
            if let Ok(sig) = Signal::try_from(s) {
                set.add(sig);
            }
        }
        set.add(Signal::SIGCHLD);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| Error::Io("cannot handle signals".into(), e.into()))?;
        Ok(Signals { set })
    }
}

/// In a forked child before exec: the signals the wrapper blocked are not
/// the new program's business (std's spawn leaves the mask as it is).
pub fn unblock_all() {
    // SAFETY: sigemptyset and pthread_sigmask are async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// si_code of a signal the kernel sent (a terminal's SIGINT, SIGWINCH...).
const SI_KERNEL: i32 = 0x80;

/// Runs ssh as a child and waits for it (only it: a backgrounded ssh from
/// `-f` or a ControlPersist master lives on), passing signals on.
pub fn run(mut cmd: Command, ssh: &Path, signals: &Signals) -> Result<End, Error> {
    let fd = SignalFd::new(&signals.set)
        .map_err(|e| Error::Io("cannot handle signals".into(), e.into()))?;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            unblock_all();
            // If the wrapper dies without a word (SIGKILL), ssh is told too.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(255);
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Spawn(ssh.to_path_buf(), e))?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(End::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(End::Signaled(s as i32)),
            // ssh's `~^Z` stops ssh alone (clientloop.c: kill(getpid(),
            // SIGTSTP)): stop the same way, so that the shell sees its job
            // stop and takes the terminal back. `fg` continues the whole
            // process group, and a SIGCONT to the wrapper alone is passed on.
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = signal::kill(Pid::this(), sig);
                continue;
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Io("waitpid".into(), e.into())),
        }
        // Blocks until a signal comes; SIGCHLD brings the loop back to waitpid.
        let info = match fd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::Io("signalfd".into(), e.into())),
        };
        let signo = info.ssi_signo as i32;
        if signo == SIGCHLD || (info.ssi_code == SI_KERNEL && !hangup_for_leader(signo)) {
            continue;
        }
        if let Ok(sig) = Signal::try_from(signo) {
            // ESRCH: ssh is already gone; the next waitpid tells how.
            let _ = signal::kill(pid, sig);
        }
    }
}
