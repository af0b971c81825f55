//! One forward, one line: the forward in the user's own spelling (`-L
//! 46633:/run/pg.sock`, `LocalForward 3131 localhost:3131
//! (~/.ssh/config:12)`), for warnings, `--dry-run`, `--verbose` and
//! `--check` alike. Every message that names a forward calls [`forward`].

use crate::argv::Args;
use crate::config::Origin;
use crate::forward::{Forward, Kind};
use crate::plan::{Decision, Verdict};
use crate::quote;
use std::ffi::OsStr;

/// The forward as the user asked for it: the first command-line option
/// that did, else the config line (its text, then `(file:line)`), else
/// `ssh -G`'s line.
pub fn forward(d: &Decision, args: &Args) -> String {
    if let Some(o) = d.opts.first().map(|&n| &args.opts[n]) {
        let arg = o.arg.as_deref().unwrap_or(OsStr::new(""));
        return format!(
            "-{} {}",
            o.letter as char,
            String::from_utf8_lossy(&quote::word(arg))
        );
    }
    if let Some(o) = &d.from_config {
        return config_line(o, &home());
    }
    ssh_g(&d.forward)
}

/// The line's text, then `(file:line)` with the home directory written `~`.
fn config_line(o: &Origin, home: &Option<String>) -> String {
    let from = format!("{}:{}", o.file.display(), o.line);
    let shown = match home {
        Some(h)
            if !h.is_empty()
                && from.starts_with(h.as_str())
                && from[h.len()..].starts_with('/') =>
        {
            format!("~{}", &from[h.len()..])
        }
        _ => from,
    };
    if o.text.is_empty() {
        return shown;
    }
    format!("{} ({shown})", String::from_utf8_lossy(&o.text))
}

fn home() -> Option<String> {
    std::env::var_os("HOME").map(|h| h.to_string_lossy().trim_end_matches('/').to_string())
}

/// ssh -G's line, one line: for a local forward to a path ssh prints a
/// dynamicforward shadow too; the localforward line is the forward.
pub fn ssh_g(f: &Forward) -> String {
    let lines = f.ssh_g_lines();
    lines
        .last()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}

/// Why a forward can't be had, in words: `in use: ADDR, held by pid N
/// (...)`; `None` when nothing stands against it.
pub fn reason(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Busy { busy, holders } if holders.0.is_empty() => Some(busy.to_string()),
        Verdict::Busy { busy, holders } => Some(format!("{busy}, {holders}")),
        Verdict::OwnMaster { .. } | Verdict::Free => None,
    }
}

/// What the probe found, for `--verbose`: the reason against it, or why
/// nothing stands against it.
pub fn state(d: &Decision) -> String {
    match &d.verdict {
        Verdict::OwnMaster { pid } => {
            format!("held by this host's ControlMaster (pid {pid}), which has it: kept")
        }
        Verdict::Free if d.forward.kind == Kind::Remote => "on the server, not probed".into(),
        Verdict::Free => "free".into(),
        v => reason(v).unwrap_or_default(),
    }
}

/// `NAME: REASON` for a warning, with `fallback` when there is no reason.
pub fn with_reason(d: &Decision, args: &Args, fallback: &str) -> String {
    format!(
        "{}: {}",
        forward(d, args),
        reason(&d.verdict).as_deref().unwrap_or(fallback)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_line_names_text_file_and_line() {
        let o = Origin {
            file: "/home/u/.ssh/config".into(),
            line: 2,
            text: b"LocalForward 3131 localhost:3131".to_vec(),
        };
        assert_eq!(
            config_line(&o, &None),
            "LocalForward 3131 localhost:3131 (/home/u/.ssh/config:2)"
        );
        assert_eq!(
            config_line(&o, &Some("/home/u".into())),
            "LocalForward 3131 localhost:3131 (~/.ssh/config:2)"
        );
        // A home that is only a prefix of the path's first name is no home.
        assert_eq!(
            config_line(&o, &Some("/home/u/.s".into())),
            "LocalForward 3131 localhost:3131 (/home/u/.ssh/config:2)"
        );
        // No text: the place alone.
        let bare = Origin {
            text: Vec::new(),
            ..o
        };
        assert_eq!(config_line(&bare, &None), "/home/u/.ssh/config:2");
    }

    #[test]
    fn reason_and_state_of_each_verdict() {
        use crate::holder::{Holder, Holders, Unknown};
        let at: std::net::SocketAddr = "127.0.0.1:3131".parse().unwrap();
        let busy = |who: Option<Result<Holder, Unknown>>| Verdict::Busy {
            busy: crate::probe::Busy::Tcp {
                addrs: vec![(at, nix::errno::Errno::EADDRINUSE)],
            },
            holders: Holders(who.into_iter().map(|w| (vec![at], w)).collect()),
        };
        let seven = Holder {
            pid: 7,
            cmdline: b"ssh -fN grav".to_vec(),
        };
        let table = [
            (Verdict::Free, None, "free"),
            (
                Verdict::OwnMaster { pid: 9 },
                None,
                "held by this host's ControlMaster (pid 9), which has it: kept",
            ),
            (
                busy(None),
                Some("in use: 127.0.0.1:3131"),
                "in use: 127.0.0.1:3131",
            ),
            (
                busy(Some(Ok(seven))),
                Some("in use: 127.0.0.1:3131, held by pid 7 (ssh -fN grav)"),
                "in use: 127.0.0.1:3131, held by pid 7 (ssh -fN grav)",
            ),
            (
                busy(Some(Err(Unknown::OtherUser { uid: 5 }))),
                Some("in use: 127.0.0.1:3131, held by a process of uid 5 (not visible)"),
                "in use: 127.0.0.1:3131, held by a process of uid 5 (not visible)",
            ),
        ];
        for (v, want_reason, want_state) in table {
            assert_eq!(reason(&v).as_deref(), want_reason, "{v:?}");
            let d = Decision {
                forward: crate::forward::parse_arg(b'L', b"3131:h:22").unwrap(),
                opts: Vec::new(),
                verdict: v,
                from_config: None,
            };
            assert_eq!(state(&d), want_state);
        }
        // A remote forward with nothing against it: not probed, not "free".
        let d = Decision {
            forward: crate::forward::parse_arg(b'R', b"8082:h:22").unwrap(),
            opts: Vec::new(),
            verdict: Verdict::Free,
            from_config: None,
        };
        assert_eq!(state(&d), "on the server, not probed");
    }

    #[test]
    fn ssh_g_is_one_line() {
        let f =
            crate::forward::parse_arg(b'L', b"46633:/var/run/postgresql/.s.PGSQL.5432").unwrap();
        assert_eq!(
            ssh_g(&f),
            "localforward 46633 /var/run/postgresql/.s.PGSQL.5432"
        );
    }
}
