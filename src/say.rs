//! The one writer of rosh-ssh's own lines: warnings about forwards,
//! `restored`, and `--verbose`'s explanations. It follows ssh's LogLevel
//! the way ssh's own failure lines do, and starts a line at column 0 when
//! the session has the terminal in raw mode.

use std::io::Write;

/// Which of rosh-ssh's lines are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// ERROR and above: a forward's failure line shows, as ssh's would.
    Shown,
    /// FATAL: only what ends the run shows (ssh shows its fatal lines).
    Fatal,
    /// QUIET (`-q`): nothing.
    Quiet,
}

impl Level {
    /// From `loglevel` as `ssh -G` prints it. log.c: a forward that fails
    /// without ending the session is logged with error() (or logit(), for a
    /// refused remote forward): shown from ERROR up; ExitOnForwardFailure
    /// makes it fatal().
    pub fn of(log_level: &str) -> Level {
        match log_level {
            // Debian's ssh prints QUIET as SILENT (its log.c names both).
            "QUIET" | "SILENT" => Level::Quiet,
            "FATAL" => Level::Fatal,
            _ => Level::Shown,
        }
    }
}

/// Where rosh-ssh's lines go (stderr) and which of them do.
#[derive(Clone, Copy, Debug)]
pub struct Say {
    pub level: Level,
    /// `--verbose`: every line shows, whatever the LogLevel.
    pub verbose: bool,
}

impl Say {
    pub fn new(verbose: bool) -> Say {
        Say {
            level: Level::Shown,
            verbose,
        }
    }

    /// A forward dropped, refused or restored: shown where ssh would show
    /// its own failure line.
    pub fn forward(&self, text: &str) {
        if self.verbose || self.level == Level::Shown {
            line(text);
        }
    }

    /// What ends the run (`--require-forward`): shown where ssh would
    /// show a fatal line.
    pub fn fatal(&self, text: &str) {
        if self.verbose || self.level != Level::Quiet {
            line(text);
        }
    }

    /// `--verbose` only.
    pub fn verbose(&self, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            line(&format!("rosh-ssh: {args}"));
        }
    }
}

/// Whether stderr is a terminal in raw mode (ICANON off): the cursor may
/// sit mid-line (a prompt) and a bare `\n` does not return the carriage.
fn raw_terminal() -> bool {
    nix::sys::termios::tcgetattr(std::io::stderr()).is_ok_and(|t| {
        !t.local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON)
    })
}

/// `text` as one whole line on stderr. In a raw terminal it starts on a
/// fresh line and ends in `\r\n`, as ssh ends its own mid-session lines, so
/// it begins at column 0 and leaves what was on the screen intact.
fn line(text: &str) {
    let bytes = if raw_terminal() {
        format!("\r\n{text}\r\n")
    } else {
        format!("{text}\n")
    };
    // A closed stderr must not end the session: ssh ignores it too.
    let _ = std::io::stderr().write_all(bytes.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_follows_ssh_s_log_level() {
        let table = [
            ("QUIET", Level::Quiet),
            ("SILENT", Level::Quiet),
            ("FATAL", Level::Fatal),
            ("ERROR", Level::Shown),
            ("INFO", Level::Shown),
            ("VERBOSE", Level::Shown),
            ("DEBUG1", Level::Shown),
            ("DEBUG3", Level::Shown),
        ];
        for (log_level, want) in table {
            assert_eq!(Level::of(log_level), want, "{log_level}");
        }
    }
}
