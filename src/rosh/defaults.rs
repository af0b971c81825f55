//! rosh's ssh settings, added only where the user left ssh's own default:
//! ssh keeps the first value it obtains, so a default given on the command
//! line would beat the user's ssh_config. What the user has in effect is
//! `ssh -G` with their arguments; ssh's own default is `ssh -G` with no
//! config at all (`-F /dev/null`), under the same BatchMode (readconf.c
//! fill_default_options: BatchMode makes ServerAliveInterval 300). A setting
//! equal to ssh's default reads as no setting.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// `ssh -G` output: keyword and the rest of the line, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effective(Vec<(String, String)>);

impl Effective {
    pub fn parse(out: &[u8]) -> Effective {
        let text = String::from_utf8_lossy(out);
        Effective(
            text.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
                })
                .collect(),
        )
    }

    /// The first value of `key` (ssh -G prints one line per keyword, but
    /// several for forwards and identity files).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `ssh -G` of `words` followed by `-- host`; None when ssh refuses them
    /// (then ssh says why when the attempt runs).
    pub fn query(ssh: &Path, words: &[OsString], host: &OsString) -> Option<Effective> {
        let out = Command::new(ssh)
            .arg("-G")
            .args(words)
            .arg("--")
            .arg(host)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| Effective::parse(&out.stdout))
    }
}

/// What rosh adds, and what it knows of the user's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// `-o` values to give ssh before the user's options.
    pub options: Vec<String>,
    /// Seconds each connect attempt of the reconnecting ProxyCommand may take:
    /// the user's ConnectTimeout, else 1.
    pub connect_timeout: String,
    /// No ProxyCommand or ProxyJump of the user's: rosh may connect for ssh.
    pub direct: bool,
    /// Below INFO (QUIET, FATAL, ERROR): ssh does not print its
    /// `Connection to HOST closed.` after `~.`.
    pub quiet: bool,
    /// `logverbose none`: the user forces no log lines (and this ssh, 8.5 or
    /// newer, knows LogVerbose; older ones print no such keyword).
    pub log_verbose_free: bool,
}

/// The rule, on the two `ssh -G` outputs (`mine`: the user's; `base`: no
/// config). `alive` is `-a`.
pub fn decide(mine: &Effective, base: &Effective, alive: u32) -> Defaults {
    let default = |key: &str| mine.get(key) == base.get(key);
    let mut options = Vec::new();
    if default("serveraliveinterval") {
        options.push(format!("ServerAliveInterval={alive}"));
    }
    if default("serveralivecountmax") {
        options.push("ServerAliveCountMax=1".into());
    }
    let connect_timeout = match mine.get("connecttimeout") {
        Some(t) if !default("connecttimeout") && t.bytes().all(|b| b.is_ascii_digit()) => t.into(),
        _ => "1".into(),
    };
    let set = |key: &str| mine.get(key).is_some_and(|v| v != "none" && !v.is_empty());
    Defaults {
        options,
        connect_timeout,
        direct: !set("proxycommand") && !set("proxyjump"),
        quiet: matches!(mine.get("loglevel"), Some("QUIET" | "FATAL" | "ERROR")),
        log_verbose_free: mine.get("logverbose") == Some("none"),
    }
}

