//! Who holds a listening port on the server, for `--check --remote`: the
//! user's own processes as a shell script on the server lists them from
//! /proc, a listener's socket found among their descriptors, and where the
//! descriptors cannot be read, the holder named by elimination.
//!
//! The listener of a RemoteForward lives in the connection's sshd process
//! that runs as the user (sshd.c / sshd-session.c `privsep_postauth`: forked
//! by the root monitor, then `do_setusercontext`; serverloop.c
//! `server_input_global_request` binds it). That process changed its uid
//! without exec, so the kernel made it non-dumpable: its /proc/PID/fd is
//! root's to read, not the user's (checked with sshd 9.2p1 and 10.5p1), and
//! no unprivileged interface maps a socket to a process otherwise. What the
//! user can read: the socket's owner (/proc/net/tcp's uid), every process of
//! theirs, which of them have descriptors they can read (and which sockets
//! those hold), and each process's start time. A listener owned by the user
//! that none of the readable processes holds is held by one of the
//! unreadable ones: when that is a single sshd, it is named as the holder;
//! with several, all of them are, as candidates. The client address is
//! what sshd put in SSH_CONNECTION for the session's shell (a child of the
//! sshd), or in the rosh loop's record (rosh/stale.rs).

use std::fmt;
use std::net::IpAddr;

/// One address and port seen two ways: /proc/net/tcp6 shows an IPv4
/// connection as `::ffff:a.b.c.d`.
fn same(a: (IpAddr, u16), b: (IpAddr, u16)) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    a.1 == b.1 && canon(a.0) == canon(b.0)
}

/// Runs on the server under `sh -c '...'` after `@procs`, in a subshell
/// whose errors are silenced: no single quote, no backslash but tr's
/// (fish and every POSIX shell pass it through single quotes). Lines:
/// `uid U`, `clock HZ`, `btime SECS`, `uptime SECS`, `self PID` (the check
/// connection's own sshd), `conn SSH_CONNECTION` (the check connection's,
/// whose server side names sshd's port), `proc PID PPID STATE START READABLE COMM` for
/// each process of the user, `ls -l`'s `/proc/PID/fd:` headers and socket
/// lines for the readable ones, `env PID SSH_CONNECTION=...` for the
/// children of an sshd, `rosh NAME SSH_CONNECTION` for rosh's records.
pub const SCRIPT: &str = concat!(
    r#"echo @procs; ( r=")"; "#,
    r#"st() { l=; read -r l <"/proc/$1/stat" || return 1; set -- ${l##*"$r"}; S=$1; P=$2; T=${20}; }; "#,
    r#"sd() { c=; read -r c <"/proc/$1/comm" && { [ "$c" = sshd ] || [ "$c" = sshd-session ]; }; }; "#,
    r#"echo "uid $(id -u)"; echo "clock $(getconf CLK_TCK)"; grep "^btime " /proc/stat; "#,
    r#"read -r u x </proc/uptime && echo "uptime $u"; echo "conn ${SSH_CONNECTION-}"; "#,
    r#"p=$$; n=0; while [ $n -lt 16 ] && [ "$p" -gt 1 ]; do if sd "$p"; then echo "self $p"; break; fi; st "$p" || break; p=$P; n=$((n+1)); done; "#,
    r#"set --; for q in /proc/[0-9]*; do [ -O "$q" ] || continue; k=${q#/proc/}; st "$k" || continue; "#,
    r#"c=; read -r c <"$q/comm"; o=0; if [ -r "$q/fd" ]; then o=1; set -- "$@" "$q/fd"; fi; "#,
    r#"echo "proc $k $P $S $T $o $c"; "#,
    r#"if [ $o = 1 ] && sd "$P"; then echo "env $k $(tr "\000" "\n" <"$q/environ" | grep "^SSH_CONNECTION=")"; fi; done; "#,
    r#"if [ $# -gt 0 ]; then ls -l /dev/null "$@" | grep -e "^/proc/" -e "socket:"; fi; "#,
    r#"d=${XDG_RUNTIME_DIR:-$HOME/.cache}/rosh/sshd; for g in "$d"/*.*.*.*; do [ -f "$g" ] || continue; "#,
    r#"c=; read -r c <"$g"; echo "rosh ${g##*/} $c"; done ) 2>/dev/null; "#,
);

