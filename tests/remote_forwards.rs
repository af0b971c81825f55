//! Several remote forwards, one refused by the server: only that one is
//! dropped and named in one line, the others carry connections, and the
//! remote command runs once with its stdin once.
//!
//! What is asserted here is what the user sees, whichever way rosh-ssh gets
//! there (a retry without the refused forward, or one ssh going on with
//! ExitOnForwardFailure=no while rosh-ssh reads its log).
mod lab;

use lab::{Lab, TempDir, rosh_ssh};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: a loaded 2-core CI machine, a few ssh logins.
const PATIENCE: Duration = Duration::from_secs(60);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A local service that greets each client with its own line: the target
/// of a healthy remote forward. Serves until `PATIENCE` has passed or
/// `max` clients came.
struct Greeter {
    port: u16,
    greeting: String,
}

fn greeter(max: usize) -> Greeter {
    let l: TcpListener = lab::fresh_listener();
    let port = l.local_addr().unwrap().port();
    let greeting = format!("hello from {port}\n");
    let g = greeting.clone();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        let mut served = 0;
        while served < max && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(g.as_bytes());
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    Greeter { port, greeting }
}

/// Reads what a forwarded port answers; retries the connect for a while
/// (the forward may be set up a moment after the remote command started).
fn through(port: u16) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let mut got = String::new();
                match s.read_to_string(&mut got) {
                    Ok(_) if !got.is_empty() => return Ok(got),
                    Ok(_) => last = "connection closed without a greeting".into(),
                    Err(e) => last = format!("read: {e}"),
                }
            }
            Err(e) => last = format!("connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// What a run showed: exit code, stdout, stderr, and what each healthy
/// forward answered while the session was up.
struct Seen {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    answers: Vec<Result<String, String>>,
    ran: String,
}

/// Runs `rosh-ssh -F cfg lab -R ... CMD` (with `-o LogLevel=LEVEL` when
/// given; the lab's is ERROR): the remote command prints a marker and
/// echoes its stdin; once the marker shows, the healthy forwards are tried
/// from this machine (the lab's "server" side), then stdin is sent and
/// closed.
fn run(lab: &Lab, specs: &[String], healthy: &[u16], input: &str, level: Option<&str>) -> Seen {
    let runs = TempDir::new("rfwd");
    let count = runs.path().join("count");
    let tmp = TempDir::new("rfwd-tmp");
    let remote_cmd = format!("echo ran >> {}; echo ready; cat", count.display());
    let mut c = Command::new(rosh_ssh());
    // ExitOnForwardFailure=yes: plain ssh would end at the refused forward,
    // before the command runs; rosh-ssh must not, and must not lose the rest.
    if let Some(l) = level {
        c.arg("-o").arg(format!("LogLevel={l}"));
    }
    c.args(lab.args()).args(["-o", "ExitOnForwardFailure=yes"]);
    for s in specs {
        c.arg("-R").arg(s);
    }
    c.arg(&remote_cmd)
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .env_remove("ROSH_REQUIRE_FORWARD")
        .env("TMPDIR", tmp.path())
        .env("XDG_RUNTIME_DIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn rosh-ssh");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    // The first line (the marker) is handed over on its own, then the rest.
    let (tx, rx) = mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut first = String::new();
        let _ = r.read_line(&mut first);
        let _ = tx.send(first.clone());
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
        first + &rest
    });
    let first = match rx.recv_timeout(PATIENCE) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no output from the remote command within {PATIENCE:?}");
        }
    };
    let answers = if first == "ready\n" {
        healthy.iter().map(|&p| through(p)).collect()
    } else {
        Vec::new()
    };
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rosh-ssh still running {PATIENCE:?} after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = text(&err_reader.join().unwrap());
    let ran = std::fs::read_to_string(&count).unwrap_or_default();
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != lab::MEMO_DIR)
        .collect();
    assert!(left.is_empty(), "rosh-ssh left {left:?} in its TMPDIR");
    Seen {
        code: status.code(),
        stdout,
        stderr,
        answers,
        ran,
    }
}

