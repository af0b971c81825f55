//! What the real ssh will do, asked of the real ssh: `ssh -G` with the same
//! arguments prints the effective configuration (Include, Match, Host
//! patterns, tokens and `-F` all honoured by ssh itself).

use crate::forward::{self, Endpoint, Forward, Kind};
use crate::probe::{Family, Opts};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The parts of `ssh -G` rosh-ssh decides with.
#[derive(Clone, Debug, Default)]
pub struct Effective {
    /// Every forward ssh will set up, in `ssh -G` order.
    pub forwards: Vec<Forward>,
    /// The forward lines as `ssh -G` printed them, in its order.
    pub forward_lines: Vec<Vec<u8>>,
    pub probe: Opts,
    pub exit_on_forward_failure: bool,
    /// `loglevel` as ssh prints it (`INFO`, `QUIET`, `FATAL`, ...).
    pub log_level: String,
    /// `logverbose` as ssh prints it (`none` when unset).
    pub log_verbose: String,
    /// `-f` / ForkAfterAuthentication: ssh goes on in the background.
    pub fork_after_authentication: bool,
    /// `controlpersist` as ssh prints it (`no` when a master won't linger).
    pub control_persist: String,
    /// `tunnel` as ssh prints it (`false` when no tun device is asked for).
    pub tunnel: String,
    /// `controlmaster` and `controlpath` as ssh prints them.
    pub control_master: String,
    pub control_path: String,
    /// `ConnectTimeout`, when set.
    pub connect_timeout: Option<std::time::Duration>,
    /// What the release that printed this can do, from its keywords.
    pub caps: Caps,
}

/// What the release that answered `ssh -G` can do, from the keywords it
/// printed (readconf.c dump_client_config prints those it knows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// `logverbose` was printed: 8.5 or later, LogVerbose may be given.
    pub log_verbose: bool,
    /// `forkafterauthentication` was printed: 8.7 or later. Before, `-f`
    /// is seen only in argv (no config keyword sets it).
    pub fork_keyword: bool,
    /// `tag` was printed: 9.4 or later with a tag set (`-P` or `Tag`).
    pub tag: bool,
}

impl Caps {
    /// What rosh-ssh assumes of an ssh whose `ssh -G` printed no dump (no
    /// `hostname` line: a stub ssh in tests): a current release.
    pub const CURRENT: Caps = Caps {
        log_verbose: true,
        fork_keyword: true,
        tag: false,
    };

    /// Notes one `ssh -G` keyword (lowercase, as printed).
    pub fn saw(&mut self, keyword: &[u8]) {
        match keyword {
            b"logverbose" => self.log_verbose = true,
            b"forkafterauthentication" => self.fork_keyword = true,
            b"tag" => self.tag = true,
            _ => {}
        }
    }

    /// The release's config lines are split with argv_split (8.7 on, the
    /// release that also prints `forkafterauthentication`).
    pub fn argv_split_config(&self) -> bool {
        self.fork_keyword
    }

    /// The oldest release that prints what this one printed, for `--verbose`.
    pub fn at_least(&self) -> &'static str {
        if self.tag {
            "9.4"
        } else if self.fork_keyword {
            "8.7"
        } else if self.log_verbose {
            "8.5"
        } else {
            "8.0"
        }
    }
}

/// ssh rejected the arguments: its stderr and exit status, to pass on.
#[derive(Debug)]
pub struct Rejected {
    pub stderr: Vec<u8>,
    pub status: i32,
}

