//! `rosh-ssh --check [--remote] [ssh arguments]`: a report of the forwards
//! ssh would set up, where each comes from, its probe and holder, and what
//! rosh-ssh would do. With `--remote`, one ssh connection (forwards cleared)
//! tells which RemoteForward listen ports are taken on the server and which
//! tmux sessions exist there.

use crate::argv::Args;
use crate::child::End;
use crate::config;
use crate::effective::{self, Effective};
use crate::error::Error;
use crate::forward::{Endpoint, Kind};
use crate::plan::Plan;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs on the server under `sh -c`: the listening TCP sockets from
/// /proc/net (Linux) and the tmux sessions. No quote inside, so any login
/// shell passes it through.
const REMOTE_SCRIPT: &str = "echo @tcp; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; \
echo @tmux; tmux list-sessions 2>&1; echo @end";

/// What the server said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Server {
    /// Ports with a listening socket; None when /proc/net could not be read.
    pub listening: Option<Vec<u16>>,
    pub tmux: Vec<String>,
}

impl Server {
    /// Parses REMOTE_SCRIPT's output.
    pub fn parse(out: &str) -> Server {
        let mut s = Server::default();
        let mut section = "";
        let mut ports = Vec::new();
        for line in out.lines() {
            match line {
                "@tcp" | "@tmux" | "@end" => {
                    section = line;
                    continue;
                }
                _ => {}
            }
            match section {
                "@tcp" => {
                    // "  0: 0100007F:1F92 00000000:0000 0A ..." : state 0A is LISTEN.
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let port = f.get(1).and_then(|a| a.rsplit(':').next());
                    let port = port.and_then(|h| u16::from_str_radix(h, 16).ok());
                    if let (Some(p), Some(&"0A")) = (port, f.get(3)) {
                        ports.push(p);
                    }
                }
                "@tmux" => s.tmux.push(line.to_string()),
                _ => {}
            }
        }
        if out.contains("@tcp\n") && out.lines().any(|l| l.trim_start().starts_with("sl ")) {
            ports.sort_unstable();
            ports.dedup();
            s.listening = Some(ports);
        }
        s
    }
}

pub fn run(ssh: &Path, words: &[OsString], remote: bool) -> Result<End, Error> {
    let args = Args::parse(words.to_vec());
    let eff = match effective::query(ssh, words) {
        Err(e) => return Err(Error::Spawn(ssh.to_path_buf(), e)),
        Ok(Err(rejected)) => {
            let _ = std::io::stderr().write_all(&rejected.stderr);
            return Ok(End::Exited(255));
        }
        Ok(Ok(eff)) => eff,
    };
    let server = if remote {
        Some(ask_server(ssh, &args)?)
    } else {
        None
    };
    let sources = config::sources(
        args.opts
            .iter()
            .rev()
            .find(|o| o.letter == b'F')
            .and_then(|o| o.arg.as_deref()),
    );
    let plan = Plan::make(&args, &eff, &sources);
    let mut out = std::io::stdout().lock();
    let _ = report(&mut out, ssh, &args, &eff, &plan, server.as_ref());
    Ok(End::Exited(0))
}

fn report(
    out: &mut impl Write,
    ssh: &Path,
    args: &Args,
    eff: &Effective,
    plan: &Plan,
    server: Option<&Server>,
) -> std::io::Result<()> {
    writeln!(out, "ssh: {}", ssh.display())?;
    writeln!(
        out,
        "ExitOnForwardFailure {}, LogLevel {}",
        if eff.exit_on_forward_failure {
            "yes"
        } else {
            "no"
        },
        eff.log_level
    )?;
    if plan.decisions.is_empty() {
        writeln!(out, "no forwards: rosh-ssh runs ssh as it is")?;
    }
    for d in &plan.decisions {
        writeln!(out, "{}", String::from_utf8_lossy(&d.forward.ssh_g()))?;
        writeln!(out, "  from: {}", d.origin(args))?;
        let remote = d.forward.kind == Kind::Remote;
        if remote {
            let port = match &d.forward.listen {
                Endpoint::Tcp { port, .. } => Some(*port),
                Endpoint::Path(_) => None,
            };
            let seen = match (server.and_then(|s| s.listening.as_ref()), port) {
                (_, Some(0)) => "port 0: the server picks a free one".to_string(),
                (Some(l), Some(p)) if l.contains(&p) => {
                    format!("taken on the server: port {p} is listening there")
                }
                (Some(_), Some(p)) => format!("free on the server: nothing listens on port {p}"),
                (None, _) if server.is_some() => {
                    "unknown (the server's /proc/net could not be read)".into()
                }
                _ => "on the server (check with --check --remote)".into(),
            };
            writeln!(out, "  probe: {seen}")?;
        } else {
            let reason = d.verdict.reason();
            writeln!(out, "  probe: {}", reason.as_deref().unwrap_or("free"))?;
        }
        let verdict = if d.verdict.drops() {
            "drops it".to_string()
        } else if remote {
            "keeps it; if the server refuses it, ssh goes on without it".into()
        } else {
            "keeps it".into()
        };
        writeln!(out, "  rosh-ssh: {verdict}")?;
    }
    if let Some(s) = server {
        if s.tmux.is_empty() {
            writeln!(out, "tmux sessions: none")?;
        } else {
            writeln!(out, "tmux sessions:")?;
            for t in &s.tmux {
                writeln!(out, "  {t}")?;
            }
        }
    }
    Ok(())
}

/// One ssh connection with every forward cleared, running REMOTE_SCRIPT.
fn ask_server(ssh: &Path, args: &Args) -> Result<Server, Error> {
    // The destination and options only: the user's remote command is not run.
    let words = &args.words[..args.command.min(args.words.len())];
    let out = Command::new(ssh)
        .arg0(ssh)
        .args(["-T", "-o", "ClearAllForwardings=yes"])
        .args(words)
        .arg(format!("sh -c '{REMOTE_SCRIPT}'"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Spawn(ssh.to_path_buf(), e))?;
    if !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("@end") {
        return Err(Error::Usage(format!(
            "--check --remote: ssh to the server failed ({})",
            out.status
        )));
    }
    Ok(Server::parse(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_and_tmux() {
        let out = "@tcp\n  sl  local_address rem_address   st\n\
                   0: 0100007F:1F92 00000000:0000 0A 0\n\
                   1: 0100007F:0016 0100007F:9C40 01 0\n\
                   sl  local_address\n\
                   0: 00000000000000000000000001000000:1F92 0000:0000 0A 0\n\
                   @tmux\ndefault: 1 windows (created Sat)\n@end\n";
        let s = Server::parse(out);
        assert_eq!(s.listening, Some(vec![8082]));
        assert_eq!(s.tmux, vec!["default: 1 windows (created Sat)"]);
        let none = Server::parse("@tcp\n@tmux\nno server running on /tmp/tmux-0/default\n@end\n");
        assert_eq!(none.listening, None);
        assert_eq!(none.tmux.len(), 1);
    }
}
