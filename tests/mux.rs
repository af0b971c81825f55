//! mux.rs against a real OpenSSH master on the lab's sshd, and calls
//! through a live master with a config forward whose port is taken, as
//! Ansible makes them (issue 25): `-o ControlMaster=auto -o
//! ControlPersist=60s -o ControlPath=...`.

mod lab;

use lab::{Lab, rosh_ssh};
use rosh_ssh::{mux, ownmaster};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ssh -O check`'s answer on `ctl`: the pid it prints, if any.
fn ssh_o_check(ctl: &Path) -> Option<u32> {
    let out = Command::new(lab::ssh())
        .args(["-F", "/dev/null", "-S"])
        .arg(ctl)
        .args(["-O", "check", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    let rest = &err[err.find("Master running (pid=")? + 20..];
    rest[..rest.find(')')?].parse().ok()
}

fn exit_master(ctl: &Path) {
    let _ = Command::new(lab::ssh())
        .args(["-F", "/dev/null", "-S"])
        .arg(ctl)
        .args(["-O", "exit", "x"])
        .stdin(Stdio::null())
        .output();
}

/// Ansible's options for a master on `ctl`.
fn ansible(ctl: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        "ControlMaster=auto".into(),
        "-o".into(),
        "ControlPersist=60s".into(),
        "-o".into(),
        format!("ControlPath={}", ctl.display()),
    ]
}

fn run(program: &Path, cfg: &Path, ctl: &Path, cmd: &str) -> Output {
    Command::new(program)
        .arg("-F")
        .arg(cfg)
        .args(ansible(ctl))
        .args(["lab", cmd])
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_real_master_answers_with_the_pid_ssh_o_check_prints() {
    let Some(lab) = Lab::start() else { return };
    let ctl = lab.path().join("cm");
    let st = Command::new(lab::ssh())
        .args(lab.args())
        .args(["-fN", "-o", "ControlMaster=yes", "-o"])
        .arg(format!("ControlPath={}", ctl.display()))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let theirs = ssh_o_check(&ctl);
    let ours = mux::alive_check(&ctl, mux::TIMEOUT);
    let via = ownmaster::master(&rosh_ssh::effective::Effective {
        control_path: ctl.to_string_lossy().into_owned(),
        ..Default::default()
    });
    // Asked again and again on one master: each check a connection of its own.
    let again: Vec<_> = (0..20)
        .map(|_| mux::alive_check(&ctl, mux::TIMEOUT).ok())
        .collect();
    exit_master(&ctl);
    let pid = theirs.expect("ssh -O check names the master");
    assert_eq!(ours, Ok(pid));
    assert_eq!(via, Some(pid));
    assert!(again.iter().all(|p| *p == Some(pid)), "{again:?}");
    // Gone: the socket is removed (or stale); the answer comes at once.
    let t = Instant::now();
    let gone = mux::alive_check(&ctl, mux::TIMEOUT);
    assert!(
        matches!(gone, Err(mux::Failure::Connect(_))),
        "{gone:?} after exit"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn ansible_calls_ride_the_master_when_another_process_holds_the_forward() {
    let Some(lab) = Lab::start() else { return };
    let held = lab::PortHolder::v4();
    let ctl = lab.path().join("cm");
    let cfg = lab.config_with(
        "held.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{} localhost:22\n",
            held.port
        ),
    );
    // Ansible's first call made the master, without the forward.
    let first = run(Path::new(lab::ssh()), &lab.config(), &ctl, "true");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = lab.logins();
    let outs: Vec<Output> = (0..3)
        .map(|i| run(&rosh_ssh(), &cfg, &ctl, &format!("echo call{i}")))
        .collect();
    let after = lab.logins();
    exit_master(&ctl);
    for (i, out) in outs.iter().enumerate() {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(text(&out.stdout), format!("call{i}\n"));
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].starts_with(&format!(
                "rosh-ssh: LocalForward 127.0.0.1:{} localhost:22 (",
                held.port
            )) && lines[0].contains(&format!("held by pid {}", std::process::id()))
                && lines[0].ends_with("forward dropped"),
            "{err}"
        );
    }
    assert_eq!(
        after,
        before,
        "every call rode the master: {}",
        lab.sshd_log()
    );
}

#[test]
fn ansible_calls_ride_the_master_that_holds_the_forward_in_silence() {
    let Some(lab) = Lab::start() else { return };
    let port = lab::free_port();
    let ctl = lab.path().join("cm");
    let cfg = lab.config_with(
        "own.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{port} localhost:{}\n",
            lab.port
        ),
    );
    // Ansible's first call, through rosh-ssh too: it makes the master,
    // which listens on the forward's port.
    let first = run(&rosh_ssh(), &cfg, &ctl, "true");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let master = mux::alive_check(&ctl, mux::TIMEOUT);
    let before = lab.logins();
    let outs: Vec<Output> = (0..3)
        .map(|i| run(&rosh_ssh(), &cfg, &ctl, &format!("echo call{i}")))
        .collect();
    let verbose = Command::new(rosh_ssh())
        .arg("--verbose")
        .arg("-F")
        .arg(&cfg)
        .args(ansible(&ctl))
        .args(["lab", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let banner = lab.banner_through(port);
    let after = lab.logins();
    exit_master(&ctl);
    let master = master.expect("the first call left a master");
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("call{i}\n"));
        assert_eq!(text(&out.stderr), "");
    }
    let v = text(&verbose.stderr);
    assert!(v.contains("held by this host's ControlMaster"), "{v}");
    assert!(banner.is_ok(), "the master's forward carries: {banner:?}");
    assert_eq!(
        after,
        before,
        "every call rode the master: {}",
        lab.sshd_log()
    );
    assert!(master > 1);
}
