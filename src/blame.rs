//! Attribution: which forward a failure line of ssh's log names, the words
//! rosh-ssh says about it, and the functions whose lines it forces out of
//! ssh with LogVerbose so that no failure goes unseen.

use crate::forward::{Endpoint, Forward, Kind};
use crate::matcher::Failure;

/// readconf.c LogVerbose: the functions whose messages name a failed
/// forward (or, for a remote forward, its answer), forced out when the
/// user's LogLevel would hide them. ssh tags a forced line (log.c
/// `sshlogv`), so rosh-ssh can hold exactly those lines back from the user.
pub const FORCED: &str = "ssh.c:ssh_confirm_remote_forward():*,ssh.c:ssh_init_forwarding():*,\
channels.c:channel_setup_fwd_listener_tcpip():*,misc.c:unix_listener():*,\
mux.c:mux_client_forward():*,mux.c:mux_client_forwards():*";

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
    bound: &[std::net::SocketAddr],
    failed: &[(std::net::SocketAddr, String)],
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
pub fn names(f: &Failure, forward: &Forward) -> Option<String> {
    let f = through_master(f);
    Some(match (&f, &forward.kind, &forward.listen) {
        (Failure::RemotePort { port, .. }, Kind::Remote, Endpoint::Tcp { port: p, .. })
            if p == port && *p != 0 =>
        {
            format!("the server refused listen port {port}")
        }
        (Failure::RemotePath { path, .. }, Kind::Remote, Endpoint::Path(p)) if p == path => {
            format!(
                "the server refused listen path {}",
                String::from_utf8_lossy(path)
            )
        }
        (
            Failure::LocalBind { addr, port, reason },
            Kind::Local | Kind::Dynamic,
            Endpoint::Tcp { port: p, .. },
        ) if p == port => format!(
            "bind [{}]:{port}: {}",
            String::from_utf8_lossy(addr),
            String::from_utf8_lossy(reason)
        ),
        (
            Failure::LocalCannotListen { port },
            Kind::Local | Kind::Dynamic,
            Endpoint::Tcp { port: p, .. },
        ) if p == port => format!("cannot listen to port {port}"),
        (Failure::LocalPath { path }, Kind::Local | Kind::Dynamic, Endpoint::Path(p))
            if p == path =>
        {
            format!("cannot bind to path {}", String::from_utf8_lossy(path))
        }
        _ => return None,
    })
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
            addr: b"127.0.0.1".to_vec(),
            port: 3131,
            reason: b"Address already in use".to_vec(),
        };
        assert!(names(&bind, &l).is_some());
        assert!(names(&bind, &r).is_none());
        assert!(names(&Failure::LocalNoneSucceeded, &l).is_none());
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