impl Effective {
    /// Parses `ssh -G` output; unknown lines are ignored.
    pub fn parse(out: &[u8]) -> Effective {
        let mut e = Effective {
            log_level: "INFO".into(),
            log_verbose: "none".into(),
            control_persist: "no".into(),
            tunnel: "false".into(),
            control_master: "false".into(),
            control_path: "none".into(),
            ..Effective::default()
        };
        let mut dumped = false;
        for line in out.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (key, value) = match line.iter().position(|&b| b == b' ') {
                Some(p) => (&line[..p], &line[p + 1..]),
                None => (line, &b""[..]),
            };
            e.caps.saw(key);
            dumped |= key == b"hostname";
            match key {
                b"localforward" | b"remoteforward" | b"dynamicforward" => {
                    e.forward_lines.push(line.to_vec());
                    if let Some(f) = Forward::from_ssh_g(line) {
                        e.forwards.push(f);
                    }
                }
                b"gatewayports" => e.probe.gateway_ports = value == b"yes",
                b"streamlocalbindunlink" => e.probe.stream_local_bind_unlink = value == b"yes",
                b"addressfamily" => {
                    e.probe.family = match value {
                        b"inet" => Family::Inet,
                        b"inet6" => Family::Inet6,
                        _ => Family::Any,
                    }
                }
                b"exitonforwardfailure" => e.exit_on_forward_failure = value == b"yes",
                b"loglevel" => e.log_level = String::from_utf8_lossy(value).into_owned(),
                b"logverbose" => e.log_verbose = String::from_utf8_lossy(value).into_owned(),
                b"connecttimeout" => {
                    e.connect_timeout = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .map(std::time::Duration::from_secs)
                }
                b"tunnel" => e.tunnel = String::from_utf8_lossy(value).into_owned(),
                b"controlmaster" => e.control_master = String::from_utf8_lossy(value).into_owned(),
                b"controlpath" => e.control_path = String::from_utf8_lossy(value).into_owned(),
                b"forkafterauthentication" => e.fork_after_authentication = value == b"yes",
                b"controlpersist" => {
                    e.control_persist = String::from_utf8_lossy(value).into_owned()
                }
                _ => {}
            }
        }
        if !dumped {
            e.caps = Caps::CURRENT;
        }
        // dump_cfg_forwards prints a local forward to a unix path twice, as
        // a dynamicforward line too: that shadow is not a forward of its own.
        // One shadow per such forward: a real DynamicForward on the same
        // port prints the same line and must stay.
        let mut shadows: Vec<usize> = Vec::new();
        for g in &e.forwards {
            if g.kind == Kind::Remote || !matches!(g.connect, Some(Endpoint::Path(_))) {
                continue;
            }
            let shadow = (0..e.forwards.len()).find(|&i| {
                let f = &e.forwards[i];
                f.kind == Kind::Dynamic
                    && f.connect.is_none()
                    && f.listen == g.listen
                    && !shadows.contains(&i)
            });
            shadows.extend(shadow);
        }
        shadows.sort_unstable();
        for i in shadows.into_iter().rev() {
            e.forwards.remove(i);
        }
        e
    }
}

impl Effective {
    /// ssh's forwards, read with the help of the forwards the words and the
    /// config files ask for (`known`, in ssh's order): a known forward claims
    /// the lines it prints (a local forward to a path prints two, a `%`
    /// token prints expanded), so a path with a space reads the way it was
    /// written and one forward stays one. Lines no known forward claims are
    /// read as [`Effective::parse`] reads them.
    pub fn resolve(&self, known: &[Forward]) -> Vec<Forward> {
        let lines = &self.forward_lines;
        let mut claimed = vec![false; lines.len()];
        let mut found: Vec<(usize, Forward)> = Vec::new();
        // Exact spellings first, so a `%` pattern can't take another's line.
        for pattern in [false, true] {
            for k in known {
                if pattern != k.has_percent_path() {
                    continue;
                }
                let want = k.ssh_g_lines();
                let mut at: Vec<usize> = Vec::new();
                for w in &want {
                    let hit = (0..lines.len()).find(|&i| {
                        !claimed[i]
                            && !at.contains(&i)
                            && if pattern {
                                forward::percent_match(w, &lines[i])
                            } else {
                                lines[i] == *w
                            }
                    });
                    match hit {
                        Some(i) => at.push(i),
                        None => break,
                    }
                }
                if want.is_empty() || at.len() != want.len() {
                    continue;
                }
                // What ssh binds: the expanded reading that matches `k`.
                let expanded = at
                    .iter()
                    .rev()
                    .flat_map(|&i| Forward::from_ssh_g_all(&lines[i]))
                    .find(|g| k.expands_to(g) || *g == *k);
                let f = match expanded {
                    Some(g) => Forward { kind: k.kind, ..g },
                    None => k.clone(),
                };
                for &i in &at {
                    claimed[i] = true;
                }
                found.push((*at.iter().min().unwrap_or(&0), f));
            }
        }
        let rest: Vec<u8> = lines
            .iter()
            .zip(&claimed)
            .filter(|(_, c)| !**c)
            .flat_map(|(l, _)| l.iter().copied().chain(std::iter::once(b'\n')))
            .collect();
        let rest_lines: Vec<usize> = (0..lines.len()).filter(|&i| !claimed[i]).collect();
        let mut rest_fwds = Effective::parse(&rest).forwards.into_iter();
        // parse drops shadows, so the positions are approximate; only the
        // order among the rest and the claimed matters, and both keep theirs.
        for i in rest_lines {
            match rest_fwds.next() {
                Some(f) => found.push((i, f)),
                None => break,
            }
        }
        found.sort_by_key(|(i, _)| *i);
        found.into_iter().map(|(_, f)| f).collect()
    }
}

