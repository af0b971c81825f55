//! Attribution: which forward a failure line of ssh's log names, and the
//! words rosh-ssh says about it: the only place they live.

use crate::forward::{Endpoint, Forward, Kind};
use crate::matcher::{Call, Failure};
use crate::plan::Verdict;
use std::net::SocketAddr;

/// How a forward failed after connecting, as ssh's log told it
/// (supervise/log.rs reads it; [`reason`] words it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// ssh's failure line (through a master, the master's reason).
    Said(Failure),
    /// `Could not request local forwarding.` names no forward: the probe
    /// found this one's port taken, as it says.
    Held(Verdict),
    /// A local forward that bound none of its addresses: each address ssh
    /// named, which call failed there, and why.
    Unbound {
        port: u16,
        failed: Vec<(Call, Vec<u8>, Vec<u8>)>,
    },
    /// A local forward listening on some of its addresses only: channels.c
    /// `channel_setup_fwd_listener_tcpip` counts a forward bound once as
    /// set up. `failed` holds each address ssh could not bind, and why.
    Partial {
        bound: Vec<SocketAddr>,
        failed: Vec<(SocketAddr, String)>,
    },
    /// ssh's line names a remote port only, and several remote forwards
    /// share it (plan indexes): one of them was refused (blame.rs
    /// `Attribution`).
    Shared { among: Vec<usize>, port: u16 },
}

/// When a failed forward is reported: dropped before connecting, or failed
/// after connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// At the probe, before ssh starts.
    Probe,
    /// ssh's log named it, the session going on.
    Connected,
}

/// One `rosh-ssh:` line about a forward that can't be had: the only place
/// its wording lives. `name` is the forward as the user wrote it
/// (`describe::forward`). With `--require-forward` a forward found taken
/// before connecting stops the run; one refused after connecting ends the
/// connection (ssh runs with ExitOnForwardFailure=yes).
pub fn warning(name: &str, reason: &str, require: bool, when: When) -> String {
    match (require, when) {
        (false, _) => format!("rosh-ssh: {name}: {reason}; forward dropped"),
        (true, When::Probe) => {
            format!("rosh-ssh: {name}: {reason}; not connecting (--require-forward)")
        }
        (true, When::Connected) => {
            format!("rosh-ssh: {name}: {reason}; ssh ends the connection (--require-forward)")
        }
    }
}

/// A local forward listening on some of its addresses only: what listens,
/// what does not and why, and whether rosh-ssh completes it once the rest
/// is free.
pub fn partial(
    name: &str,
    bound: &[SocketAddr],
    failed: &[(SocketAddr, String)],
    completing: bool,
) -> String {
    let join = |v: Vec<String>| v.join(", ");
    let bound = join(bound.iter().map(ToString::to_string).collect());
    let failed = join(
        failed
            .iter()
            .map(|(a, why)| format!("{a} ({why})"))
            .collect(),
    );
    let then = if completing {
        "; completed once that is free"
    } else {
        ""
    };
    format!("rosh-ssh: {name}: listening on {bound} only, not on {failed}{then}")
}