/// One process of the user's on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// /proc/PID/stat's state letter (`Z`: a zombie).
    pub state: char,
    /// Start time, clock ticks after boot (/proc/PID/stat field 22).
    pub start: u64,
    /// Its descriptors could be read.
    pub readable: bool,
    pub comm: String,
    /// The socket inodes among its descriptors (readable ones only).
    pub sockets: Vec<u64>,
    /// SSH_CONNECTION as sshd gave it to a session of this process (an
    /// sshd's child's environment, or rosh's record of it).
    pub connection: Option<String>,
    /// The rosh loop that recorded this process as its connection's sshd.
    pub rosh_loop: Option<String>,
}

impl Proc {
    fn is_sshd(&self) -> bool {
        self.comm == "sshd" || self.comm == "sshd-session"
    }
}

/// What the script said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Procs {
    pub uid: Option<u32>,
    /// Clock ticks per second (getconf CLK_TCK).
    pub hz: Option<u64>,
    /// Boot time, seconds since the epoch.
    pub btime: Option<u64>,
    /// Whole seconds since boot when the script ran.
    pub uptime: Option<u64>,
    /// The check connection's own sshd.
    pub own_sshd: Option<u32>,
    /// The server's address and port of the check connection, as sshd saw
    /// them (SSH_CONNECTION's last two words).
    pub server: Option<(IpAddr, u16)>,
    pub procs: Vec<Proc>,
}

impl Procs {
    /// Reads the lines after `@procs`.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Procs {
        let mut s = Procs::default();
        // Resolved once every process is known: /proc's order is not the
        // order of parents and children.
        let mut envs: Vec<(u32, String)> = Vec::new();
        let mut records: Vec<(u32, u64, String, String)> = Vec::new();
        let mut listing: Option<u32> = None;
        let mut sockets: Vec<(u32, u64)> = Vec::new();
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let num = || rest.trim().parse::<u64>().ok();
            match key {
                "uid" => s.uid = num().and_then(|n| u32::try_from(n).ok()),
                "clock" => s.hz = num().filter(|&h| h > 0),
                "btime" => s.btime = num(),
                "uptime" => s.uptime = rest.trim().parse::<f64>().ok().map(|u| u.max(0.0) as u64),
                "self" => s.own_sshd = num().and_then(|n| u32::try_from(n).ok()),
                "conn" => {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    if let [_, _, addr, port] = f[..] {
                        s.server = addr.parse().ok().zip(port.parse().ok());
                    }
                }
                "proc" => s.procs.extend(proc_line(rest)),
                "env" => {
                    let (pid, value) = rest.split_once(' ').unwrap_or((rest, ""));
                    let conn = value.strip_prefix("SSH_CONNECTION=").map(str::trim);
                    if let (Ok(pid), Some(c)) = (pid.parse(), conn.filter(|c| !c.is_empty())) {
                        envs.push((pid, c.to_string()));
                    }
                }
                "rosh" => records.extend(record(rest)),
                _ => {
                    if let Some(dir) = line.strip_prefix("/proc/") {
                        listing = dir.strip_suffix("/fd:").and_then(|p| p.parse().ok());
                    } else if let (Some(pid), Some(at)) = (listing, line.find("socket:[")) {
                        let n = line[at + 8..]
                            .split(']')
                            .next()
                            .and_then(|n| n.parse().ok());
                        sockets.extend(n.map(|n| (pid, n)));
                    }
                }
            }
        }
        for (pid, inode) in sockets {
            if let Some(p) = s.procs.iter_mut().find(|p| p.pid == pid) {
                p.sockets.push(inode);
            }
        }
        for (child, conn) in envs {
            let parent = s.procs.iter().find(|p| p.pid == child).map(|p| p.ppid);
            if let Some(p) = s.procs.iter_mut().find(|p| Some(p.pid) == parent) {
                p.connection.get_or_insert(conn);
            }
        }
        for (pid, start, lp, conn) in records {
            if let Some(p) = s
                .procs
                .iter_mut()
                .find(|p| p.pid == pid && p.start == start)
            {
                p.rosh_loop = Some(lp);
                if !conn.is_empty() {
                    p.connection.get_or_insert(conn);
                }
            }
        }
        s
    }

    /// The client of each sshd whose descriptors could be read and that
    /// has none named yet: the peer of its socket connected to sshd's
    /// address and port (`established`: /proc/net/tcp's ESTABLISHED
    /// sockets, inode, local and remote address). With `ssh -N` there is no
    /// session whose environment would say it.
    pub fn clients(&mut self, established: &[(u64, (IpAddr, u16), (IpAddr, u16))]) {
        let Some(server) = self.server else { return };
        for p in self.procs.iter_mut().filter(|p| p.is_sshd()) {
            if p.connection.is_some() {
                continue;
            }
            let peer = established
                .iter()
                .find(|(inode, local, _)| p.sockets.contains(inode) && same(*local, server));
            if let Some((_, local, (addr, port))) = peer {
                p.connection = Some(format!("{addr} {port} {} {}", local.0, local.1));
            }
        }
    }

    /// Who holds the socket `inode`, owned by `uid` (/proc/net/tcp).
    pub fn holder(&self, uid: u32, inode: u64) -> Holder {
        if self.uid != Some(uid) {
            return Holder::OtherUser(uid);
        }
        if let Some(p) = self.procs.iter().find(|p| p.sockets.contains(&inode)) {
            return Holder::Seen(p.clone());
        }
        // Ours, and none of the processes whose descriptors we read holds
        // it: one of the others does (not the check's own connection, which
        // forwards nothing, nor a zombie, which holds no descriptor).
        let mine = self.own_sshd;
        let hidden: Vec<&Proc> = self
            .procs
            .iter()
            .filter(|p| !p.readable && p.state != 'Z' && Some(p.pid) != mine)
            .collect();
        let sshds: Vec<Proc> = hidden
            .iter()
            .filter(|p| p.is_sshd())
            .map(|&p| p.clone())
            .collect();
        match (hidden.len(), sshds.len()) {
            (1, 1) => Holder::Sshd(sshds[0].clone()),
            (_, 0) => Holder::Unseen,
            _ => Holder::OneOf(sshds),
        }
    }

    /// `secs` ago, and the UTC time then, for a start time in ticks.
    fn when(&self, start: u64) -> Option<String> {
        let hz = self.hz.unwrap_or(100);
        let at = self.btime? + start / hz;
        let mut s = utc(at);
        if let Some(up) = self.uptime {
            let ago = up.saturating_sub(start / hz);
            s.push_str(&format!(" ({} ago)", duration(ago)));
        }
        Some(s)
    }

    /// One holder in words: pid, name, start, client, rosh loop.
    pub fn describe(&self, p: &Proc) -> String {
        let mut s = format!("pid {} ({})", p.pid, p.comm);
        if let Some(w) = self.when(p.start) {
            s.push_str(&format!(", started {w}"));
        }
        if let Some(c) = &p.connection {
            // SSH_CONNECTION: client address, client port, server address, port.
            let f: Vec<&str> = c.split_whitespace().collect();
            match f[..] {
                [addr, port, ..] => s.push_str(&format!(", client {addr} port {port}")),
                _ => s.push_str(&format!(", {c}")),
            }
        }
        if let Some(l) = &p.rosh_loop {
            s.push_str(&format!(", rosh loop {l}"));
        }
        s
    }
}

