//! rosh-ssh's plumbing: the words it puts in front of the user's on ssh's
//! command line, built here (launch.rs) and recognised here (holder.rs), so
//! that a process list can show the words the user typed and the two sides
//! can never drift apart.
//!
//! The plumbing is a prefix, in this order, each part optional:
//! `-o ExitOnForwardFailure=yes|no`, `-E DIR/log`, `-o LogVerbose=LIST`,
//! `-o ControlMaster=yes -o ControlPath=DIR/ctl -o ControlPersist=no`,
//! `-F DIR/ssh_config`, where each DIR is a private directory of
//! tmpdir.rs (`rosh-ssh.XXXXXX`). Order does not matter to ssh (no two
//! parts set the same option, and the user's `-E`/`-F` are cut from their
//! words); a fixed order makes the prefix recognisable.
//!
//! Recognised only with at least one private path in it: a lone `-o
//! ExitOnForwardFailure=...` (a run whose `-E` file could not be opened,
//! with no restore) reads the same as the user's own option and is left
//! as it is. The other way round, a word of the user's is taken for
//! plumbing only where it is a plumbing word itself (rosh-ssh's own forced
//! LogVerbose list, a path in one of its private directories). A ControlPersist master started through rosh-ssh outlives it
//! (and its parent is then init), so the words, not the parent, tell.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// readconf.c LogVerbose: the functions whose messages name a failed
/// forward (or, for a remote forward, its answer), forced out when the
/// user's LogLevel would hide them. ssh tags a forced line (log.c
/// `sshlogv`), so rosh-ssh can hold exactly those lines back from the user.
pub const FORCED: &str = "ssh.c:ssh_confirm_remote_forward():*,ssh.c:ssh_init_forwarding():*,\
channels.c:channel_setup_fwd_listener_tcpip():*,misc.c:unix_listener():*,\
mux.c:mux_client_forward():*,mux.c:mux_client_forwards():*";

/// The log FIFO's name in the private directory.
pub const LOG: &str = "log";
/// The control socket's name in its private directory.
pub const CTL: &str = "ctl";
/// The config copy's name (config.rs `rewrite`; `ssh_config.N` if taken).
pub const CONFIG: &str = "ssh_config";

/// What rosh-ssh adds to one run of ssh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plumbing {
    /// `-o ExitOnForwardFailure=yes|no` (yes for `--require-forward`).
    pub exit_on_forward_failure: Option<bool>,
    /// `-E FIFO`: ssh's log, read by rosh-ssh.
    pub log: Option<PathBuf>,
    /// `-o LogVerbose=VALUE`, made by [`log_verbose`].
    pub log_verbose: Option<String>,
    /// `-o ControlMaster=yes -o ControlPath=CTL -o ControlPersist=no`: a
    /// private master to restore through.
    pub control: Option<PathBuf>,
    /// `-F COPY`: the private config copy without the dropped forwards.
    pub config: Option<PathBuf>,
}

/// The LogVerbose value that forces out the failure messages (blame.rs
/// `FORCED`) after the user's own list, which it must not replace.
pub fn log_verbose(theirs: Option<&str>) -> String {
    match theirs {
        Some(t) => format!("{t},{FORCED}"),
        None => FORCED.to_string(),
    }
}

impl Plumbing {
    /// The words, to go before the user's.
    pub fn words(&self) -> Vec<OsString> {
        fn opt(w: &mut Vec<OsString>, o: impl Into<OsString>) {
            w.push("-o".into());
            w.push(o.into());
        }
        let mut w: Vec<OsString> = Vec::new();
        if let Some(yes) = self.exit_on_forward_failure {
            let v = if yes { "yes" } else { "no" };
            opt(&mut w, format!("ExitOnForwardFailure={v}"));
        }
        if let Some(fifo) = &self.log {
            w.push("-E".into());
            w.push(fifo.into());
        }
        if let Some(v) = &self.log_verbose {
            opt(&mut w, format!("LogVerbose={v}"));
        }
        if let Some(ctl) = &self.control {
            opt(&mut w, "ControlMaster=yes");
            let mut path = OsString::from("ControlPath=");
            path.push(ctl);
            opt(&mut w, path);
            opt(&mut w, "ControlPersist=no");
        }
        if let Some(top) = &self.config {
            w.push("-F".into());
            w.push(top.into());
        }
        w
    }