/// The runs each test makes, and whether rosh-ssh can name the refused
/// forward in each: at the lab's LogLevel ERROR it can from OpenSSH 8.5
/// (LogVerbose forces ssh's line out); before 8.5 ssh logs the refusal at
/// INFO only (ssh.c ssh_confirm_remote_forward: logit), so at ERROR the
/// session goes on without the forward and without a word, as plain ssh
/// with ExitOnForwardFailure=no, and at INFO rosh-ssh names it.
fn levels() -> Vec<(Option<&'static str>, bool)> {
    if lab::client_at_least(8, 5) {
        vec![(None, true)]
    } else {
        vec![(None, false), (Some("INFO"), true)]
    }
}

/// ssh's own line at INFO for the lab's `UserKnownHostsFile /dev/null`,
/// the same with plain ssh: not rosh-ssh's business.
fn ssh_known_hosts_line(l: &&str) -> bool {
    !(l.starts_with("Warning: Permanently added ") && l.ends_with(" to the list of known hosts."))
}

/// Checks one run where `refused` is the only forward the server refuses
/// (named in one line when `named`, else not a word).
fn check(seen: &Seen, refused: u16, healthy: &[(u16, &Greeter)], input: &str, named: bool) {
    let err = &seen.stderr;
    assert_eq!(seen.code, Some(0), "exit status; stderr: {err}");
    assert_eq!(seen.ran, "ran\n", "the remote command ran exactly once");
    assert_eq!(
        seen.stdout,
        format!("ready\n{input}"),
        "marker once, stdin arrives exactly once; stderr: {err}"
    );
    // The user's whole stderr: one rosh-ssh line naming the refused forward,
    // nothing else (no ssh line from a failed attempt, no second warning).
    let lines: Vec<&str> = err.lines().filter(ssh_known_hosts_line).collect();
    assert_eq!(seen.answers.len(), healthy.len(), "stdout: {}", seen.stdout);
    if !named {
        assert_eq!(lines, Vec::<&str>::new(), "nothing on stderr");
    }
    for ((port, g), got) in healthy.iter().zip(&seen.answers) {
        assert_eq!(
            got.as_deref(),
            Ok(g.greeting.as_str()),
            "the healthy forward {port} carries connections; stderr: {err}"
        );
    }
    if !named {
        return;
    }
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {err}");
    let line = lines[0];
    assert!(line.starts_with("rosh-ssh: "), "{err}");
    assert!(
        line.contains(&refused.to_string()),
        "names {refused}: {err}"
    );
    for (port, g) in healthy {
        assert!(
            !line.contains(&port.to_string()) && !line.contains(&g.port.to_string()),
            "the healthy forward {port} is named: {err}"
        );
    }
}