/// `PID PPID STATE START READABLE COMM`.
fn proc_line(rest: &str) -> Option<Proc> {
    let f: Vec<&str> = rest.splitn(6, ' ').collect();
    let [pid, ppid, state, start, readable, comm] = f[..] else {
        return None;
    };
    Some(Proc {
        pid: pid.parse().ok()?,
        ppid: ppid.parse().ok()?,
        state: state.chars().next()?,
        start: start.parse().ok()?,
        readable: readable == "1",
        comm: comm.to_string(),
        sockets: Vec::new(),
        connection: None,
        rosh_loop: None,
    })
}

/// rosh's record (rosh/stale.rs): `BOOT.LOOP.PID.START SSH_CONNECTION`.
fn record(rest: &str) -> Option<(u32, u64, String, String)> {
    let (name, conn) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut f = name.rsplitn(4, '.');
    let start = f.next()?.parse().ok()?;
    let pid = f.next()?.parse().ok()?;
    let lp = f.next()?.to_string();
    f.next()?;
    Some((pid, start, lp, conn.trim().to_string()))
}

/// Who holds a socket, as far as the user can know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Its descriptor was seen in this process.
    Seen(Proc),
    /// The only process of the user's whose descriptors cannot be read,
    /// an sshd: the holder.
    Sshd(Proc),
    /// One of these sshd processes of the user's (or, when they are
    /// listed with other unreadable processes, most likely one of them).
    OneOf(Vec<Proc>),
    /// A process of the user's whose descriptors cannot be read, none an sshd.
    Unseen,
    /// Another user's socket.
    OtherUser(u32),
}