    /// Reads the plumbing at the start of `words` (ssh's arguments, without
    /// argv[0]): what it was and the user's words after it. `None` when the
    /// words do not start with rosh-ssh's plumbing.
    pub fn strip(words: &[OsString]) -> Option<(Plumbing, &[OsString])> {
        let mut p = Plumbing::default();
        let mut rest = words;
        let b = |w: &OsString| w.as_bytes().to_vec();
        let opt = |rest: &[OsString], key: &str| -> Option<OsString> {
            match rest {
                [o, v, ..] if o == "-o" => v
                    .as_bytes()
                    .strip_prefix(key.as_bytes())
                    .map(|v| OsStr::from_bytes(v).to_owned()),
                _ => None,
            }
        };
        if let Some(v) = opt(rest, "ExitOnForwardFailure=") {
            p.exit_on_forward_failure = match v.as_bytes() {
                b"yes" => Some(true),
                b"no" => Some(false),
                _ => None,
            };
            if p.exit_on_forward_failure.is_some() {
                rest = &rest[2..];
            }
        }
        if let [e, fifo, ..] = rest
            && e == "-E"
            && private(Path::new(fifo), |n| n == LOG.as_bytes())
        {
            p.log = Some(PathBuf::from(fifo));
            rest = &rest[2..];
        }
        if let Some(v) = opt(rest, "LogVerbose=") {
            let v = v.to_string_lossy().into_owned();
            if v == FORCED || v.ends_with(&format!(",{FORCED}")) {
                p.log_verbose = Some(v);
                rest = &rest[2..];
            }
        }
        if let [m, master, c, path, q, persist, ..] = rest
            && [m, c, q].iter().all(|o| *o == "-o")
            && master == "ControlMaster=yes"
            && persist == "ControlPersist=no"
            && let Some(ctl) = b(path).strip_prefix(b"ControlPath=")
            && private(Path::new(OsStr::from_bytes(ctl)), |n| n == CTL.as_bytes())
        {
            p.control = Some(PathBuf::from(OsString::from_vec(ctl.to_vec())));
            rest = &rest[6..];
        }
        if let [f, top, ..] = rest
            && f == "-F"
            && private(Path::new(top), is_config_name)
        {
            p.config = Some(PathBuf::from(top));
            rest = &rest[2..];
        }
        // A private path makes it ours; see the module docs.
        let ours = p.log.is_some() || p.control.is_some() || p.config.is_some();
        ours.then_some((p, rest))
    }
}

