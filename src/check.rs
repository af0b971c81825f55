//! `rosh-ssh --check [--remote] [ssh arguments]`: a report of the forwards
//! ssh would set up, where each comes from, its probe and holder, and what
//! rosh-ssh would do. With `--remote`, one ssh connection (forwards cleared)
//! tells which RemoteForward listen ports are taken on the server, who
//! holds them (remote_holder.rs), and which tmux sessions exist there.

use crate::argv::Args;
use crate::child::End;
use crate::effective::{self, Effective};
use crate::error::Error;
use crate::forward::{Endpoint, Kind};
use crate::plan::Plan;
use crate::remote_holder::{self, Holder, Procs};
use crate::{config, describe};
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs on the server under `sh -c`: the listening TCP sockets from
/// /proc/net (Linux), the user's processes and the sockets they hold
/// (remote_holder.rs), then the tmux sessions on every socket in tmux's
/// directory for this user (`tmux -L NAME` lives there too, so the socket
/// `rosh -L NAME` uses is among them). No single quote inside, so any login
/// shell passes it through.
fn remote_script() -> String {
    const TCP: &str = "echo @tcp4; cat /proc/net/tcp 2>/dev/null; \
echo @tcp6; cat /proc/net/tcp6 2>/dev/null; ";
    const TMUX: &str = "echo @tmux; \
if command -v tmux >/dev/null 2>&1; then \
d=\"${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)\"; for s in \"$d\"/*; do \
[ -S \"$s\" ] || continue; echo \"@socket ${s##*/}\"; tmux -S \"$s\" list-sessions 2>&1; \
done; else echo @notmux; fi; echo @end";
    [TCP, remote_holder::SCRIPT, TMUX].concat()
}

/// A listening TCP socket on the server (/proc/net/tcp{,6}).
#[derive(Debug, PartialEq, Eq)]
pub struct Listener {
    pub addr: (IpAddr, u16),
    /// Its owner: the uid of the process that made it.
    pub uid: u32,
    pub inode: u64,
}

/// The tmux sessions on one socket of the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Socket {
    pub name: String,
    /// `None`: a socket file with no server behind it.
    pub sessions: Option<Vec<String>>,
}

/// What the server said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Server {
    /// Listening TCP sockets (address, port); None when /proc/net/tcp
    /// could not be read (not Linux, or /proc hidden).
    pub listening: Option<Vec<(IpAddr, u16)>>,
    /// /proc/net/tcp6 was there: the server has IPv6.
    pub ipv6: bool,
    /// tmux is not installed there.
    pub no_tmux: bool,
    pub tmux: Vec<Socket>,
    /// Every listening socket, with its owner and inode.
    pub listeners: Vec<Listener>,
    /// The user's processes there (remote_holder.rs).
    pub procs: Procs,
}

