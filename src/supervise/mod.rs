//! Supervising ssh: one loop for the life of the run (OpenSSH clientloop.c's
//! shape: every part adds its descriptors and its earliest deadline to one
//! poll). It passes the wrapper's signals on to ssh and mirrors ssh's end,
//! relays ssh's log (a forward that fails after connecting costs that
//! forward and one line), and restores dropped forwards into the same
//! connection once their port is free. No threads.
//!
//! `launch.rs` builds ssh's words; this is what watches the run.

pub mod log;
mod passon;
pub mod restore;

use crate::blame::Refusal;
use crate::child::End;
use crate::events::{self, Signals};
use log::{Failed, LogReader};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use passon::PassOn;
use restore::{Item, Restorer};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the loop reports to its caller: rosh-ssh's words for what happened.
pub trait Report {
    /// A forward the log named as failed after connecting.
    fn failed(&mut self, f: &Failed);
    /// A forward put back into the connection.
    fn restored(&mut self, index: usize);
}

/// The parts of a run the loop drives.
pub struct Parts {
    pub log: Option<LogReader>,
    pub restorer: Option<Restorer>,
    /// `-f`: remote forwards whose answer the loop waits for once ssh has
    /// gone to the background (at most [`ANSWER_WAIT`]).
    pub answers_wanted: usize,
}

/// What the run showed.
pub struct Outcome {
    pub end: End,
    /// Plan indexes of the forwards the log named as failed.
    pub failed: Vec<usize>,
}

/// How long `-f` waits for the server's answers to its remote forwards.
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Runs `cmd` (the real ssh) as a child and supervises it until it ends,
/// then drains its log. `signals` were installed before anything was
/// spawned.
pub fn run(
    mut cmd: Command,
    mut signals: Signals,
    mut parts: Parts,
    report: &mut dyn Report,
) -> std::io::Result<Outcome> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: child_reset and tie_to_parent are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            events::child_reset();
            // If the wrapper dies without a word (SIGKILL), ssh is told too.
            events::tie_to_parent(parent)
        });
    }
    let child = Pid::from_raw(cmd.spawn()?.id() as i32);
    let mut pass = PassOn::new(child);
    let mut end: Option<(End, Instant)> = None;
    loop {
        // ssh first: its end decides what else still matters.
        if end.is_none() {
            end = reap_ssh(child).map(|e| (e, Instant::now()));
        }
        reap_helpers(&mut parts, report);
        if let Some((_, at)) = end {
            if let Some(r) = parts.restorer.take() {
                r.stop();
            }
            if parts.done(at, report) {
                break;
            }
        }
        let again = if end.is_none() { pass.deadline() } else { None };
        let deadline = parts
            .deadline(end.map(|(_, at)| at))
            .into_iter()
            .chain(again)
            .min();
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis();
                // +1: poll rounds down; waking early would spin.
                PollTimeout::try_from(ms.min(60_000) as u32 + 1).unwrap_or(PollTimeout::MAX)
            }
        };
        let watches: Vec<(usize, std::os::fd::BorrowedFd<'_>)> = parts
            .restorer
            .as_ref()
            .map(Restorer::watches)
            .unwrap_or_default();
        let mut fds = vec![PollFd::new(signals.fd(), PollFlags::POLLIN)];
        let log_at = parts.log.as_ref().and_then(LogReader::fd).map(|fd| {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            fds.len() - 1
        });
        let first_watch = fds.len();
        fds.extend(
            watches
                .iter()
                .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)),
        );
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let fired = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let sig_ready = fired(&fds[0]);
        let log_ready = log_at.is_some_and(|i| fired(&fds[i]));
        let exited: Vec<usize> = watches
            .iter()
            .enumerate()
            .filter(|(k, _)| fired(&fds[first_watch + k]))
            .map(|(_, (index, _))| *index)
            .collect();
        drop(fds);
        drop(watches);
        if sig_ready {
            for c in signals.read() {
                if c.signo == libc::SIGCHLD {
                    continue; // the reaps at the top of the loop
                }
                if end.is_some() {
                    // Waiting for `-f`'s answers: a ^C or a kill ends the wait.
                    if matches!(c.signo, libc::SIGINT | libc::SIGTERM | libc::SIGHUP) {
                        parts.answers_wanted = 0;
                    }
                    continue;
                }
                pass.caught(c, Instant::now());
            }
        }
        if end.is_none() {
            pass.on_time(Instant::now());
        }
        if log_ready {
            parts.read_log(report);
        }
        if let Some(log) = parts.log.as_mut() {
            let restorer = &mut parts.restorer;
            log.on_time(Instant::now(), &mut |f| parts_failed(restorer, report, f));
        }
        if let Some(r) = parts.restorer.as_mut() {
            for index in exited {
                r.on_holder_exit(index);
            }
            r.on_time(Instant::now());
        }
    }
    let failed = match parts.log.take() {
        Some(log) => log.close(&mut |f| parts_failed(&mut parts.restorer, report, f)),
        None => Vec::new(),
    };
    Ok(Outcome {
        end: end.map(|(e, _)| e).unwrap_or(End::Exited(255)),
        failed,
    })
}

