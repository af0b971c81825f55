//! rosh-ssh's environment switches (`ROSH_VERBOSE`, `ROSH_REQUIRE_FORWARD`,
//! `ROSH_RESTORE`, and the rosh function's `ROSH_END_SSHD`), all read by
//! [`read`] with one rule: `1`/`yes`/`true`/`on`
//! are on, `0`/`no`/`false`/`off` and the empty value are off, in any case;
//! anything else is an error that names the variable, before anything runs.
//!
//! A value read loosely is a switch silently off (`ROSH_REQUIRE_FORWARD=YES`
//! once ran the command without the guarantee it asked for); refusing to
//! guess costs one line and exit 255.

use crate::error::Error;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// The switches, each as the environment set it (unset: its default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switches {
    /// `ROSH_VERBOSE` (default off).
    pub verbose: bool,
    /// `ROSH_REQUIRE_FORWARD` (default off).
    pub require_forward: bool,
    /// `ROSH_RESTORE` (default on; off is `--no-restore`).
    pub restore: bool,
    /// `ROSH_END_SSHD` (default on; off is rosh's `--keep-sshd`): on
    /// reattach, the sshd of the loop's previous connection is ended.
    pub end_sshd: bool,
}

/// Every switch: its variable and its value when unset.
pub const SWITCHES: [(&str, bool); 4] = [
    ("ROSH_VERBOSE", false),
    ("ROSH_REQUIRE_FORWARD", false),
    ("ROSH_RESTORE", true),
    ("ROSH_END_SSHD", true),
];

/// The words that mean on and off, compared without regard to case.
const ON: [&[u8]; 4] = [b"1", b"yes", b"true", b"on"];
const OFF: [&[u8]; 5] = [b"", b"0", b"no", b"false", b"off"];

/// Reads every switch from `env`; the first one that is not a switch is the
/// error (in [`SWITCHES`] order).
pub fn read(env: impl Fn(&str) -> Option<OsString>) -> Result<Switches, Error> {
    let mut on = [false; SWITCHES.len()];
    for (slot, (name, default)) in on.iter_mut().zip(SWITCHES) {
        *slot = match env(name) {
            None => default,
            Some(v) => value(v.as_bytes()).ok_or_else(|| Error::Switch {
                name,
                value: v.clone(),
            })?,
        };
    }
    let [verbose, require_forward, restore, end_sshd] = on;
    Ok(Switches {
        verbose,
        require_forward,
        restore,
        end_sshd,
    })
}

/// One value: `Some(on)`, or `None` when it is not a switch value.
pub fn value(v: &[u8]) -> Option<bool> {
    let is = |words: &[&[u8]]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
    if is(&ON) {
        Some(true)
    } else if is(&OFF) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(&str, OsString)> = pairs.iter().map(|&(k, v)| (k, v.into())).collect();
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn value_table() {
        let table: &[(&[u8], Option<bool>)] = &[
            (b"1", Some(true)),
            (b"yes", Some(true)),
            (b"YES", Some(true)),
            (b"True", Some(true)),
            (b"on", Some(true)),
            (b"ON", Some(true)),
            (b"", Some(false)),
            (b"0", Some(false)),
            (b"no", Some(false)),
            (b"No", Some(false)),
            (b"FALSE", Some(false)),
            (b"off", Some(false)),
            (b"oFf", Some(false)),
            (b"maybe", None),
            (b"2", None),
            (b" 1", None),
            (b"1 ", None),
            (b"yes\n", None),
            (b"y", None),
            (b"n", None),
            (b"enabled", None),
            (b"\xff", None),
        ];
        for (v, want) in table {
            assert_eq!(value(v), *want, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn defaults_when_unset() {
        assert_eq!(
            read(env(&[])).unwrap(),
            Switches {
                verbose: false,
                require_forward: false,
                restore: true,
                end_sshd: true
            }
        );
    }

    #[test]
    fn each_switch_reads_every_spelling() {
        let s = read(env(&[
            ("ROSH_VERBOSE", "Yes"),
            ("ROSH_REQUIRE_FORWARD", "TRUE"),
            ("ROSH_RESTORE", "Off"),
            ("ROSH_END_SSHD", "no"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            Switches {
                verbose: true,
                require_forward: true,
                restore: false,
                end_sshd: false
            }
        );
        // Empty is off, for every switch (ROSH_RESTORE's off is no restore).
        let s = read(env(&[
            ("ROSH_VERBOSE", ""),
            ("ROSH_REQUIRE_FORWARD", ""),
            ("ROSH_RESTORE", ""),
            ("ROSH_END_SSHD", ""),
        ]))
        .unwrap();
        assert!(
            !s.verbose && !s.require_forward && !s.restore && !s.end_sshd,
            "{s:?}"
        );
        assert!(read(env(&[("ROSH_RESTORE", "on")])).unwrap().restore);
        assert!(read(env(&[("ROSH_END_SSHD", "ON")])).unwrap().end_sshd);
    }

    #[test]
    fn a_value_that_is_no_switch_names_its_variable() {
        for (name, _) in SWITCHES {
            let e = read(env(&[(name, "maybe")])).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{name}=maybe: not a switch (use 1/yes/true/on or 0/no/false/off)")
            );
        }
        // The value is shown quoted and printable: one line, whatever it holds.
        let e = read(env(&[("ROSH_VERBOSE", "a b\n\x1b[2J")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ROSH_VERBOSE='a b??[2J': not a switch (use 1/yes/true/on or 0/no/false/off)"
        );
    }
}
