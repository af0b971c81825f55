//! One forward, one line: the forward in the user's own spelling (`-L
//! 46633:/run/pg.sock`, `LocalForward 3131 localhost:3131
//! (~/.ssh/config:12)`), for warnings, `--dry-run`, `--verbose` and
//! `--check` alike. Every message that names a forward calls [`forward`].

use crate::argv::Args;
use crate::forward::Forward;
use crate::plan::Decision;
use crate::quote;
use std::ffi::OsStr;
use std::path::Path;

/// The forward as the user asked for it: the first command-line option
/// that did, else the first config line (its text, then `(file:line)`),
/// else `ssh -G`'s line.
pub fn forward(d: &Decision, args: &Args) -> String {
    if let Some(o) = d.opts.first().map(|&n| &args.opts[n]) {
        let arg = o.arg.as_deref().unwrap_or(OsStr::new(""));
        return format!(
            "-{} {}",
            o.letter as char,
            String::from_utf8_lossy(&quote::word(arg))
        );
    }
    if let Some(at) = &d.from_config {
        return config_line(at, &home());
    }
    ssh_g(&d.forward)
}

/// `from` is `file:line`: that line's text, trimmed, then `(file:line)`
/// with the home directory written `~`.
fn config_line(from: &str, home: &Option<String>) -> String {
    let shown = match home {
        Some(h)
            if !h.is_empty()
                && from.starts_with(h.as_str())
                && from[h.len()..].starts_with('/') =>
        {
            format!("~{}", &from[h.len()..])
        }
        _ => from.to_string(),
    };
    let text = from.rsplit_once(':').and_then(|(file, n)| {
        let n: usize = n.parse().ok()?;
        let bytes = std::fs::read(Path::new(file)).ok()?;
        let line = bytes.split(|&b| b == b'\n').nth(n.checked_sub(1)?)?;
        let line = String::from_utf8_lossy(line);
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        (!line.is_empty()).then(|| line.to_string())
    });
    match text {
        Some(t) => format!("{t} ({shown})"),
        None => shown,
    }
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

/// What to say of a forward with no reason against it: a remote forward
/// listens on the server, which the local probe never sees.
pub fn unprobed(d: &Decision) -> &'static str {
    if d.forward.kind == crate::forward::Kind::Remote {
        "on the server, not probed"
    } else {
        "free"
    }
}

/// `NAME: REASON` for a warning.
pub fn with_reason(d: &Decision, args: &Args, fallback: &str) -> String {
    format!(
        "{}: {}",
        forward(d, args),
        d.verdict.reason().as_deref().unwrap_or(fallback)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_line_names_text_file_and_line() {
        let dir = crate::tmpdir::PrivateDir::new().unwrap();
        let f = dir.path().join("config");
        std::fs::write(&f, "Host x\n  LocalForward 3131 localhost:3131\n").unwrap();
        let from = format!("{}:2", f.display());
        assert_eq!(
            config_line(&from, &None),
            format!("LocalForward 3131 localhost:3131 ({from})")
        );
        let home = Some(dir.path().display().to_string());
        assert_eq!(
            config_line(&from, &home),
            "LocalForward 3131 localhost:3131 (~/config:2)"
        );
        // A line past the end: the place alone.
        let far = format!("{}:9", f.display());
        assert_eq!(config_line(&far, &None), far);
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
