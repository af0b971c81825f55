//! What the real ssh will do, asked of the real ssh: `ssh -G` with the same
//! arguments prints the effective configuration (Include, Match, Host
//! patterns, tokens and `-F` all honoured by ssh itself).

use crate::forward::{Endpoint, Forward, Kind};
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
        for line in out.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (key, value) = match line.iter().position(|&b| b == b' ') {
                Some(p) => (&line[..p], &line[p + 1..]),
                None => (line, &b""[..]),
            };
            match key {
                b"localforward" | b"remoteforward" | b"dynamicforward" => {
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

/// Runs `ssh -G <words>` and reads what it prints.
pub fn query(ssh: &Path, words: &[OsString]) -> std::io::Result<Result<Effective, Rejected>> {
    let out = Command::new(ssh)
        .arg0(ssh)
        .arg("-G")
        .args(words)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(Ok(Effective::parse(&out.stdout)))
    } else {
        Ok(Err(Rejected {
            stderr: out.stderr,
            status: out.status.code().unwrap_or(255),
        }))
    }
}