/// The words for one holder, given the report's processes.
pub struct Words<'a>(pub &'a Procs, pub &'a Holder);

impl fmt::Display for Words<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Words(procs, holder) = self;
        match holder {
            Holder::Seen(p) if !p.is_sshd() => write!(f, "your process {}", procs.describe(p)),
            Holder::Seen(p) | Holder::Sshd(p) => write!(
                f,
                "your sshd, {} (kill {} on the server ends it)",
                procs.describe(p),
                p.pid
            ),
            Holder::OneOf(list) if list.len() == 1 => write!(
                f,
                "most likely your sshd, {} (processes of yours that are no sshd hide \
                 their descriptors too)",
                procs.describe(&list[0])
            ),
            Holder::OneOf(list) => {
                write!(
                    f,
                    "one of your sshd processes (which one, only root can see):"
                )?;
                for p in list {
                    write!(f, "\n    {}", procs.describe(p))?;
                }
                Ok(())
            }
            Holder::Unseen => write!(f, "a process of yours whose descriptors only root can read"),
            Holder::OtherUser(uid) => write!(f, "a process of another user (uid {uid})"),
        }
    }
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic
/// Gregorian, days to civil date as in Howard Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A span in the two largest units: `40 s`, `12 min`, `3 h 5 min`, `2 d 3 h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    /// A server's answer: processes listed in /proc's order (a child before
    /// its parent), two sessions' sshd unreadable, the check's own too.
    const OUT: &str = "uid 1000\nclock 100\nbtime 1765000000\nuptime 5000.42\n\
conn 10.0.0.9 40000 10.0.0.1 22\nself 300\n\
proc 1000 900 S 400000 1 bash\n\
proc 1100 901 S 450000 1 bash\n\
proc 1200 1000 S 460000 1 python3\n\
proc 300 299 S 490000 0 sshd\n\
proc 900 899 S 400000 0 sshd\n\
proc 901 898 S 449000 0 sshd-session\n\
proc 902 897 Z 449500 0 sshd\n\
env 1000 SSH_CONNECTION=10.0.0.7 51234 10.0.0.1 22\n\
env 1100 \n\
/proc/1000/fd:\n\
lrwx------ 1 u u 64 Dec  7 14:00 0 -> /dev/pts/1\n\
/proc/1200/fd:\n\
lrwx------ 1 u u 64 Dec  7 14:00 3 -> socket:[777]\n\
rosh 0a-b.loop1.901.449000 10.0.0.8 40001 10.0.0.1 22\n\
rosh 0a-b.loop2.555.1 10.0.0.5 1 10.0.0.1 22\n";

    fn procs() -> Procs {
        Procs::parse(OUT.lines())
    }

    fn pid(h: &Holder) -> Vec<u32> {
        match h {
            Holder::Seen(p) | Holder::Sshd(p) => vec![p.pid],
            Holder::OneOf(v) => v.iter().map(|p| p.pid).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn parses_processes_sockets_clients_and_records() {
        let p = procs();
        assert_eq!(
            (p.uid, p.hz, p.btime, p.uptime, p.own_sshd),
            (
                Some(1000),
                Some(100),
                Some(1_765_000_000),
                Some(5000),
                Some(300)
            )
        );
        assert_eq!(p.server, Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 22)));
        assert_eq!(p.procs.len(), 7);
        let by = |pid: u32| p.procs.iter().find(|x| x.pid == pid).unwrap();
        assert_eq!(by(1200).sockets, [777]);
        assert!(by(1000).sockets.is_empty() && by(1000).readable && !by(900).readable);
        // The session's shell, listed before its sshd, names its client.
        assert_eq!(
            by(900).connection.as_deref(),
            Some("10.0.0.7 51234 10.0.0.1 22")
        );
        // rosh's record: its loop, and its client.
        assert_eq!(by(901).rosh_loop.as_deref(), Some("loop1"));
        assert_eq!(
            by(901).connection.as_deref(),
            Some("10.0.0.8 40001 10.0.0.1 22")
        );
        assert_eq!(by(902).state, 'Z');
        // Lines it does not know are no harm.
        let junk = Procs::parse([
            "proc x y",
            "env",
            "rosh",
            "/proc/x/fd:",
            "socket:[1]",
            "uid -1",
        ]);
        assert!(junk.procs.is_empty() && junk.uid.is_none());
    }

    #[test]
    fn holders_seen_deduced_or_listed() {
        let mut p = procs();
        // Seen in a readable process.
        assert_eq!(pid(&p.holder(1000, 777)), [1200]);
        assert!(matches!(p.holder(1000, 777), Holder::Seen(_)));
        assert_eq!(p.holder(0, 777), Holder::OtherUser(0));
        // Hidden: two sshd (not the check's own 300, not the zombie 902).
        let h = p.holder(1000, 12345);
        assert!(matches!(h, Holder::OneOf(_)));
        assert_eq!(pid(&h), [900, 901]);
        // One sshd left hidden: that one.
        p.procs.retain(|x| x.pid != 900);
        assert!(matches!(p.holder(1000, 12345), Holder::Sshd(ref x) if x.pid == 901));
        // With another unreadable process of ours beside it: most likely.
        let mut q = p.clone();
        q.procs.push(Proc {
            comm: "ssh-agent".into(),
            pid: 2000,
            ..q.procs[0].clone()
        });
        q.procs.last_mut().unwrap().readable = false;
        let h = q.holder(1000, 12345);
        assert_eq!(pid(&h), [901]);
        assert!(
            Words(&q, &h)
                .to_string()
                .starts_with("most likely your sshd, pid 901")
        );
        // No sshd hidden at all.
        p.procs.retain(|x| x.pid != 901);
        assert_eq!(p.holder(1000, 12345), Holder::Unseen);
    }

    #[test]
    fn words_name_pid_start_client_and_loop() {
        let p = procs();
        let h = Holder::Sshd(p.procs.iter().find(|x| x.pid == 901).unwrap().clone());
        // Started at tick 449000 = 4490 s after boot; the script ran at 5000 s.
        assert_eq!(
            Words(&p, &h).to_string(),
            format!(
                "your sshd, pid 901 (sshd-session), started {} (8 min ago), \
                 client 10.0.0.8 port 40001, rosh loop loop1 (kill 901 on the server ends it)",
                utc(1_765_000_000 + 4490)
            )
        );
        let list = Words(&p, &p.holder(1000, 1)).to_string();
        assert!(list.starts_with("one of your sshd processes"), "{list}");
        assert!(list.contains("\n    pid 900 (sshd), started"), "{list}");
        assert_eq!(
            Words(&p, &Holder::OtherUser(0)).to_string(),
            "a process of another user (uid 0)"
        );
    }

    #[test]
    fn utc_and_duration_tables() {
        for (secs, want) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (951_868_800, "2000-03-01 00:00:00 UTC"),
            (1_709_164_800, "2024-02-29 00:00:00 UTC"),
            (1_765_115_999, "2025-12-07 13:59:59 UTC"),
            (4_102_444_800, "2100-01-01 00:00:00 UTC"),
        ] {
            assert_eq!(utc(secs), want, "{secs}");
        }
        for (secs, want) in [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3599, "59 min"),
            (3600, "1 h 0 min"),
            (86_399, "23 h 59 min"),
            (90_000, "1 d 1 h"),
        ] {
            assert_eq!(duration(secs), want);
        }
    }

    #[test]
    fn same_address_across_families() {
        let v4 = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 22);
        let mapped = ("::ffff:10.0.0.1".parse().unwrap(), 22);
        assert!(same(v4, mapped) && same(mapped, v4) && !same(v4, (v4.0, 23)));
    }

    /// The script itself, run here: this process is the user's, its
    /// descriptors readable, and a listener it holds is among its sockets.
    #[test]
    fn the_script_finds_a_socket_of_this_process() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let inode = nix::sys::stat::fstat(&l).unwrap().st_ino;
        let out = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("@procs\n"), "{text}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = Procs::parse(text.lines().skip(1));
        let me = std::process::id();
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(p.uid, Some(uid));
        assert!(p.hz.is_some() && p.btime.is_some() && p.uptime.is_some());
        let mine = p.procs.iter().find(|x| x.pid == me).expect("this process");
        assert!(mine.readable && mine.sockets.contains(&inode), "{mine:?}");
        assert_eq!(pid(&p.holder(uid, inode)), [me]);
        drop(l);
    }
}
