//! The local terminal across attempts. ssh puts it in raw mode and puts
//! back, when it ends, the mode it found; an ssh killed by a signal cannot,
//! and the next ssh would take the raw mode for the terminal's own. So the
//! mode is saved once, before the first attempt, and put back before each
//! attempt and at the end. Keys typed while disconnected are dropped
//! (tcflush) so that a stray ^D or half a command never reaches the next
//! session.

use nix::sys::termios::{self, FlushArg, SetArg, Termios};
use std::os::fd::{AsFd, BorrowedFd};

/// The parts of a terminal's mode that rosh puts back: the four flag words
/// and the control characters (ssh's raw mode changes nothing else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub iflag: u64,
    pub oflag: u64,
    pub cflag: u64,
    pub lflag: u64,
    pub cc: Vec<u8>,
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: descriptor 0 stays open for the life of the process (main's
    // runtime setup opens /dev/null on it when it was closed).
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Whether standard input is a terminal.
pub fn is_terminal() -> bool {
    nix::unistd::isatty(stdin()).unwrap_or(false)
}

/// The terminal's mode now, if standard input is a terminal.
pub fn save() -> Option<Saved> {
    let t = termios::tcgetattr(stdin().as_fd()).ok()?;
    Some(Saved {
        iflag: t.input_flags.bits() as u64,
        oflag: t.output_flags.bits() as u64,
        cflag: t.control_flags.bits() as u64,
        lflag: t.local_flags.bits() as u64,
        cc: t.control_chars.to_vec(),
    })
}

/// Puts `saved` back on standard input's terminal (after what is written
/// has gone out, as ssh's leave_raw_mode does).
pub fn restore(saved: &Saved) {
    let Ok(mut t) = termios::tcgetattr(stdin()) else {
        return;
    };
    apply(&mut t, saved);
    let _ = termios::tcsetattr(stdin(), SetArg::TCSADRAIN, &t);
}

fn apply(t: &mut Termios, s: &Saved) {
    use termios::{ControlFlags, InputFlags, LocalFlags, OutputFlags};
    // The flag types are the platform's tcflag_t (u32 or u64): the saved
    // value came from the same type.
    t.input_flags = InputFlags::from_bits_retain(s.iflag as _);
    t.output_flags = OutputFlags::from_bits_retain(s.oflag as _);
    t.control_flags = ControlFlags::from_bits_retain(s.cflag as _);
    t.local_flags = LocalFlags::from_bits_retain(s.lflag as _);
    for (dst, src) in t.control_chars.iter_mut().zip(&s.cc) {
        *dst = *src;
    }
}

/// Drops what was typed and not yet read.
pub fn flush_input() {
    let _ = termios::tcflush(stdin(), FlushArg::TCIFLUSH);
}

impl Saved {
    /// One line of text, for the state file: `iflag oflag cflag lflag cc`
    /// in hex.
    pub fn encode(&self) -> String {
        let cc: String = self.cc.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{:x} {:x} {:x} {:x} {cc}",
            self.iflag, self.oflag, self.cflag, self.lflag
        )
    }

    pub fn decode(s: &str) -> Option<Saved> {
        let mut it = s.split(' ');
        let mut flag = || u64::from_str_radix(it.next()?, 16).ok();
        let (iflag, oflag, cflag, lflag) = (flag()?, flag()?, flag()?, flag()?);
        let hex = it.next()?;
        if it.next().is_some() || hex.len() % 2 != 0 {
            return None;
        }
        let cc = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Saved {
            iflag,
            oflag,
            cflag,
            lflag,
            cc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let s = Saved {
            iflag: 0x6d02,
            oflag: 5,
            cflag: 0xbf,
            lflag: 0x8a3b,
            cc: vec![3, 0x1c, 0x7f, 0, 1],
        };
        assert_eq!(Saved::decode(&s.encode()), Some(s.clone()));
        assert_eq!(s.encode(), "6d02 5 bf 8a3b 031c7f0001");
        for bad in [
            "",
            "1 2 3",
            "1 2 3 4 0",
            "1 2 3 4 zz",
            "1 2 3 4 00 5",
            "x 2 3 4 00",
        ] {
            assert_eq!(Saved::decode(bad), None, "{bad:?}");
        }
    }

    /// ssh's raw mode (sshtty.c enter_raw_mode) on a real pseudo-terminal,
    /// then the saved mode put back: every flag and character as it was.
    #[test]
    fn a_raw_mode_is_undone() {
        use nix::pty::openpty;
        use termios::{InputFlags, LocalFlags, OutputFlags};
        let Ok(pty) = openpty(None, None) else { return };
        let fd = pty.slave.as_fd();
        let before = termios::tcgetattr(fd).unwrap();
        let saved = Saved {
            iflag: before.input_flags.bits() as u64,
            oflag: before.output_flags.bits() as u64,
            cflag: before.control_flags.bits() as u64,
            lflag: before.local_flags.bits() as u64,
            cc: before.control_chars.to_vec(),
        };
        let mut raw = before.clone();
        raw.input_flags.remove(InputFlags::ICRNL | InputFlags::IXON);
        raw.local_flags
            .remove(LocalFlags::ISIG | LocalFlags::ICANON | LocalFlags::ECHO);
        raw.output_flags.remove(OutputFlags::OPOST);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).unwrap();
        let mut now = termios::tcgetattr(fd).unwrap();
        assert!(!now.local_flags.contains(LocalFlags::ICANON));
        apply(&mut now, &saved);
        termios::tcsetattr(fd, SetArg::TCSANOW, &now).unwrap();
        let after = termios::tcgetattr(fd).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.output_flags, before.output_flags);
        assert_eq!(after.input_flags, before.input_flags);
        assert_eq!(after.control_chars, before.control_chars);
    }
}