/// A port the server (this machine) cannot bind: held on 127.0.0.1 and,
/// when the machine has it, ::1.
fn held() -> (u16, Vec<TcpListener>) {
    loop {
        let v4 = lab::fresh_listener();
        let port = v4.local_addr().unwrap().port();
        match TcpListener::bind(("::1", port)) {
            Ok(v6) => return (port, vec![v4, v6]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return (port, vec![v4]),
        }
    }
}

/// `healthy` forwards to greeters and one refused, at position `at`, with
/// `input` on stdin: checked at each of [`levels`].
fn refused_among(healthy: usize, at: usize, input: &str) {
    let Some(lab) = Lab::start() else { return };
    let (refused, _hold) = held();
    let ok: Vec<u16> = (0..healthy).map(|_| lab::free_port()).collect();
    for (level, named) in levels() {
        let greeters: Vec<Greeter> = (0..healthy).map(|_| greeter(1)).collect();
        let mut specs: Vec<String> = ok
            .iter()
            .zip(&greeters)
            .map(|(p, g)| format!("{p}:127.0.0.1:{}", g.port))
            .collect();
        specs.insert(at, format!("{refused}:localhost:22"));
        let seen = run(&lab, &specs, &ok, input, level);
        let pairs: Vec<(u16, &Greeter)> = ok.iter().copied().zip(&greeters).collect();
        check(&seen, refused, &pairs, input, named);
    }
}

#[test]
fn two_remote_forwards_the_first_refused_only_it_is_dropped() {
    refused_among(1, 0, "stdin-once\n");
}

#[test]
fn three_remote_forwards_the_middle_one_refused_only_it_is_dropped() {
    refused_among(2, 1, "one\ntwo\n");
}

#[test]
fn three_remote_forwards_the_last_one_refused_only_it_is_dropped() {
    refused_among(2, 2, "last\n");
}

/// Reads the greeting of a service through `addr`, retried for a while.
fn greeting_at(addr: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let mut got = String::new();
                match s.read_to_string(&mut got) {
                    Ok(_) if !got.is_empty() => return Ok(got),
                    Ok(_) => last = "closed without a greeting".into(),
                    Err(e) => last = format!("read: {e}"),
                }
            }
            Err(e) => last = format!("connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// Issue 21, defect 9: `-R 127.0.0.1:P:...` and `-R 127.0.0.2:P:...` with
/// the server's GatewayPorts clientspecified, 127.0.0.1:P taken on the
/// server: only that one is named refused. The healthy one was named too
/// (a failure was matched by port number only), then cancelled,
/// re-requested and "restored" by the restorer.
#[test]
fn two_remote_forwards_on_one_port_only_the_refused_address_is_named() {
    let Some(lab) = Lab::start_with("GatewayPorts clientspecified") else {
        return;
    };
    // The server is this machine: holding 127.0.0.1:P here refuses that one.
    let held = lab::fresh_listener();
    let p = held.local_addr().unwrap().port();
    if TcpListener::bind(("127.0.0.2", p)).is_err() {
        lab::skip_or_fail("127.0.0.2 is not a loopback address here");
        return;
    }
    let g = greeter(2);
    let bad = format!("127.0.0.1:{p}:127.0.0.1:{}", g.port);
    let good = format!("127.0.0.2:{p}:127.0.0.1:{}", g.port);
    let tmp = TempDir::new("rfwd-shared");
    // Before OpenSSH 8.5 (no LogVerbose) the refusal shows only from INFO
    // (the lab's is ERROR), and only ssh's port-only line names it.
    let seen = lab::refusal_named_at("ERROR");
    let level: &[&str] = if seen { &[] } else { &["-o", "LogLevel=INFO"] };
    let mut child = Command::new(rosh_ssh())
        .args(lab.args())
        .args(level)
        .args(["-R", &bad, "-R", &good, "echo ready; cat"])
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .env_remove("ROSH_REQUIRE_FORWARD")
        .env_remove("ROSH_RESTORE")
        .env("TMPDIR", tmp.path())
        .env("XDG_RUNTIME_DIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let ready = lab::first_line(&mut child);
    let healthy = || greeting_at(&format!("127.0.0.2:{p}"));
    let before = (ready == "ready\n").then(&healthy);
    // Past the restorer's first remote retry (5 s): a healthy forward it
    // took for refused would be cancelled and asked for again by now.
    let after = before.as_ref().map(|_| {
        std::thread::sleep(Duration::from_secs(7));
        healthy()
    });
    drop(child.stdin.take());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rosh-ssh still running {PATIENCE:?} after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = text(&err_reader.join().unwrap());
    drop(held);
    assert_eq!(ready, "ready\n", "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("rosh-ssh:")).collect();
    assert_eq!(
        ours.len(),
        1,
        "one rosh-ssh line, for the refused forward: {err}"
    );
    if seen {
        assert!(
            ours[0].starts_with(&format!(
                "rosh-ssh: -R {bad}: the server refused listen port {p}"
            )),
            "{err}"
        );
        assert!(
            !err.contains("127.0.0.2"),
            "the healthy forward is named: {err}"
        );
    } else {
        // ssh names the port alone: both are named, neither restored.
        assert_eq!(
            ours[0],
            format!(
                "rosh-ssh: -R {bad} or -R {good}: the server refused listen port {p} for one \
                 of these (ssh's message names only the port; neither is restored)"
            ),
            "{err}"
        );
    }
    assert!(!err.lines().any(|l| l.ends_with(": restored")), "{err}");
    assert_eq!(before.unwrap().as_deref(), Ok(g.greeting.as_str()), "{err}");
    assert_eq!(after.unwrap().as_deref(), Ok(g.greeting.as_str()), "{err}");
}
