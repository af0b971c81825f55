//! Forwards from ssh_config, ssh's own diagnostics, and the retry without
//! the forward that failed: the incident behind rosh-ssh, reproduced.
mod lab;

use lab::{Lab, TempDir, rosh_ssh};
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Holds a port on both loopback addresses, as a stale ssh would.
struct Held {
    port: u16,
    _v4: TcpListener,
    _v6: Option<TcpListener>,
}

fn hold_both() -> Held {
    loop {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        match TcpListener::bind(("::1", port)) {
            Ok(v6) => {
                return Held {
                    port,
                    _v4: v4,
                    _v6: Some(v6),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => {
                return Held {
                    port,
                    _v4: v4,
                    _v6: None,
                };
            }
        }
    }
}

/// A `Host grav` block reaching the lab, with `extra` lines in it.
fn grav_config(lab: &Lab, name: &str, extra: &str) -> std::path::PathBuf {
    let block = format!(
        "Host grav\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n\
         \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
         \x20 BatchMode yes\n  LogLevel ERROR\n{extra}\n",
        port = lab.port,
        user = lab.user,
        key = lab.key().display()
    );
    lab.config_with(name, &block)
}

/// Runs `prog args` with `input` on stdin.
fn run_with_input(prog: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .env_remove("ROSH_SSH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out
}

#[test]
fn the_incident_local_and_remote_forward_taken_session_survives() {
    let Some(lab) = Lab::start() else { return };
    let local = hold_both();
    let remote = hold_both(); // the "server" is this machine: sshd can't bind it
    let cfg = grav_config(
        &lab,
        "incident.conf",
        &format!(
            "  LocalForward {l} localhost:22\n  RemoteForward {r} localhost:22\n  ExitOnForwardFailure yes\n",
            l = local.port,
            r = remote.port
        ),
    );
    let runs = TempDir::new("runs");
    let count = runs.path().join("count");
    let remote_cmd = format!("echo ran >> {}; cat", count.display());
    let cfg_s = cfg.to_str().unwrap();
    let input = b"stdin-once\n";

    let plain = run_with_input(
        Path::new(lab::SSH),
        &["-F", cfg_s, "grav", &remote_cmd],
        input,
    );
    assert_eq!(
        plain.status.code(),
        Some(255),
        "plain ssh: {}",
        text(&plain.stderr)
    );
    assert!(!count.exists(), "plain ssh ran the command");

    let out = run_with_input(&rosh_ssh(), &["-F", cfg_s, "grav", &remote_cmd], input);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(out.stdout, input, "stdin arrives exactly once");
    assert_eq!(
        fs::read_to_string(&count).unwrap(),
        "ran\n",
        "the command ran exactly once"
    );
    let err = text(&out.stderr);
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("rosh-ssh: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains(&format!("localforward {} ", local.port)),
        "{err}"
    );
    assert!(
        warnings[1].contains(&format!("remoteforward {} ", remote.port)),
        "{err}"
    );
}