/// Asks ssh both questions. When the user's arguments are refused, rosh adds
/// nothing: ssh will say what is wrong.
pub fn query(ssh: &Path, words: &[OsString], host: &OsString, alive: u32) -> Option<Defaults> {
    let mine = Effective::query(ssh, words, host)?;
    let batch = mine.get("batchmode").unwrap_or("no");
    let base_words: Vec<OsString> = vec![
        "-F".into(),
        "/dev/null".into(),
        "-o".into(),
        format!("BatchMode={batch}").into(),
    ];
    let base = Effective::query(ssh, &base_words, host)?;
    Some(decide(&mine, &base, alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's `ssh -G -F /dev/null x`, the lines that matter.
    const BASE: &str = "batchmode no\nloglevel INFO\nlogverbose none\nserveralivecountmax 3\n\
                        serveraliveinterval 0\nconnecttimeout none\nproxyusefdpass no\n";

    fn with(changes: &[(&str, &str)]) -> Effective {
        let mut e = Effective::parse(BASE.as_bytes());
        for (k, v) in changes {
            match e.0.iter_mut().find(|(key, _)| key == k) {
                Some(line) => line.1 = v.to_string(),
                None => e.0.push((k.to_string(), v.to_string())),
            }
        }
        e
    }

    #[test]
    fn defaults_only_where_ssh_has_its_own() {
        let base = with(&[]);
        let d = decide(&with(&[]), &base, 5);
        assert_eq!(
            d.options,
            ["ServerAliveInterval=5", "ServerAliveCountMax=1"]
        );
        assert_eq!(d.connect_timeout, "1");
        assert!(d.direct && !d.quiet && d.log_verbose_free);

        let d = decide(&with(&[("serveraliveinterval", "60")]), &base, 5);
        assert_eq!(d.options, ["ServerAliveCountMax=1"]);
        let d = decide(&with(&[("serveralivecountmax", "4")]), &base, 2);
        assert_eq!(d.options, ["ServerAliveInterval=2"]);
        let d = decide(&with(&[("connecttimeout", "7")]), &base, 5);
        assert_eq!(d.connect_timeout, "7");
        // A setting equal to ssh's default reads as none (the documented limit).
        let d = decide(&with(&[("serveralivecountmax", "3")]), &base, 5);
        assert_eq!(d.options.len(), 2);
    }

    #[test]
    fn batch_mode_changes_the_default_compared_with() {
        // BatchMode's default ServerAliveInterval is 300: the base query is
        // made under the same BatchMode, so 300 reads as ssh's own.
        let batch = with(&[("batchmode", "yes"), ("serveraliveinterval", "300")]);
        let d = decide(&batch, &batch, 5);
        assert!(d.options.contains(&"ServerAliveInterval=5".to_string()));
    }

    #[test]
    fn the_users_proxy_and_log_settings() {
        let base = with(&[]);
        assert!(!decide(&with(&[("proxyjump", "gate")]), &base, 5).direct);
        assert!(!decide(&with(&[("proxycommand", "nc %h %p")]), &base, 5).direct);
        for level in ["QUIET", "FATAL", "ERROR"] {
            assert!(
                decide(&with(&[("loglevel", level)]), &base, 5).quiet,
                "{level}"
            );
        }
        for level in ["INFO", "VERBOSE", "DEBUG3"] {
            assert!(
                !decide(&with(&[("loglevel", level)]), &base, 5).quiet,
                "{level}"
            );
        }
        let own = with(&[("logverbose", "kex.c:*")]);
        assert!(!decide(&own, &base, 5).log_verbose_free);
        // Before 8.5 ssh -G has no logverbose line at all.
        let old = Effective(
            with(&[])
                .0
                .into_iter()
                .filter(|(k, _)| k != "logverbose")
                .collect(),
        );
        assert!(!decide(&old, &base, 5).log_verbose_free);
    }

    #[test]
    fn parse_and_get() {
        let e = Effective::parse(b"user me\nlocalforward 1 [h]:2\nlocalforward 3 [h]:4\nflag\n");
        assert_eq!(e.get("user"), Some("me"));
        assert_eq!(e.get("localforward"), Some("1 [h]:2"));
        assert_eq!(e.get("flag"), Some(""));
        assert_eq!(e.get("nope"), None);
    }

    #[test]
    fn asks_the_real_ssh() {
        let ssh = Path::new("/usr/bin/ssh");
        if !ssh.exists() {
            return;
        }
        let words: Vec<OsString> = vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            "ServerAliveInterval=60".into(),
        ];
        let d = query(ssh, &words, &"example.invalid".into(), 5).unwrap();
        assert_eq!(d.options, ["ServerAliveCountMax=1"]);
        assert!(query(ssh, &["-o".into(), "Bogus=1".into()], &"x".into(), 5).is_none());
    }
}
