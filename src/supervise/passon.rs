//! Passing the wrapper's signals on to ssh.
//!
//! A signal the kernel sent to the whole foreground process group (a
//! terminal's ^C, ^\, a window size change) reached ssh already and is not
//! passed again. A terminal's hangup goes to the session leader alone: when
//! that is the wrapper (a terminal window running `rosh-ssh host` directly),
//! ssh hears of it from the wrapper or not at all.
//!
//! An ending signal (SIGINT, SIGQUIT, SIGTERM, SIGHUP) passed on is passed
//! again while ssh lives, a few times, further apart each time. OpenSSH
//! before 9.5 checks its quit flag and then calls poll() without a signal
//! mask (clientloop.c at V_9_2_P1; ppoll() with the mask from 9.5): a signal
//! that lands between the two waits for the next packet, and an idle
//! session sends none. A terminal's hangup wakes ssh (its tty reads fail)
//! at the moment the wrapper hears of it, so the signal the wrapper passes
//! on a moment later lands in that window far more often than the one the
//! kernel gives a plain ssh, which comes before the wakeup. To ssh a second
//! signal of the same kind changes nothing (its handler sets the flag
//! again; a default action has ended it already).

use crate::events::Caught;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// The wait before an ending signal is passed again; it doubles each time.
const FIRST_GAP: Duration = Duration::from_millis(200);
/// How many times an ending signal is passed again at most (0.2 + 0.4 +
/// 0.8 + 1.6 s: 3 s in all).
const AGAIN: u32 = 4;

/// The signals ssh's client loop ends on.
fn ending(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGINT | Signal::SIGQUIT | Signal::SIGTERM | Signal::SIGHUP
    )
}

/// Whether `c` is passed on: every signal sent with kill(2), and a
/// kernel's hangup when the wrapper leads its session.
fn passes(c: Caught) -> bool {
    !c.from_kernel
        || (c.signo == libc::SIGHUP && nix::unistd::getsid(None) == Ok(nix::unistd::getpid()))
}

struct Again {
    sig: Signal,
    due: Instant,
    gap: Duration,
    left: u32,
}

/// ssh's side of the wrapper's signals.
pub struct PassOn {
    child: Pid,
    again: Option<Again>,
}

impl PassOn {
    pub fn new(child: Pid) -> PassOn {
        PassOn { child, again: None }
    }

    /// A signal the wrapper caught while ssh lives.
    pub fn caught(&mut self, c: Caught, now: Instant) {
        if !passes(c) {
            return;
        }
        let Ok(sig) = Signal::try_from(c.signo) else {
            return;
        };
        // ESRCH: ssh is already gone; the next reap tells how.
        let _ = signal::kill(self.child, sig);
        if ending(sig) {
            self.again = Some(Again {
                sig,
                due: now + FIRST_GAP,
                gap: FIRST_GAP,
                left: AGAIN,
            });
        }
    }

    /// When the loop should be back to pass a signal again.
    pub fn deadline(&self) -> Option<Instant> {
        self.again.as_ref().map(|a| a.due)
    }

    /// Passes the last ending signal again if it is due (ssh still lives:
    /// the loop stops calling this once ssh has ended).
    pub fn on_time(&mut self, now: Instant) {
        let Some(a) = self.again.as_mut() else {
            return;
        };
        if now < a.due {
            return;
        }
        let _ = signal::kill(self.child, a.sig);
        a.left -= 1;
        a.gap *= 2;
        a.due = now + a.gap;
        if a.left == 0 {
            self.again = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn user(signo: i32) -> Caught {
        Caught {
            signo,
            from_kernel: false,
        }
    }

    #[test]
    fn a_kernel_signal_to_the_group_is_not_passed_again() {
        for signo in [libc::SIGINT, libc::SIGQUIT, libc::SIGWINCH] {
            assert!(!passes(Caught {
                signo,
                from_kernel: true
            }));
            assert!(passes(user(signo)));
        }
        // A test runner does not lead its session: a kernel's hangup is
        // the group's here too.
        if nix::unistd::getsid(None) != Ok(nix::unistd::getpid()) {
            assert!(!passes(Caught {
                signo: libc::SIGHUP,
                from_kernel: true
            }));
        }
    }

    #[test]
    fn an_ending_signal_is_passed_again_four_times_further_apart_then_no_more() {
        // A child that ignores SIGTERM and counts nothing: only the
        // schedule is under test here (tests/core.rs has ssh's side).
        let mut child = Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = PassOn::new(Pid::from_raw(child.id() as i32));
        let t0 = Instant::now();
        p.caught(user(libc::SIGTERM), t0);
        let mut at = t0;
        let mut gaps = Vec::new();
        for _ in 0..10 {
            let Some(due) = p.deadline() else { break };
            assert!(due > at);
            gaps.push((due - at).as_millis());
            // Early: nothing happens.
            p.on_time(due - Duration::from_millis(1));
            assert_eq!(p.deadline(), Some(due));
            p.on_time(due);
            at = due;
        }
        assert_eq!(gaps, [200, 400, 800, 1600]);
        assert_eq!(p.deadline(), None);
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn other_signals_are_passed_once() {
        let mut child = Command::new("/bin/sh")
            .args(["-c", "trap '' USR1 WINCH CONT; exec sleep 30"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = PassOn::new(Pid::from_raw(child.id() as i32));
        for signo in [libc::SIGUSR1, libc::SIGWINCH, libc::SIGCONT] {
            p.caught(user(signo), Instant::now());
            assert_eq!(p.deadline(), None);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