/// `ssh_config` or `ssh_config.N` (config.rs `create_unique`).
fn is_config_name(n: &[u8]) -> bool {
    match n.strip_prefix(CONFIG.as_bytes()) {
        Some([]) => true,
        Some([b'.', digits @ ..]) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// An absolute path `.../rosh-ssh.XXXXXX/NAME` with `name(NAME)`: a file in
/// one of rosh-ssh's private directories.
fn private(p: &Path, name: impl Fn(&[u8]) -> bool) -> bool {
    let (Some(file), Some(dir)) = (p.file_name(), p.parent().and_then(Path::file_name)) else {
        return false;
    };
    p.is_absolute() && name(file.as_bytes()) && crate::tmpdir::is_private_name(dir.as_bytes())
}

/// A process's `/proc/PID/cmdline` (NUL-separated words) with rosh-ssh's
/// plumbing taken out: argv[0], then the user's words. Unchanged when the
/// words after argv[0] do not start with the plumbing.
pub fn unplumbed(cmdline: &[u8]) -> Vec<u8> {
    let body = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
    let mut words = body.split(|&b| b == 0);
    let Some(argv0) = words.next() else {
        return cmdline.to_vec();
    };
    let rest: Vec<OsString> = words.map(|w| OsString::from_vec(w.to_vec())).collect();
    let Some((_, user)) = Plumbing::strip(&rest) else {
        return cmdline.to_vec();
    };
    let mut out = argv0.to_vec();
    for w in user {
        out.push(0);
        out.extend_from_slice(w.as_bytes());
    }
    if cmdline.ends_with(b"\0") {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/run/user/1000/rosh-ssh.Xy12Ab";
    const SHORT: &str = "/tmp/rosh-ssh.q9ZZ0a";

    fn os(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    /// Every plumbing rosh-ssh can build: each part present or not, each
    /// value it takes.
    fn every() -> Vec<Plumbing> {
        let mut out = Vec::new();
        for eoff in [None, Some(false), Some(true)] {
            for log in [None, Some(PathBuf::from(DIR).join(LOG))] {
                let lvs = [
                    None,
                    Some(log_verbose(None)),
                    Some(log_verbose(Some("sshconnect.c:*"))),
                ];
                for lv in lvs {
                    for control in [
                        None,
                        Some(PathBuf::from(DIR).join(CTL)),
                        Some(PathBuf::from(SHORT).join(CTL)),
                    ] {
                        for config in [
                            None,
                            Some(PathBuf::from(DIR).join(CONFIG)),
                            Some(PathBuf::from(DIR).join("ssh_config.3")),
                        ] {
                            out.push(Plumbing {
                                exit_on_forward_failure: eoff,
                                log: log.clone(),
                                log_verbose: lv.clone(),
                                control: control.clone(),
                                config,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The user's words, some of them looking like plumbing.
    fn users() -> Vec<Vec<OsString>> {
        vec![
            os(&[]),
            os(&["grav"]),
            os(&["-fN", "grav"]),
            os(&["-o", "ExitOnForwardFailure=yes", "-L", "3131:h:22", "grav"]),
            os(&["-E", "/tmp/my.log", "grav", "ls -l"]),
            os(&["-F", "/home/me/.ssh/other", "grav"]),
            os(&["-o", "ControlMaster=yes", "-o", "ControlPath=/x/ctl", "h"]),
            os(&["-o", "LogVerbose=sshconnect.c:*", "h"]),
        ]
    }

    #[test]
    fn strip_gives_back_the_users_words_for_every_plumbing() {
        let mut checked = 0;
        for p in every() {
            let words = p.words();
            let ours = p.log.is_some() || p.control.is_some() || p.config.is_some();
            for user in users() {
                let all: Vec<OsString> = words.iter().chain(&user).cloned().collect();
                let got = Plumbing::strip(&all);
                if ours {
                    let (q, rest) = got.unwrap_or_else(|| panic!("not recognised: {all:?}"));
                    assert_eq!(q, p, "{all:?}");
                    assert_eq!(rest, user.as_slice(), "{all:?}");
                    checked += 1;
                } else {
                    // A lone ExitOnForwardFailure reads as the user's own.
                    assert_eq!(got, None, "{all:?}");
                }
            }
        }
        assert_eq!(checked, (3 * 2 * 3 * 3 * 3 - 3 * 3) * 8, "combinations");
    }

    #[test]
    fn words_in_order() {
        let p = Plumbing {
            exit_on_forward_failure: Some(false),
            log: Some(PathBuf::from(DIR).join(LOG)),
            log_verbose: Some(log_verbose(Some("a.c:*"))),
            control: Some(PathBuf::from(SHORT).join(CTL)),
            config: Some(PathBuf::from(DIR).join(CONFIG)),
        };
        let want = [
            "-o".to_string(),
            "ExitOnForwardFailure=no".into(),
            "-E".into(),
            format!("{DIR}/log"),
            "-o".into(),
            format!("LogVerbose=a.c:*,{FORCED}"),
            "-o".into(),
            "ControlMaster=yes".into(),
            "-o".into(),
            format!("ControlPath={SHORT}/ctl"),
            "-o".into(),
            "ControlPersist=no".into(),
            "-F".into(),
            format!("{DIR}/ssh_config"),
        ];
        assert_eq!(
            p.words(),
            os(&want.iter().map(String::as_str).collect::<Vec<_>>())
        );
        assert_eq!(Plumbing::default().words(), Vec::<OsString>::new());
    }

    #[test]
    fn what_is_not_plumbing_is_left_alone() {
        let table: &[&[&str]] = &[
            &[],
            &["grav"],
            // The user's own options, however plumbing-like.
            &["-o", "ExitOnForwardFailure=no", "grav"],
            &["-E", "/tmp/log", "grav"],
            &["-E", "/tmp/rosh-ssh.Xy12Ab/other", "grav"],
            &["-E", "rosh-ssh.Xy12Ab/log", "grav"],
            &["-E", "/tmp/rosh-ssh.short/log", "grav"],
            &[
                "-o",
                "LogVerbose=sshconnect.c:*",
                "-E",
                "/tmp/rosh-ssh.Xy12Ab/log",
            ],
            &[
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPath=/tmp/rosh-ssh.Xy12Ab/ctl",
                "h",
            ],
            &["-F", "/tmp/rosh-ssh.Xy12Ab/ssh_config.x", "h"],
            &["-F", "/tmp/rosh-ssh.Xy12Ab/ssh_configs", "h"],
        ];
        for words in table {
            assert_eq!(Plumbing::strip(&os(words)), None, "{words:?}");
        }
    }

    #[test]
    fn unplumbed_cmdlines() {
        let nul = |ws: &[&str]| -> Vec<u8> {
            let mut v = ws.join("\0").into_bytes();
            v.push(0);
            v
        };
        let log = format!("{DIR}/log");
        let table: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (
                nul(&[
                    "/usr/bin/ssh",
                    "-o",
                    "ExitOnForwardFailure=no",
                    "-E",
                    &log,
                    "-fN",
                    "grav",
                ]),
                nul(&["/usr/bin/ssh", "-fN", "grav"]),
            ),
            (
                nul(&["/usr/bin/ssh", "-fN", "grav"]),
                nul(&["/usr/bin/ssh", "-fN", "grav"]),
            ),
            // Nothing after the plumbing.
            (nul(&["ssh", "-E", &log]), nul(&["ssh"])),
            (Vec::new(), Vec::new()),
            (b"nc".to_vec(), b"nc".to_vec()),
        ];
        for (raw, want) in table {
            assert_eq!(unplumbed(&raw), want, "{}", String::from_utf8_lossy(&raw));
        }
    }
}
