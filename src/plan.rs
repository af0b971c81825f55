//! What ssh will forward, matched to the words that asked for it, and the
//! probe's verdict on each: the plan both a run and `--check` start from.

use crate::argv::Args;
use crate::config::{Config, Origin};
use crate::effective::Effective;
use crate::forward::{self, Forward, Kind};
use crate::holder::{self, Holders};
use crate::probe::{self, Busy};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The forwards written on the command line: (index into `args.opts`, forward).
/// What does not parse is left out: ssh -G has already accepted the words,
/// so such an option is ssh's business.
pub fn argv_forwards(args: &Args) -> Vec<(usize, Forward)> {
    let mut out = Vec::new();
    for (n, o) in args.opts.iter().enumerate() {
        let f = match (o.letter, &o.arg) {
            (b'L' | b'R' | b'D', Some(a)) => forward::parse_arg(o.letter, a.as_bytes()),
            _ => None,
        };
        if let Some(f) = f {
            out.push((n, f));
        }
    }
    for (n, line) in args.config_options() {
        let kind = match line.keyword.as_slice() {
            b"localforward" => Kind::Local,
            b"remoteforward" => Kind::Remote,
            b"dynamicforward" => Kind::Dynamic,
            _ => continue,
        };
        let a: Vec<&[u8]> = line.args.iter().map(|a| a.as_slice()).collect();
        if let Some(f) = forward::parse_keyword(kind, &a) {
            out.push((n, f));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out
}

/// What the probe (or the user's master) says about a forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Free,
    /// The local listen side can't be had: why, and who holds each busy
    /// address when the system names them (the restorer waits on the
    /// first); empty where there is no holder to look for (a privileged
    /// port, a path in the way, an address not on this host).
    Busy {
        busy: Busy,
        holders: Holders,
    },
    /// Held by the live ControlMaster this ssh rides: no conflict.
    OwnMaster {
        pid: u32,
    },
}

impl Verdict {
    /// Whether rosh-ssh drops the forward.
    pub fn drops(&self) -> bool {
        matches!(self, Verdict::Busy { .. })
    }

    /// The holder's pid, when known.
    pub fn holder_pid(&self) -> Option<u32> {
        match self {
            Verdict::Busy { holders, .. } => holders.pid(),
            Verdict::OwnMaster { pid } => Some(*pid),
            Verdict::Free => None,
        }
    }
}

/// One forward ssh will set up, and what rosh-ssh makes of it.
pub struct Decision {
    pub forward: Forward,
    /// The command-line options that ask for it (indexes into `args.opts`).
    pub opts: Vec<usize>,
    pub verdict: Verdict,
    /// The config line that asks for it.
    pub from_config: Option<Origin>,
}

impl Decision {
    pub fn origin(&self, args: &Args) -> String {
        let mut from: Vec<String> = self
            .opts
            .iter()
            .map(|&n| {
                let o = &args.opts[n];
                let a = o.arg.as_deref().unwrap_or(OsStr::new(""));
                format!("command line -{} {}", o.letter as char, a.to_string_lossy())
            })
            .collect();
        from.extend(
            self.from_config
                .iter()
                .map(|o| format!("{}:{}", o.file.display(), o.line)),
        );
        if from.is_empty() {
            return "ssh_config".into();
        }
        from.join(", ")
    }
}

pub struct Plan {
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// Matches ssh's forwards to the options that asked for them and the
    /// config line ssh applied (asking `ssh` when the text is on several,
    /// applied.rs), and probes each local listen side. A busy forward is
    /// dropped.
    pub fn make(args: &Args, eff: &Effective, config: &Config, ssh: &Path) -> Plan {
        let from_argv = argv_forwards(args);
        let mut known: Vec<Forward> = from_argv.iter().map(|(_, f)| f.clone()).collect();
        known.extend(config.forwards());
        let forwards = eff.resolve(&known);
        let on_argv: Vec<bool> = forwards
            .iter()
            .map(|f| from_argv.iter().any(|(_, g)| g.prints_as(f)))
            .collect();
        let origins = crate::applied::origins(ssh, args, config, &forwards, &on_argv);
        let decisions = forwards
            .iter()
            .zip(origins)
            .map(|(f, origin)| {
                let opts: Vec<usize> = from_argv
                    .iter()
                    .filter(|(_, g)| g.prints_as(f))
                    .map(|(n, _)| *n)
                    .collect();
                Decision {
                    forward: f.clone(),
                    opts,
                    verdict: verdict(f, &eff.probe),
                    from_config: origin,
                }
            })
            .collect();
        Plan { decisions }
    }

    /// Keeps the dropped local forwards whose holder is the user's live
    /// master `master` (see ownmaster.rs); returns their indexes.
    pub fn keep_held_by(&mut self, master: u32) -> Vec<usize> {
        let mut kept = Vec::new();
        for (i, d) in self.decisions.iter_mut().enumerate() {
            if d.verdict.drops()
                && d.forward.kind != Kind::Remote
                && d.verdict.holder_pid() == Some(master)
            {
                d.verdict = Verdict::OwnMaster { pid: master };
                kept.push(i);
            }
        }
        kept
    }

    /// Whether some local forward was dropped: the only case the user's
    /// master can explain.
    pub fn drops_local(&self) -> bool {
        self.decisions
            .iter()
            .any(|d| d.verdict.drops() && d.forward.kind != Kind::Remote)
    }
}

/// The probe for one forward's local listen side, naming the holder of a
/// busy one; remote forwards listen on the server and can only fail after
/// connecting.
pub fn verdict(f: &Forward, opts: &probe::Opts) -> Verdict {
    let busy = if let Some((host, port)) = f.local_tcp_listen() {
        probe::tcp(host, port, opts).err()
    } else if let Some(p) = f.local_path_listen() {
        probe::path(p, opts).err()
    } else {
        None
    };
    match busy {
        Some(busy) => busy_verdict(busy, opts.look_first),
        None => Verdict::Free,
    }
}

/// A busy listen side's verdict, naming the holder where there is one:
/// reading the system's process table is done only for what is busy
/// (process `first`, the user's master, looked at before the others).
pub fn busy_verdict(busy: Busy, first: Option<u32>) -> Verdict {
    // Every address another process holds, each holder named once; a
    // privilege problem is not a conflict: there is no holder to name.
    let holders = match &busy {
        // A system that cannot name holders says "in use" alone.
        _ if !holder::NAMED => Holders(Vec::new()),
        Busy::NotLocal { .. } | Busy::PathExists { .. } => Holders(Vec::new()),
        Busy::Tcp { .. } => Holders::of(&busy.in_use(), first),
        Busy::PathLive { path } => {
            Holders(vec![(Vec::new(), holder::unix_listener_first(path, first))])
        }
    };
    Verdict::Busy { busy, holders }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::net::TcpListener;

    fn args(ws: &[&str]) -> Args {
        Args::parse(ws.iter().map(OsString::from).collect())
    }

    #[test]
    fn argv_forwards_reads_letters_and_each_forward_keyword_in_order() {
        let a = args(&[
            "-o",
            "DynamicForward=1080",
            "-L3131:h:22",
            "-oRemoteForward 8082 localhost:80",
            "-o",
            "LocalForward=4000 h:4",
            "-o",
            "ForwardAgent=yes",
            "-R",
            "not a forward",
            "-D",
            "1081",
            "host",
        ]);
        let got: Vec<(usize, Kind, String)> = argv_forwards(&a)
            .into_iter()
            .map(|(n, f)| (n, f.kind, String::from_utf8_lossy(&f.ssh_g()).into_owned()))
            .collect();
        let want = [
            (0, Kind::Dynamic, "dynamicforward 1080"),
            (1, Kind::Local, "localforward 3131 [h]:22"),
            (2, Kind::Remote, "remoteforward 8082 [localhost]:80"),
            (3, Kind::Local, "localforward 4000 [h]:4"),
            (6, Kind::Dynamic, "dynamicforward 1081"),
        ];
        let want: Vec<(usize, Kind, String)> =
            want.iter().map(|&(n, k, s)| (n, k, s.to_owned())).collect();
        assert_eq!(got, want);
    }

    fn in_use() -> Busy {
        Busy::Tcp {
            addrs: vec![(
                "127.0.0.1:3131".parse().unwrap(),
                nix::errno::Errno::EADDRINUSE,
            )],
        }
    }

    #[test]
    fn holder_pid_and_drops_of_each_verdict() {
        use crate::holder::{Holder, Unknown};
        let at: std::net::SocketAddr = "127.0.0.1:3131".parse().unwrap();
        let busy = |who: Option<Result<Holder, Unknown>>| Verdict::Busy {
            busy: in_use(),
            holders: Holders(who.into_iter().map(|w| (vec![at], w)).collect()),
        };
        let seven = Holder {
            pid: 7,
            cmdline: b"ssh".to_vec(),
        };
        let table = [
            (Verdict::Free, None, false),
            (Verdict::OwnMaster { pid: 9 }, Some(9), false),
            (busy(None), None, true),
            (busy(Some(Err(Unknown::OtherUser { uid: 5 }))), None, true),
            (busy(Some(Ok(seven))), Some(7), true),
        ];
        for (v, pid, drops) in table {
            assert_eq!(v.holder_pid(), pid, "{v:?}");
            assert_eq!(v.drops(), drops, "{v:?}");
        }
    }

    #[test]
    fn origin_names_the_options_then_the_config_line() {
        let a = args(&["-L3131:h:22", "-v", "-L", "3131:h:22", "host"]);
        let d = |opts: Vec<usize>, from_config: Option<(&str, usize)>| Decision {
            forward: forward::parse_arg(b'L', b"3131:h:22").unwrap(),
            opts,
            verdict: Verdict::Free,
            from_config: from_config.map(|(f, line)| Origin {
                file: f.into(),
                line,
                text: b"LocalForward 3131 h:22".to_vec(),
            }),
        };
        let table = [
            (d(vec![], None), "ssh_config"),
            (d(vec![], Some(("/c", 3))), "/c:3"),
            (d(vec![0], None), "command line -L 3131:h:22"),
            (
                d(vec![0, 2], Some(("/c", 3))),
                "command line -L 3131:h:22, command line -L 3131:h:22, /c:3",
            ),
        ];
        for (dec, want) in table {
            assert_eq!(dec.origin(&a), want);
        }
    }

    #[test]
    fn a_busy_port_names_its_holder_a_refused_one_does_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let me = std::process::id();
        let v = busy_verdict(
            Busy::Tcp {
                addrs: vec![(addr, nix::errno::Errno::EADDRINUSE)],
            },
            None,
        );
        assert_eq!(v.holder_pid(), Some(me), "{v:?}");
        // A privilege problem, a path, an address not on this host: no holder to look for.
        for busy in [
            Busy::Tcp {
                addrs: vec![(addr, nix::errno::Errno::EACCES)],
            },
            Busy::PathExists {
                path: b"/tmp/x".to_vec(),
            },
            Busy::NotLocal { addr },
        ] {
            let v = busy_verdict(busy, None);
            assert!(
                matches!(&v, Verdict::Busy { holders, .. } if holders.0.is_empty()),
                "{v:?}"
            );
        }
    }

    #[test]
    fn verdict_probes_the_local_listen_side() {
        let opts = probe::Opts::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = forward::parse_arg(b'L', format!("127.0.0.1:{port}:h:22").as_bytes()).unwrap();
        let v = verdict(&f, &opts);
        assert_eq!(v.holder_pid(), Some(std::process::id()), "{v:?}");
        drop(l);
        assert_eq!(verdict(&f, &opts), Verdict::Free);
        // A remote forward listens on the server: never probed here.
        let r = forward::parse_arg(b'R', format!("127.0.0.1:{port}:h:22").as_bytes()).unwrap();
        let _held = TcpListener::bind(("127.0.0.1", port));
        assert_eq!(verdict(&r, &opts), Verdict::Free);
    }
}