/// Runs `ssh -G <words>` and reads what it prints.
pub fn query(ssh: &Path, words: &[OsString]) -> std::io::Result<Result<Effective, Rejected>> {
    Ok(ask(ssh, words)?.map(|out| Effective::parse(&out)))
}

/// Runs `ssh -G <words>`: what it prints, or how it refused.
pub fn ask(ssh: &Path, words: &[OsString]) -> std::io::Result<Result<Vec<u8>, Rejected>> {
    let out = Command::new(ssh)
        .arg0(ssh)
        .arg("-G")
        .args(words)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(Ok(out.stdout))
    } else {
        Ok(Err(Rejected {
            stderr: out.stderr,
            status: out.status.code().unwrap_or(255),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;

    fn resolved(known: &[(u8, &str)], out: &str) -> Vec<Forward> {
        let known: Vec<Forward> = known
            .iter()
            .map(|(l, s)| parse_arg(*l, s.as_bytes()).unwrap())
            .collect();
        Effective::parse(out.as_bytes()).resolve(&known)
    }

    fn path(p: &str) -> Endpoint {
        Endpoint::Path(p.as_bytes().to_vec())
    }

    #[test]
    fn a_path_with_a_space_is_one_forward_read_as_written() {
        let out = "dynamicforward /tmp/a b\nlocalforward /tmp/a b ./rel.sock\n";
        let got = resolved(&[(b'D', "/tmp/a b:./rel.sock")], out);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].listen, path("/tmp/a b"));
        assert_eq!(got[0].connect, Some(path("./rel.sock")));
        // Without the words, the old reading (leftmost split) stands.
        assert_eq!(resolved(&[], out).len(), 2);
    }

    #[test]
    fn a_local_forward_to_a_path_is_one_forward() {
        let out = "dynamicforward 46633\nlocalforward 46633 /var/run/postgresql/.s.PGSQL.5432\n\
                   dynamicforward 1080\n";
        let got = resolved(&[(b'L', "46633:/var/run/postgresql/.s.PGSQL.5432")], out);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].kind, Kind::Local);
        assert_eq!(got[1].ssh_g(), b"dynamicforward 1080");
    }

    #[test]
    fn percent_tokens_match_what_ssh_expanded() {
        // ssh -G -L '/tmp/x/%n %h.sock:/tmp/y.sock' -R '/tmp/x/%n.rs:/tmp/%%y' lab
        let out = "dynamicforward /tmp/x/lab lab.sock\n\
                   localforward /tmp/x/lab lab.sock /tmp/y.sock\n\
                   remoteforward /tmp/x/lab.rs /tmp/%y\n";
        let got = resolved(
            &[
                (b'L', "/tmp/x/%n %h.sock:/tmp/y.sock"),
                (b'R', "/tmp/x/%n.rs:/tmp/%%y"),
            ],
            out,
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].listen, path("/tmp/x/lab lab.sock"));
        assert_eq!(got[0].connect, Some(path("/tmp/y.sock")));
        assert_eq!(got[1].kind, Kind::Remote);
        assert_eq!(got[1].listen, path("/tmp/x/lab.rs"));
        assert_eq!(got[1].connect, Some(path("/tmp/%y")));
        // The written forward is what the expanded one prints as: argv
        // options and config lines are found from it.
        let w = parse_arg(b'R', b"/tmp/x/%n.rs:/tmp/%%y").unwrap();
        assert!(w.prints_as(&got[1]) && got[1].prints_as(&w));
    }

    #[test]
    fn an_exact_spelling_is_claimed_before_a_pattern() {
        let out = "dynamicforward /tmp/x/lab.sock\nlocalforward /tmp/x/lab.sock /tmp/a\n\
                   dynamicforward /tmp/x/other.sock\nlocalforward /tmp/x/other.sock /tmp/a\n";
        let got = resolved(
            &[
                (b'L', "/tmp/x/%n.sock:/tmp/a"),
                (b'L', "/tmp/x/lab.sock:/tmp/a"),
            ],
            out,
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].listen, path("/tmp/x/lab.sock"));
        assert_eq!(got[1].listen, path("/tmp/x/other.sock"));
    }
}