/// A /proc/net/tcp{,6} local address: hex words in host byte order.
fn proc_addr(hex: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = hex.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let words: Vec<u32> = (0..a.len() / 8)
        .map(|i| u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match (a.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        (32, ws) => {
            let mut b = [0u8; 16];
            for (i, w) in ws.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

impl Server {
    /// Parses REMOTE_SCRIPT's output.
    pub fn parse(out: &str) -> Server {
        let mut s = Server::default();
        let mut section = "";
        let mut ports = Vec::new();
        let mut seen_tcp4 = false;
        let mut procs = Vec::new();
        let mut established = Vec::new();
        for line in out.lines() {
            match line {
                "@tcp4" | "@tcp6" | "@procs" | "@tmux" | "@end" => {
                    section = line;
                    continue;
                }
                "@notmux" => {
                    s.no_tmux = true;
                    continue;
                }
                _ => {}
            }
            if let Some(name) = line.strip_prefix("@socket ") {
                s.tmux.push(Socket {
                    name: name.to_string(),
                    sessions: Some(Vec::new()),
                });
                continue;
            }
            match section {
                "@tcp4" | "@tcp6" => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.first() == Some(&"sl") {
                        seen_tcp4 |= section == "@tcp4";
                        s.ipv6 |= section == "@tcp6";
                        continue;
                    }
                    // "0: 0100007F:1F92 00000000:0000 0A tx:rx tr:when retr uid timeout inode":
                    // state 0A is LISTEN, 01 ESTABLISHED.
                    let local = f.get(1).and_then(|a| proc_addr(a));
                    let inode = f.get(9).and_then(|v| v.parse::<u64>().ok());
                    let uid = f.get(7).and_then(|v| v.parse::<u32>().ok());
                    match (local, f.get(3), uid, inode) {
                        (Some(a), Some(&"0A"), uid, inode) => {
                            ports.push(a);
                            if let (Some(uid), Some(inode)) = (uid, inode) {
                                s.listeners.push(Listener {
                                    addr: a,
                                    uid,
                                    inode,
                                });
                            }
                        }
                        (Some(a), Some(&"01"), _, Some(inode)) => {
                            if let Some(peer) = f.get(2).and_then(|a| proc_addr(a)) {
                                established.push((inode, a, peer));
                            }
                        }
                        _ => {}
                    }
                }
                "@procs" => procs.push(line),
                "@tmux" => {
                    let Some(sock) = s.tmux.last_mut() else {
                        continue;
                    };
                    // tmux -S on a socket file whose server is gone.
                    if line.starts_with("no server running on")
                        || line.starts_with("error connecting to")
                    {
                        sock.sessions = None;
                    } else if let Some(list) = &mut sock.sessions {
                        list.push(line.to_string());
                    }
                }
                _ => {}
            }
        }
        if seen_tcp4 {
            ports.sort_unstable();
            ports.dedup();
            s.listening = Some(ports);
        }
        s.procs = Procs::parse(procs);
        s.procs.clients(&established);
        s
    }

    /// Who holds the listeners on `seen`, each holder once.
    pub fn holders(&self, seen: &[(IpAddr, u16)]) -> Vec<Holder> {
        let mut out: Vec<Holder> = Vec::new();
        for l in self.listeners.iter().filter(|l| seen.contains(&l.addr)) {
            let h = self.procs.holder(l.uid, l.inode);
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }

    /// What ssh's `-R` would meet on the server for a TCP listen side,
    /// assuming the server's GatewayPorts is `no` (sshd's default):
    /// channels.c channel_fwd_bind_addr, server side, binds the address the
    /// client sent when it is `127.0.0.1` or `::1`, else the loopback
    /// address of each family; the forward succeeds if any of them binds
    /// (channel_setup_fwd_listener_tcpip). A wildcard listener blocks its
    /// family; `[::]` is taken to block IPv4 too (Linux's bindv6only=0).
    pub fn remote_verdict(&self, host: Option<&[u8]>, port: u16) -> Option<RemoteVerdict> {
        let listening = self.listening.as_ref()?;
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let wanted: Vec<IpAddr> = match host {
            Some(b"127.0.0.1") => vec![v4],
            Some(b"::1") => vec![v6],
            _ if self.ipv6 => vec![v4, v6],
            _ => vec![v4],
        };
        let holders = |want: IpAddr| -> Vec<(IpAddr, u16)> {
            listening
                .iter()
                .copied()
                .filter(|&(a, p)| {
                    p == port
                        && (a == want
                            || a.is_unspecified() && (a.is_ipv4() == want.is_ipv4() || a.is_ipv6()))
                })
                .collect()
        };
        let blocked: Vec<(IpAddr, Vec<(IpAddr, u16)>)> =
            wanted.iter().map(|&w| (w, holders(w))).collect();
        let taken = blocked.iter().all(|(_, h)| !h.is_empty());
        let seen: Vec<(IpAddr, u16)> = blocked.iter().flat_map(|(_, h)| h.clone()).collect();
        Some(RemoteVerdict {
            wanted,
            seen,
            taken,
        })
    }
}

/// The server side of one remote TCP forward.
#[derive(Debug, PartialEq, Eq)]
pub struct RemoteVerdict {
    /// The addresses sshd would bind.
    pub wanted: Vec<IpAddr>,
    /// Listeners on those addresses (or their wildcards).
    pub seen: Vec<(IpAddr, u16)>,
    /// Every wanted address is held: ssh's `-R` fails.
    pub taken: bool,
}

impl fmt::Display for RemoteVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(", ");
        let held = list(
            &mut self
                .seen
                .iter()
                .map(|&(a, p)| SocketAddr::new(a, p).to_string()),
        );
        let wanted = list(&mut self.wanted.iter().map(|a| a.to_string()));
        if self.taken {
            write!(
                f,
                "taken on the server: {held} listening (sshd binds {wanted})"
            )
        } else if self.seen.is_empty() {
            write!(f, "free on the server: nothing listens there on {wanted}")
        } else {
            write!(
                f,
                "free on the server: {held} listening, but sshd binds {wanted} and one is free"
            )
        }
    }
}

/// `dry_run` with `remote`: the report without the server, and the
/// command the server check would run; nothing connects.
pub fn run(ssh: &Path, words: &[OsString], remote: bool, dry_run: bool) -> Result<End, Error> {
    let readings = crate::release::Readings::new(words);
    let mut eff = match effective::query(ssh, words) {
        Err(e) => return Err(Error::Spawn(ssh.to_path_buf(), e)),
        Ok(Err(rejected)) => {
            let _ = std::io::stderr().write_all(&rejected.stderr);
            return Ok(End::Exited(255));
        }
        Ok(Ok(eff)) => eff,
    };
    let args = readings.pick_for(&eff);
    crate::release::fill_in(&mut eff, &args);
    let server_words = server_words(&args, &eff);
    let server = if remote && !dry_run {
        Some(ask_server(ssh, &server_words, deadline(&eff))?)
    } else {
        None
    };
    let mut sources = config::sources(args.last_arg(b'F'));
    sources.argv_split = eff.caps.argv_split_config();
    let config = config::Config::load(&sources);
    let plan = Plan::make(&args, &eff, &config, ssh);
    let mut out = std::io::stdout().lock();
    let _ = report(&mut out, ssh, &args, &eff, &plan, server.as_ref());
    if remote && dry_run {
        let line = crate::quote::line(
            std::iter::once(ssh.as_os_str()).chain(server_words.iter().map(|w| w.as_os_str())),
        );
        let _ = writeln!(
            out,
            "server: not asked (--dry-run); --remote would run, for at most {} s:",
            deadline(&eff).as_secs()
        );
        let _ = out.write_all(&line);
        let _ = out.write_all(b"\n");
    }
    Ok(End::Exited(0))
}

/// ssh.c getopt letters the check's own connection leaves out, whatever
/// the user's words say: each sets its option directly, past any `-o`.
/// -f fork, -N no command, -W stdio forward, -s subsystem, -M master,
/// -O/-G/-V/-Q modes, -t a tty, -L/-R/-D forwards (ClearAllForwardings too).
const NOT_FOR_THE_CHECK: &[u8] = b"fNWsMOGVQtLRD";

/// Options given first, so they win over the user's `-o` and config (ssh
/// keeps the first value it obtains): a session that runs our command,
/// ends, and leaves nothing behind.
const CHECK_OPTIONS: &[&str] = &[
    "ClearAllForwardings=yes",
    "ControlMaster=no",
    "ControlPersist=no",
    "RemoteCommand=none",
    "RequestTTY=no",
    "PermitLocalCommand=no",
    "ExitOnForwardFailure=no",
    "ServerAliveInterval=5",
    "ServerAliveCountMax=2",
];

/// The check's ssh words: its options, the user's other options rebuilt
/// one per word, the destination, and REMOTE_SCRIPT as the command (the
/// user's remote command is not run).
fn server_words(args: &Args, eff: &Effective) -> Vec<OsString> {
    // -n is StdinNull (8.7 added the keyword, and ForkAfterAuthentication
    // and SessionType, which a config can set only from then on: an older
    // ssh rejects the keywords).
    let mut w: Vec<OsString> = vec!["-T".into(), "-n".into()];
    let newer = ["ForkAfterAuthentication=no", "SessionType=default"];
    let newer = if eff.caps.fork_keyword {
        &newer[..]
    } else {
        &[]
    };
    for o in CHECK_OPTIONS.iter().chain(newer) {
        w.push("-o".into());
        w.push((*o).into());
    }
    if eff.connect_timeout.is_none() {
        w.push("-o".into());
        w.push(format!("ConnectTimeout={}", DEFAULT_CONNECT.as_secs()).into());
    }
    for o in args
        .opts
        .iter()
        .filter(|o| !NOT_FOR_THE_CHECK.contains(&o.letter))
    {
        let mut flag = OsString::from("-");
        flag.push(OsString::from((o.letter as char).to_string()));
        w.push(flag);
        w.extend(o.arg.clone());
    }
    if let Some(h) = args.host.and_then(|h| args.words.get(h)) {
        w.push("--".into());
        w.push(h.clone());
    }
    w.push(format!("sh -c '{}'", remote_script()).into());
    w
}

/// ConnectTimeout when the user set none.
const DEFAULT_CONNECT: Duration = Duration::from_secs(15);
/// Time for the login and the script once connected.
const AFTER_CONNECT: Duration = Duration::from_secs(20);

/// How long the check's ssh may take, all in.
fn deadline(eff: &Effective) -> Duration {
    eff.connect_timeout.unwrap_or(DEFAULT_CONNECT) + AFTER_CONNECT
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
        writeln!(out, "{}", describe::forward(d, args))?;
        writeln!(out, "  from: {}", d.origin(args))?;
        writeln!(out, "  ssh -G: {}", describe::ssh_g(&d.forward))?;
        let remote = d.forward.kind == Kind::Remote;
        if remote {
            let seen = match (&d.forward.listen, server) {
                (Endpoint::Tcp { port: 0, .. }, _) => "port 0: the server picks a free one".into(),
                (Endpoint::Path(_), Some(_)) => {
                    "a unix socket on the server: not checked".to_string()
                }
                (Endpoint::Tcp { host, port }, Some(s)) => {
                    match s.remote_verdict(host.as_deref(), *port) {
                        Some(v) => v.to_string(),
                        None => "unknown: the server has no /proc/net/tcp (not Linux?)".into(),
                    }
                }
                (_, None) => "on the server (check with --check --remote)".into(),
            };
            writeln!(out, "  probe: {seen}")?;
            if let (Endpoint::Tcp { host, port }, Some(s)) = (&d.forward.listen, server) {
                let seen = s
                    .remote_verdict(host.as_deref(), *port)
                    .map(|v| v.seen)
                    .unwrap_or_default();
                for h in s.holders(&seen) {
                    writeln!(out, "  held by {}", remote_holder::Words(&s.procs, &h))?;
                }
            }
        } else {
            let reason = describe::reason(&d.verdict);
            writeln!(out, "  probe: {}", reason.as_deref().unwrap_or("free"))?;
        }
        let watch = crate::release::Watch::plan(
            &eff.caps,
            &eff.log_level,
            eff.fork_after_authentication,
            true,
            false,
        );
        let verdict = if d.verdict.drops() {
            "drops it".to_string()
        } else if remote && !watch.remote_refusals {
            format!(
                "keeps it; if the server refuses it, ssh goes on without it, unreported \
                 (LogLevel {} hides ssh's warning, and LogVerbose needs OpenSSH 8.5)",
                eff.log_level
            )
        } else if remote && !watch.take_log {
            "keeps it; if the server refuses it, ssh goes on without it and warns by itself \
             (with -f before OpenSSH 8.5 the answer comes after ssh goes to the background)"
                .into()
        } else if remote {
            "keeps it; if the server refuses it, ssh goes on without it".into()
        } else {
            "keeps it".into()
        };
        writeln!(out, "  rosh-ssh: {verdict}")?;
    }
    if let Some(s) = server {
        if s.no_tmux {
            writeln!(out, "tmux: not installed on the server")?;
        } else if s.tmux.iter().all(|t| t.sessions.is_none()) {
            writeln!(out, "tmux sessions: no tmux server")?;
        } else {
            writeln!(out, "tmux sessions:")?;
            for t in &s.tmux {
                // `rosh -L NAME` is `tmux -L NAME`: the socket's file name.
                match &t.sessions {
                    None => writeln!(out, "  -L {}: no tmux server", t.name)?,
                    Some(list) if list.is_empty() => writeln!(out, "  -L {}: none", t.name)?,
                    Some(list) => {
                        for l in list {
                            writeln!(out, "  -L {}: {l}", t.name)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// One ssh connection running REMOTE_SCRIPT, ended by `limit` at the
/// latest: past it ssh gets SIGTERM (it then ends its ProxyCommand), and
/// SIGKILL two seconds later.
fn ask_server(ssh: &Path, words: &[OsString], limit: Duration) -> Result<Server, Error> {
    let mut child = Command::new(ssh)
        .arg0(ssh)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Spawn(ssh.to_path_buf(), e))?;
    let mut stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    // A ProxyCommand may hold the pipe after ssh is gone: the reader is
    // waited for with a bound, never joined.
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(MAX_OUTPUT).read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    let start = Instant::now();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut timed_out = false;
    let mut termed: Option<Instant> = None;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Error::Io("waiting for ssh".into(), e))?
        {
            break st;
        }
        let now = Instant::now();
        match termed {
            None if now.duration_since(start) >= limit => {
                timed_out = true;
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                termed = Some(now);
            }
            Some(t) if now.duration_since(t) >= Duration::from_secs(2) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    let out = String::from_utf8_lossy(&out);
    if timed_out {
        return Err(Error::Check(format!(
            "--check --remote: no answer from the server within {} s",
            limit.as_secs()
        )));
    }
    if !out.contains("@end") {
        return Err(Error::Check(format!(
            "--check --remote: ssh to the server failed ({status})"
        )));
    }
    Ok(Server::parse(&out))
}

/// REMOTE_SCRIPT prints a few KiB; more is not from it.
const MAX_OUTPUT: u64 = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_and_tmux() {
        let out = "@tcp4\n  sl  local_address rem_address   st\n\
                   0: 0100007F:1F92 00000000:0000 0A 0\n\
                   1: 0100007F:0016 0100007F:9C40 01 0\n\
                   @tcp6\n  sl  local_address\n\
                   0: 00000000000000000000000001000000:1F93 0000:0000 0A 0\n\
                   @tmux\n@socket default\n0: 1 windows (created Sat)\n\
                   @socket work\nno server running on /tmp/tmux-0/work\n@end\n";
        let s = Server::parse(out);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(s.listening, Some(vec![(v4, 8082), (v6, 8083)]));
        assert!(s.ipv6 && !s.no_tmux);
        assert_eq!(
            s.tmux,
            vec![
                Socket {
                    name: "default".into(),
                    sessions: Some(vec!["0: 1 windows (created Sat)".into()])
                },
                Socket {
                    name: "work".into(),
                    sessions: None
                }
            ]
        );
        let none = Server::parse("@tcp4\n@tcp6\n@tmux\n@notmux\n@end\n");
        assert_eq!(none.listening, None);
        assert!(none.no_tmux && none.tmux.is_empty());
    }

    /// Issue 26, 3: the listeners' owners and inodes, and the user's
    /// processes: a listener found among an sshd's descriptors is named with
    /// the client of that sshd's connection to the server's port.
    #[test]
    fn names_the_sshd_that_holds_a_remote_port() {
        let out = "@tcp4\n  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 0100007F:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5551 1\n\
                   1: 0100000A:0016 0900000A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5552 1\n\
                   2: 0100000A:0016 0800000A:9C41 01 00000000:00000000 00:00000000 00000000     0        0 5553 1\n\
                   @tcp6\n  sl  local_address\n\
                   @procs\nuid 1000\nclock 100\nbtime 1765000000\nuptime 100\n\
                   conn 10.0.0.8 40001 10.0.0.1 22\nself 301\n\
                   proc 300 1 S 5000 1 sshd\nproc 301 1 S 6000 1 sshd\n\
                   /proc/300/fd:\nl 1 u u 64 Dec 7 3 -> socket:[5551]\nl 1 u u 64 Dec 7 4 -> socket:[5552]\n\
                   /proc/301/fd:\nl 1 u u 64 Dec 7 3 -> socket:[5553]\n\
                   @tmux\n@end\n";
        let s = Server::parse(out);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            s.listeners,
            [Listener {
                addr: (v4, 8082),
                uid: 1000,
                inode: 5551
            }]
        );
        let seen = s.remote_verdict(None, 8082).unwrap().seen;
        let held: Vec<String> = s
            .holders(&seen)
            .iter()
            .map(|h| remote_holder::Words(&s.procs, h).to_string())
            .collect();
        assert_eq!(held.len(), 1);
        assert!(
            held[0].starts_with("your sshd, pid 300 (sshd), started 2025-12-06 05:47:30 UTC (50 s ago), client 10.0.0.9 port 40000"),
            "{held:?}"
        );
        assert!(s.holders(&[]).is_empty());
    }

    /// sshd with GatewayPorts no binds 127.0.0.1 and ::1 for `-R P:...`
    /// (or the one loopback address asked for): a port held on one of
    /// them only does not make ssh's -R fail.
    #[test]
    fn remote_verdict_follows_the_address_sshd_binds() {
        let v4 = |p| format!("0: 0100007F:{p:04X} 00000000:0000 0A 0\n");
        let v6 = |p| format!("0: 00000000000000000000000001000000:{p:04X} 0000:0000 0A 0\n");
        let any4 = |p| format!("0: 00000000:{p:04X} 00000000:0000 0A 0\n");
        let any6 = |p| format!("0: 00000000000000000000000000000000:{p:04X} 0000:0000 0A 0\n");
        let server = |four: String, six: String| {
            Server::parse(&format!(
                "@tcp4\n  sl local\n{four}@tcp6\n  sl local\n{six}@tmux\n@end\n"
            ))
        };
        let table: &[(String, String, Option<&[u8]>, bool)] = &[
            (String::new(), v6(22), None, false),
            (v4(22), String::new(), None, false),
            (v4(22), v6(22), None, true),
            (any4(22), v6(22), None, true),
            (String::new(), any6(22), None, true),
            (v4(22), String::new(), Some(b"127.0.0.1"), true),
            (String::new(), v6(22), Some(b"127.0.0.1"), false),
            (String::new(), v6(22), Some(b"::1"), true),
            // Any other address: loopback of both families (GatewayPorts no).
            (v4(22), String::new(), Some(b"*"), false),
            (v4(23), v6(23), None, false),
        ];
        for (four, six, host, taken) in table {
            let v = server(four.clone(), six.clone())
                .remote_verdict(*host, 22)
                .unwrap();
            assert_eq!(v.taken, *taken, "{four}{six}{host:?}: {v}");
        }
        // Without IPv6 on the server, 127.0.0.1 alone decides.
        let s = Server::parse(&format!("@tcp4\n  sl l\n{}@tcp6\n@tmux\n@end\n", v4(22)));
        assert!(s.remote_verdict(None, 22).unwrap().taken);
        let v = server(String::new(), v6(22))
            .remote_verdict(None, 22)
            .unwrap();
        assert_eq!(
            v.to_string(),
            "free on the server: [::1]:22 listening, but sshd binds 127.0.0.1, ::1 and one is free"
        );
    }

    #[test]
    fn the_check_connection_drops_what_would_keep_it_alive() {
        let words: Vec<OsString> = [
            "-fNL", "1:h:2", "-W", "h:22", "-p", "22", "host", "-t", "sleep", "9",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let args = Args::parse(words);
        let w = server_words(&args, &Effective::default());
        let w: Vec<String> = w.iter().map(|w| w.to_string_lossy().into_owned()).collect();
        for gone in ["-fNL", "-f", "-N", "-W", "-t", "sleep"] {
            assert!(!w.contains(&gone.to_string()), "{gone}: {w:?}");
        }
        let tail = &w[w.len() - 5..];
        assert_eq!(&tail[..3], ["-p", "22", "--"], "{w:?}");
        assert_eq!(w[w.len() - 2], "host");
        assert!(w[w.len() - 1].starts_with("sh -c '"));
        assert!(!remote_script().contains('\''));
        assert!(w.contains(&"ConnectTimeout=15".to_string()));
        // Stdin from /dev/null as -n, which every release knows; the
        // keywords of 8.7 only where `ssh -G` shows an 8.7 or later.
        assert_eq!(w[..2], ["-T", "-n"]);
        for (caps, newer) in [
            (crate::effective::Caps::default(), false),
            (crate::effective::Caps::CURRENT, true),
        ] {
            let eff = Effective {
                caps,
                ..Effective::default()
            };
            let w: Vec<String> = server_words(&args, &eff)
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            for k in ["ForkAfterAuthentication=no", "SessionType=default"] {
                assert_eq!(w.contains(&k.to_string()), newer, "{caps:?}: {w:?}");
            }
            assert!(!w.iter().any(|x| x.starts_with("StdinNull")), "{w:?}");
        }
    }
}