impl Parts {
    fn read_log(&mut self, report: &mut dyn Report) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let restorer = &mut self.restorer;
        log.on_readable(&mut |f| parts_failed(restorer, report, f));
    }

    /// Whether the run is over once ssh has ended (at `at`): the log is
    /// drained, and `-f`'s answers are in or no longer waited for.
    fn done(&mut self, at: Instant, report: &mut dyn Report) -> bool {
        let Some(log) = self.log.as_mut() else {
            return true;
        };
        // What ssh wrote before it ended is in the FIFO now: relay it. (A
        // `-f` ssh's refusals are reported; nothing is restored any more.)
        let open = log.on_readable(&mut |f| report.failed(&f));
        let waiting = open && log.answers() < self.answers_wanted && at.elapsed() < ANSWER_WAIT;
        !waiting
    }

    /// The earliest time a part wants the loop back without an event.
    fn deadline(&self, ended: Option<Instant>) -> Option<Instant> {
        let log = self.log.as_ref().and_then(LogReader::deadline);
        let other = match ended {
            Some(at) => Some(at + ANSWER_WAIT),
            None => self.restorer.as_ref().and_then(Restorer::deadline),
        };
        log.into_iter().chain(other).min()
    }
}

/// A failure the log named: reported, and handed to the restorer (a
/// forward ssh tried sits in the master's list: cancelled first).
fn parts_failed(restorer: &mut Option<Restorer>, report: &mut dyn Report, f: Failed) {
    report.failed(&f);
    // Which of several forwards on one port was refused is unknown: none
    // is asked for again (one of them may be up).
    if matches!(f.refusal, Refusal::Shared { .. }) {
        return;
    }
    if let Some(r) = restorer {
        r.add(Item {
            index: f.index,
            forward: f.forward.clone(),
            cancel: true,
            holder: None,
            addrs: match &f.refusal {
                Refusal::Partial { failed, .. } => Some(failed.iter().map(|(a, _)| *a).collect()),
                _ => None,
            },
        });
    }
}

/// ssh's end, if it has ended. ssh's `~^Z` stops ssh alone (clientloop.c:
/// kill(getpid(), SIGTSTP)): the wrapper stops the same way, so that the
/// shell sees its job stop and takes the terminal back. `fg` continues the
/// whole process group, and a SIGCONT to the wrapper alone is passed on.
fn reap_ssh(pid: Pid) -> Option<End> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(_, c)) => return Some(End::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, _)) => return Some(End::Signaled(s as i32)),
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = signal::kill(Pid::this(), sig);
            }
            Err(Errno::EINTR) => {}
            // ECHILD: nothing to wait for (cannot happen while ssh is ours).
            Err(_) => return Some(End::Exited(255)),
            Ok(_) => return None,
        }
    }
}

/// Reaps the restorer's `ssh -O` helpers that have ended.
fn reap_helpers(parts: &mut Parts, report: &mut dyn Report) {
    let Some(r) = parts.restorer.as_mut() else {
        return;
    };
    for pid in r.helpers() {
        let ok = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => c == 0,
            Ok(WaitStatus::Signaled(..)) | Err(_) => false,
            Ok(_) => continue,
        };
        if let Some(index) = r.on_helper_exit(pid, ok) {
            report.restored(index);
        }
    }
}