/// Why a forward failed after connecting, in words.
pub fn reason(r: &Refusal) -> String {
    match r {
        Refusal::Said(f) => said(f),
        Refusal::Held(v) => crate::describe::reason(v).unwrap_or_default(),
        Refusal::Unbound { port, failed } => failed
            .iter()
            .map(|(call, a, why)| {
                format!(
                    "{} [{}]:{port}: {}",
                    call.word(),
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(why)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Refusal::Partial { failed, .. } => failed
            .iter()
            .map(|(a, why)| format!("{a}: {why}"))
            .collect::<Vec<_>>()
            .join(", "),
        Refusal::Shared { port, .. } => format!("the server refused listen port {port}"),
    }
}

/// The one line about forward `index` (named as `names` has it) failing
/// after connecting. `restoring`: a partly bound forward will be completed.
pub fn after_connecting(
    names: &[String],
    index: usize,
    r: &Refusal,
    require: bool,
    restoring: bool,
) -> String {
    let name = |i: usize| names.get(i).map_or("", String::as_str);
    match r {
        // Not a failure to ssh: ExitOnForwardFailure lets it be.
        Refusal::Partial { bound, failed } => partial(name(index), bound, failed, restoring),
        Refusal::Shared { among, port } => {
            let among: Vec<String> = among.iter().map(|&i| name(i).to_owned()).collect();
            shared(&among, *port)
        }
        _ => warning(name(index), &reason(r), require, When::Connected),
    }
}

/// `rosh-ssh: <forward>: restored`.
pub fn restored(name: &str) -> String {
    format!("rosh-ssh: {name}: restored")
}

/// ssh.c `ssh_confirm_remote_forward`'s debug line, forced out for `-f`:
/// `remote forward success for: listen ...` or `... failure for: ...`.
/// One per remote forward, so rosh-ssh can count the server's answers.
pub fn is_remote_answer(line: &[u8]) -> bool {
    memchr::memmem::find(line, b"remote forward success for: listen ").is_some()
        || memchr::memmem::find(line, b"remote forward failure for: listen ").is_some()
}

/// The reason a failure gives for `forward`, when it names that forward.
/// Through a ControlMaster the reason is the master's (see [`through_master`]).
/// A line that names a remote port only names every remote forward on it:
/// [`Attribution`] tells them apart where ssh's lines allow.
pub fn names(f: &Failure, forward: &Forward) -> Option<String> {
    matches(f, forward).then(|| said(f))
}

/// Whether failure `f` names `forward`.
fn matches(f: &Failure, forward: &Forward) -> bool {
    let f = through_master(f);
    match (&f, &forward.kind, &forward.listen) {
        (Failure::RemotePort { port, .. }, Kind::Remote, Endpoint::Tcp { port: p, .. }) => {
            p == port && *p != 0
        }
        (
            Failure::RemoteRefused { listen_host, port },
            Kind::Remote,
            Endpoint::Tcp { host, port: p },
        ) => p == port && *p != 0 && host == listen_host,
        (Failure::RemotePath { path, .. }, Kind::Remote, Endpoint::Path(p)) => p == path,
        (
            Failure::LocalBind { port, .. } | Failure::LocalCannotListen { port },
            Kind::Local | Kind::Dynamic,
            Endpoint::Tcp { port: p, .. },
        ) => p == port,
        (Failure::LocalPath { path }, Kind::Local | Kind::Dynamic, Endpoint::Path(p)) => p == path,
        _ => false,
    }
}

/// A failure in rosh-ssh's words (through a ControlMaster, the master's
/// reason).
pub fn said(f: &Failure) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match through_master(f) {
        Failure::RemotePort { port, .. } | Failure::RemoteRefused { port, .. } => {
            format!("the server refused listen port {port}")
        }
        Failure::RemotePath { path, .. } => {
            format!("the server refused listen path {}", text(&path))
        }
        Failure::LocalBind {
            call,
            addr,
            port,
            reason,
        } => format!(
            "{} [{}]:{port}: {}",
            call.word(),
            text(&addr),
            text(&reason)
        ),
        Failure::ListenUnnamed { reason } => format!("listen: {}", text(&reason)),
        Failure::LocalCannotListen { port } => format!("cannot listen to port {port}"),
        Failure::LocalPath { path } => format!("cannot bind to path {}", text(&path)),
        Failure::LocalNoneSucceeded => "could not request local forwarding".into(),
        Failure::Mux { reason } => text(&reason),
        Failure::MuxRequest { port, .. } => format!("requested listen port {port}"),
    }
}

/// Which forwards the failure lines of one ssh's log name, line after line.
///
/// ssh's `Warning:`/`Error: remote port forwarding failed for listen port N`
/// names the port only, so two remote forwards on one port number with
/// different listen addresses (`-R 127.0.0.1:N:...`, `-R 127.0.0.2:N:...`
/// with the server's GatewayPorts clientspecified) read alike. The lines
/// right before it tell them apart, and this reads them:
/// - ssh.c `ssh_confirm_remote_forward` writes its debug line `remote forward
///   failure for: listen HOST:N, ...` (forced out with LogVerbose, see
///   [`crate::plumbing::FORCED`]) and then, in the same call, the `Warning:`/`Error:` line:
///   the debug line names the forward, and the port-only line after it is
///   the same refusal (named again, so its line is replaced, with no second
///   report);
/// - through a ControlMaster, mux.c `mux_client_forward` writes `Requesting
///   forwarding of remote forward HOST:N -> ...` and then waits for the
///   master's answer: a failure reply for port N that follows is that
///   forward's.
///
/// Without those lines (OpenSSH before 8.5 has no LogVerbose, and at
/// LogLevel INFO only the `Warning:` line shows) a port-only line names the
/// one remote forward on that port; when several share it, it is
/// [`Blamed::Shared`]: rosh-ssh says so rather than guess, and restores
/// neither. Bounded: only the last naming line is kept.
#[derive(Debug, Default)]
pub struct Attribution {
    /// The port the last debug or request line named, and the plan
    /// indexes of the forwards it named.
    last: Option<(u16, Vec<usize>)>,
}

/// What one failure line says about the plan's forwards.
#[derive(Debug, PartialEq, Eq)]
pub enum Blamed {
    /// No forward of the plan: the line is ssh's own.
    Nothing,
    /// These forwards (plan indexes).
    Named(Vec<usize>),
    /// A port-only line, and several remote forwards on that port: any of
    /// them may be the refused one (plan indexes).
    Shared { among: Vec<usize>, port: u16 },
}

impl Attribution {
    /// Reads one failure line (the matcher's [`Failure`]) against the
    /// plan's forwards (a forward's plan index is its place here).
    pub fn blame(&mut self, f: &Failure, plan: &[Forward]) -> Blamed {
        let forwards: Vec<(usize, &Forward)> = plan.iter().enumerate().collect();
        let by_port = |port: u16| -> Vec<usize> {
            let f = Failure::RemotePort { port, fatal: false };
            forwards
                .iter()
                .filter(|(_, fwd)| names(&f, fwd).is_some())
                .map(|(i, _)| *i)
                .collect()
        };
        let refused = |port: u16, among: Vec<usize>| -> Blamed {
            match among.len() {
                0 => Blamed::Nothing,
                1 => Blamed::Named(among),
                _ => Blamed::Shared { among, port },
            }
        };
        match f {
            Failure::MuxRequest { listen_host, port } => {
                // mux.c format_forward: `%.200s` of the listen host.
                let cut = |h: &[u8]| h[..h.len().min(200)].to_vec();
                let want = listen_host.as_deref().map(cut);
                let exact: Vec<usize> = forwards
                    .iter()
                    .filter(|(_, fwd)| {
                        fwd.kind == Kind::Remote
                            && matches!(&fwd.listen, Endpoint::Tcp { host, port: p }
                                if p == port && *p != 0 && host.as_deref().map(cut) == want)
                    })
                    .map(|(i, _)| *i)
                    .collect();
                let named = if exact.is_empty() {
                    by_port(*port)
                } else {
                    exact
                };
                self.last = Some((*port, named));
                Blamed::Nothing
            }
            Failure::RemoteRefused { port, .. } => {
                let exact: Vec<usize> = forwards
                    .iter()
                    .filter(|(_, fwd)| names(f, fwd).is_some())
                    .map(|(i, _)| *i)
                    .collect();
                // A listen host spelled otherwise than the plan has it:
                // never worse than the port alone.
                let named = if exact.is_empty() {
                    by_port(*port)
                } else {
                    exact
                };
                self.last = Some((*port, named.clone()));
                refused(*port, named)
            }
            _ => {
                let g = through_master(f);
                if let Failure::RemotePort { port, .. } = g {
                    return match self.last.take() {
                        Some((p, named)) if p == port => refused(port, named),
                        _ => refused(port, by_port(port)),
                    };
                }
                let hit: Vec<usize> = forwards
                    .iter()
                    .filter(|(_, fwd)| matches(&g, fwd))
                    .map(|(i, _)| *i)
                    .collect();
                if hit.is_empty() {
                    Blamed::Nothing
                } else {
                    Blamed::Named(hit)
                }
            }
        }
    }
}

/// The line for a refusal that ssh names by port alone while several
/// remote forwards share that port: it says which could be meant, and that
/// rosh-ssh can't tell.
pub fn shared(names: &[String], port: u16) -> String {
    format!(
        "rosh-ssh: {}: the server refused listen port {port} for one of these \
         (ssh's message names only the port; neither is restored)",
        names.join(" or ")
    )
}

/// mux.c: through a ControlMaster a failure comes back as the master's
/// reason: `remote port forwarding failed for listen port N` (or `listen
/// path P`) for a remote forward, `Port forwarding failed` for a local one.
pub fn through_master(f: &Failure) -> Failure {
    let Failure::Mux { reason } = f else {
        return f.clone();
    };
    let after =
        |needle: &[u8]| memchr::memmem::find(reason, needle).map(|i| &reason[i + needle.len()..]);
    if let Some(rest) = after(b"listen port ") {
        let digits: Vec<u8> = rest
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        if let Some(port) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
        {
            return Failure::RemotePort { port, fatal: true };
        }
    }
    if let Some(path) = after(b"listen path ") {
        return Failure::RemotePath {
            path: path.to_vec(),
            fatal: true,
        };
    }
    if after(b"Port forwarding failed").is_some() {
        return Failure::LocalNoneSucceeded;
    }
    f.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;

    /// Each kind of failure against a forward of each kind, with the same and another listen side.
    #[test]
    fn names_table() {
        let bind = |port| Failure::LocalBind {
            call: Call::Bind,
            addr: b"127.0.0.1".to_vec(),
            port,
            reason: b"Address already in use".to_vec(),
        };
        let rpath = |p: &[u8]| Failure::RemotePath {
            path: p.to_vec(),
            fatal: false,
        };
        let rport = |port| Failure::RemotePort { port, fatal: true };
        let lpath = |p: &[u8]| Failure::LocalPath { path: p.to_vec() };
        let cannot = |port| Failure::LocalCannotListen { port };
        let table: &[(Failure, u8, &[u8], Option<&str>)] = &[
            (
                rport(8082),
                b'R',
                b"8082:h:2",
                Some("the server refused listen port 8082"),
            ),
            (rport(8082), b'R', b"8083:h:2", None),
            (rport(8082), b'L', b"8082:h:2", None),
            // -R 0: the server picks the port; a failure for port 0 names none.
            (rport(0), b'R', b"0:h:2", None),
            (
                rpath(b"/a"),
                b'R',
                b"/a:h:2",
                Some("the server refused listen path /a"),
            ),
            (rpath(b"/a"), b'R', b"/b:h:2", None),
            (rpath(b"/a"), b'L', b"/a:h:2", None),
            (
                bind(3131),
                b'L',
                b"3131:h:2",
                Some("bind [127.0.0.1]:3131: Address already in use"),
            ),
            (
                bind(3131),
                b'D',
                b"3131",
                Some("bind [127.0.0.1]:3131: Address already in use"),
            ),
            (bind(3131), b'L', b"3132:h:2", None),
            (bind(3131), b'R', b"3131:h:2", None),
            (
                cannot(3131),
                b'L',
                b"3131:h:2",
                Some("cannot listen to port 3131"),
            ),
            (
                cannot(3131),
                b'D',
                b"3131",
                Some("cannot listen to port 3131"),
            ),
            (cannot(3131), b'L', b"3132:h:2", None),
            (cannot(3131), b'R', b"3131:h:2", None),
            (
                lpath(b"/s"),
                b'L',
                b"/s:h:2",
                Some("cannot bind to path /s"),
            ),
            (lpath(b"/s"), b'L', b"/t:h:2", None),
            (lpath(b"/s"), b'R', b"/s:h:2", None),
            (Failure::LocalNoneSucceeded, b'L', b"3131:h:2", None),
        ];
        for (f, letter, spec, want) in table {
            let fwd = parse_arg(*letter, spec).unwrap();
            assert_eq!(
                names(f, &fwd).as_deref(),
                *want,
                "{f:?} vs -{} {}",
                *letter as char,
                String::from_utf8_lossy(spec)
            );
        }
    }

    #[test]
    fn failures_name_their_forward_only() {
        let r = parse_arg(b'R', b"8082:localhost:22").unwrap();
        let l = parse_arg(b'L', b"3131:localhost:22").unwrap();
        let port = Failure::RemotePort {
            port: 8082,
            fatal: false,
        };
        assert!(names(&port, &r).is_some());
        assert!(names(&port, &l).is_none());
        let mux = Failure::Mux {
            reason: b"remote port forwarding failed for listen port 8082".to_vec(),
        };
        assert_eq!(
            names(&mux, &r).as_deref(),
            Some("the server refused listen port 8082")
        );
        let bind = Failure::LocalBind {
            call: Call::Bind,
            addr: b"127.0.0.1".to_vec(),
            port: 3131,
            reason: b"Address already in use".to_vec(),
        };
        assert!(names(&bind, &l).is_some());
        assert!(names(&bind, &r).is_none());
        assert!(names(&Failure::LocalNoneSucceeded, &l).is_none());
    }

    /// Runs `lines` (failures as the matcher reads them) through one
    /// attribution over the plan `specs`; what each line blames.
    fn attribute(specs: &[&str], lines: &[Failure]) -> Vec<Blamed> {
        let plan: Vec<Forward> = specs
            .iter()
            .map(|s| {
                let (l, spec) = s.split_at(1);
                parse_arg(l.as_bytes()[0], spec.as_bytes()).unwrap()
            })
            .collect();
        let mut a = Attribution::default();
        lines.iter().map(|f| a.blame(f, &plan)).collect()
    }

    #[test]
    fn attribution_table() {
        let refused = |h: Option<&str>, port| Failure::RemoteRefused {
            listen_host: h.map(|h| h.as_bytes().to_vec()),
            port,
        };
        let request = |h: Option<&str>, port| Failure::MuxRequest {
            listen_host: h.map(|h| h.as_bytes().to_vec()),
            port,
        };
        let warning = |port| Failure::RemotePort { port, fatal: false };
        let error = |port| Failure::RemotePort { port, fatal: true };
        let mux = |port: u16| Failure::Mux {
            reason: format!("remote port forwarding failed for listen port {port}").into_bytes(),
        };
        let named = |i: &[usize], _port: u16| Blamed::Named(i.to_vec());
        let shared = |among: &[usize], port| Blamed::Shared {
            among: among.to_vec(),
            port,
        };
        let two = [
            "R127.0.0.1:8082:h:22",
            "R127.0.0.2:8082:h:22",
            "R9000:h:22",
            "L8082:h:22",
        ];
        type Row<'a> = (&'a [&'a str], Vec<Failure>, Vec<Blamed>);
        let table: Vec<Row> = vec![
            // The debug line names the forward; the Warning after it is
            // the same refusal.
            (
                &two,
                vec![refused(Some("127.0.0.1"), 8082), warning(8082)],
                vec![named(&[0], 8082), named(&[0], 8082)],
            ),
            (
                &two,
                vec![refused(Some("127.0.0.2"), 8082), error(8082)],
                vec![named(&[1], 8082), named(&[1], 8082)],
            ),
            // Both refused, one after the other.
            (
                &two,
                vec![
                    refused(Some("127.0.0.1"), 8082),
                    warning(8082),
                    refused(Some("127.0.0.2"), 8082),
                    warning(8082),
                ],
                vec![
                    named(&[0], 8082),
                    named(&[0], 8082),
                    named(&[1], 8082),
                    named(&[1], 8082),
                ],
            ),
            // No debug line (OpenSSH before 8.5 at LogLevel INFO): a port
            // two forwards share is said to be shared; one alone is named.
            (&two, vec![warning(8082)], vec![shared(&[0, 1], 8082)]),
            (&two, vec![warning(9000)], vec![named(&[2], 9000)]),
            (&two, vec![warning(9001)], vec![Blamed::Nothing]),
            // A debug line for another port does not attribute this one.
            (
                &two,
                vec![refused(None, 9000), warning(8082)],
                vec![named(&[2], 9000), shared(&[0, 1], 8082)],
            ),
            // A listen host the plan spells otherwise: by port, as before.
            (
                &["R127.0.0.1:8082:h:22", "R9000:h:22"],
                vec![refused(Some("localhost"), 8082), warning(8082)],
                vec![named(&[0], 8082), named(&[0], 8082)],
            ),
            (
                &two,
                vec![refused(Some("localhost"), 8082)],
                vec![shared(&[0, 1], 8082)],
            ),
            // No listen host, an empty one, the wildcard.
            (
                &["R8082:h:22", "R:8082:h:22", "R*:8082:h:22"],
                vec![
                    refused(None, 8082),
                    refused(Some(""), 8082),
                    refused(Some("*"), 8082),
                ],
                vec![named(&[0], 8082), named(&[1], 8082), named(&[2], 8082)],
            ),
            // Through a ControlMaster: the request names the forward the
            // failure reply after it answers.
            (
                &two,
                vec![
                    request(Some("127.0.0.1"), 8082),
                    request(Some("127.0.0.2"), 8082),
                    mux(8082),
                ],
                vec![Blamed::Nothing, Blamed::Nothing, named(&[1], 8082)],
            ),
            (
                &["R8082:h:22", "R127.0.0.2:8082:h:22"],
                vec![request(None, 8082), mux(8082)],
                vec![Blamed::Nothing, named(&[0], 8082)],
            ),
            (&two, vec![mux(8082)], vec![shared(&[0, 1], 8082)]),
            // Other failures are named as before.
            (
                &two,
                vec![Failure::LocalCannotListen { port: 8082 }],
                vec![Blamed::Named(vec![3])],
            ),
        ];
        for (specs, lines, want) in table {
            assert_eq!(attribute(specs, &lines), want, "{specs:?} {lines:?}");
        }
    }

    #[test]
    fn the_shared_line_names_every_candidate() {
        assert_eq!(
            shared(
                &[
                    "-R 127.0.0.1:8082:h:22".into(),
                    "-R 127.0.0.2:8082:h:22".into()
                ],
                8082
            ),
            "rosh-ssh: -R 127.0.0.1:8082:h:22 or -R 127.0.0.2:8082:h:22: the server refused \
             listen port 8082 for one of these (ssh's message names only the port; neither is restored)"
        );
    }

    #[test]
    fn remote_answers_are_counted_from_the_debug_line() {
        assert!(is_remote_answer(
            b"ssh.c:ssh_confirm_remote_forward():1803 (pid=1): remote forward success for: listen 8082, connect localhost:22\r\n"
        ));
        assert!(is_remote_answer(
            b"debug1: remote forward failure for: listen 8082, connect localhost:22\r\n"
        ));
        assert!(!is_remote_answer(
            b"Warning: remote port forwarding failed for listen port 8082\r\n"
        ));
    }
}
