//! What ssh will forward, matched to the words that asked for it, and the
//! probe's verdict on each: the plan both a run and `--check` start from.

use crate::argv::Args;
use crate::config::{self, Sources};
use crate::effective::Effective;
use crate::forward::{self, Forward, Kind};
use crate::holder;
use crate::probe::{self, Busy};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

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
    /// The local listen side is taken: the probe's words, and the holder's
    /// pid when /proc names it (the restorer waits on it), with its phrase.
    Busy {
        busy: String,
        holder: Option<u32>,
        held_by: Option<String>,
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
            Verdict::Busy { holder, .. } => *holder,
            Verdict::OwnMaster { pid } => Some(*pid),
            Verdict::Free => None,
        }
    }

    /// Why it can't be had, in words: `in use: ADDR, held by pid N (...)`.
    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Busy {
                busy,
                held_by: Some(h),
                ..
            } => Some(format!("{busy}, {h}")),
            Verdict::Busy { busy, .. } => Some(busy.clone()),
            Verdict::OwnMaster { .. } | Verdict::Free => None,
        }
    }
}

/// One forward ssh will set up, and what rosh-ssh makes of it.
pub struct Decision {
    pub forward: Forward,
    /// The command-line options that ask for it (indexes into `args.opts`).
    pub opts: Vec<usize>,
    pub verdict: Verdict,
    /// The first config line that asks for it, as `file:line`.
    pub from_config: Option<String>,
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
        from.extend(self.from_config.clone());
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
    /// Matches ssh's forwards to the options that asked for them and
    /// probes each local listen side. A busy forward is dropped.
    pub fn make(args: &Args, eff: &Effective, sources: &Sources) -> Plan {
        let from_argv = argv_forwards(args);
        let mut known: Vec<Forward> = from_argv.iter().map(|(_, f)| f.clone()).collect();
        known.extend(config::forwards(sources));
        let forwards = eff.resolve(&known);
        let origins = config::origins_of(sources, &forwards);
        let decisions = forwards
            .iter()
            .zip(origins)
            .map(|(f, origins)| {
                let opts: Vec<usize> = from_argv
                    .iter()
                    .filter(|(_, g)| g.prints_as(f))
                    .map(|(n, _)| *n)
                    .collect();
                Decision {
                    forward: f.clone(),
                    opts,
                    verdict: verdict(f, &eff.probe),
                    from_config: origins
                        .first()
                        .map(|o| format!("{}:{}", o.file.display(), o.line)),
                }
            })
            .collect();
        Plan { decisions }
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
/// reading /proc is done only for what is busy (process `first` looked at
/// before the others).
fn busy_verdict(busy: Busy, first: Option<u32>) -> Verdict {
    let found = match &busy {
        // A privilege problem, not a conflict: there is no holder to name.
        Busy::Tcp { err, .. } if *err != nix::errno::Errno::EADDRINUSE => None,
        Busy::NotLocal { .. } => None,
        Busy::Tcp { addr, .. } => Some(holder::tcp_listener_first(*addr, first)),
        Busy::PathLive { path } => Some(holder::unix_listener_first(path, first)),
        Busy::PathExists { .. } => None,
    };
    Verdict::Busy {
        busy: busy.to_string(),
        holder: found.as_ref().and_then(|h| h.as_ref().ok()).map(|h| h.pid),
        held_by: found.map(|h| h.map_or_else(|u| u.to_string(), |h| h.to_string())),
    }
}

/// The probe's reason to drop a forward, if any.
pub fn probe_forward(f: &Forward, opts: &probe::Opts) -> Option<String> {
    verdict(f, opts).reason()
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

    #[test]
    fn holder_pid_and_reason_of_each_verdict() {
        let busy = |holder, held_by: Option<&str>| Verdict::Busy {
            busy: "in use: 127.0.0.1:3131".into(),
            holder,
            held_by: held_by.map(str::to_owned),
        };
        let table = [
            (Verdict::Free, None, None, false),
            (Verdict::OwnMaster { pid: 9 }, Some(9), None, false),
            (busy(None, None), None, Some("in use: 127.0.0.1:3131"), true),
            (
                busy(Some(7), Some("held by pid 7 (ssh)")),
                Some(7),
                Some("in use: 127.0.0.1:3131, held by pid 7 (ssh)"),
                true,
            ),
        ];
        for (v, pid, reason, drops) in table {
            assert_eq!(v.holder_pid(), pid, "{v:?}");
            assert_eq!(v.reason().as_deref(), reason, "{v:?}");
            assert_eq!(v.drops(), drops, "{v:?}");
        }
    }

    #[test]
    fn origin_names_the_options_then_the_config_line() {
        let a = args(&["-L3131:h:22", "-v", "-L", "3131:h:22", "host"]);
        let d = |opts: Vec<usize>, from_config: Option<&str>| Decision {
            forward: forward::parse_arg(b'L', b"3131:h:22").unwrap(),
            opts,
            verdict: Verdict::Free,
            from_config: from_config.map(str::to_owned),
        };
        let table = [
            (d(vec![], None), "ssh_config"),
            (d(vec![], Some("/c:3")), "/c:3"),
            (d(vec![0], None), "command line -L 3131:h:22"),
            (
                d(vec![0, 2], Some("/c:3")),
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
                addr,
                err: nix::errno::Errno::EADDRINUSE,
            },
            None,
        );
        assert_eq!(v.holder_pid(), Some(me), "{v:?}");
        let Verdict::Busy { held_by, .. } = &v else {
            panic!("{v:?}")
        };
        assert!(
            held_by.as_deref().unwrap().contains(&me.to_string()),
            "{v:?}"
        );
        // A privilege problem, a path, an address not on this host: no holder to look for.
        for busy in [
            Busy::Tcp {
                addr,
                err: nix::errno::Errno::EACCES,
            },
            Busy::PathExists {
                path: b"/tmp/x".to_vec(),
            },
            Busy::NotLocal { addr },
        ] {
            let v = busy_verdict(busy, None);
            assert!(
                matches!(
                    v,
                    Verdict::Busy {
                        holder: None,
                        held_by: None,
                        ..
                    }
                ),
                "{v:?}"
            );
        }
    }

    #[test]
    fn probe_forward_says_why_a_taken_port_cannot_be_had() {
        let opts = probe::Opts::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = forward::parse_arg(b'L', format!("127.0.0.1:{port}:h:22").as_bytes()).unwrap();
        let why = probe_forward(&f, &opts).expect("a held port is busy");
        assert!(
            why.starts_with(&format!("in use: 127.0.0.1:{port}, ")),
            "{why}"
        );
        assert!(why.contains(&std::process::id().to_string()), "{why}");
        drop(l);
        assert_eq!(probe_forward(&f, &opts), None);
    }
}
