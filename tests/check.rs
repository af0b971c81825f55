//! `rosh-ssh --check`: the report of forwards, probes, holders and verdicts.
mod lab;

use lab::{Lab, PortHolder, rosh_ssh};
use std::process::{Command, Stdio};

#[test]
fn check_reports_forwards_probes_holders_and_the_server() {
    let Some(lab) = Lab::start() else { return };
    let local = PortHolder::v4();
    let remote_v4 = lab::fresh_listener();
    let remote = remote_v4.local_addr().unwrap().port();
    let cfg = lab.config_with(
        "check.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{} localhost:22\n  ExitOnForwardFailure yes\n",
            local.port
        ),
    );
    let r = format!("{remote}:localhost:22");
    let base = ["-F", cfg.to_str().unwrap(), "-R", &r, "lab"];
    let out = Command::new(rosh_ssh())
        .arg("--check")
        .args(base)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let want_local = format!(
        "LocalForward 127.0.0.1:{p} localhost:22 ({c}:2)\n  from: {c}:2\n  \
         ssh -G: localforward [127.0.0.1]:{p} [localhost]:22\n  probe: in use: 127.0.0.1:{p}, held by pid {me} (",
        p = local.port,
        c = cfg.display(),
        me = std::process::id()
    );
    assert!(text.contains(&want_local), "{text}");
    assert!(text.contains("  rosh-ssh: drops it\n"), "{text}");
    assert!(
        text.contains("ExitOnForwardFailure yes, LogLevel ERROR\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "-R {r}\n  from: command line -R {r}\n  ssh -G: remoteforward {remote} [localhost]:22\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("  probe: on the server (check with --check --remote)"),
        "{text}"
    );
    // At the lab's LogLevel ERROR a refusal is named from OpenSSH 8.5 only.
    let verdict = if lab::refusal_named_at("ERROR") {
        "  rosh-ssh: keeps it; if the server refuses it, ssh goes on without it\n"
    } else {
        "  rosh-ssh: keeps it; if the server refuses it, ssh goes on without it, unreported \
         (LogLevel ERROR hides ssh's warning, and LogVerbose needs OpenSSH 8.5)\n"
    };
    assert!(text.contains(verdict), "{text}");

    // --remote: one connection. The server (this machine) has the port
    // on 127.0.0.1 only: sshd binds ::1 too, so plain ssh's -R succeeds,
    // and the check must not call it taken.
    let remote_check = || {
        let out = Command::new(rosh_ssh())
            .args(["--check", "--remote"])
            .args(base)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plain_r = || {
        Command::new(lab::ssh())
            // The lab's own config: check.conf's LocalForward is held.
            .args(lab.args())
            .args(["-o", "ExitOnForwardFailure=yes", "-R", &r, "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let v6 = std::net::TcpListener::bind(("::1", remote)).ok();
    if v6.is_some() {
        let held_v6 = v6;
        let text = remote_check();
        assert!(
            text.contains(&format!("  probe: taken on the server: 127.0.0.1:{remote}")),
            "{text}"
        );
        assert_eq!(plain_r().status.code(), Some(255), "plain ssh -R");
        drop(held_v6);
    }
    let text = remote_check();
    assert!(
        text.contains(&format!(
            "  probe: free on the server: 127.0.0.1:{remote} listening, but sshd binds"
        )),
        "{text}"
    );
    // Who listens there: this process, its descriptors readable.
    assert!(
        text.contains(&format!(
            "  held by your process pid {} (",
            std::process::id()
        )),
        "{text}"
    );
    let plain = plain_r();
    assert_eq!(
        plain.status.code(),
        Some(0),
        "plain ssh -R with only 127.0.0.1 held: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(text.contains("tmux"), "{text}");
    drop(remote_v4);
    let text = remote_check();
    assert!(
        text.contains("  probe: free on the server: nothing listens there on 127.0.0.1"),
        "{text}"
    );
}

/// Issue 26, 3: a remote port held by the user's own sshd (another
/// connection's, here a background `ssh -N -R`) is named with its pid, its
/// start time and the client address sshd saw, and ending that pid frees
/// the port.
#[test]
fn check_remote_names_the_users_sshd_that_holds_a_remote_port() {
    let Some(lab) = Lab::start() else { return };
    let port = {
        let l = lab::fresh_listener();
        l.local_addr().unwrap().port()
    };
    let r = format!("{port}:localhost:22");
    let mut holder = Command::new(lab::ssh())
        .args(lab.args())
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &r])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = |secs: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up || std::time::Instant::now() > deadline {
                return up;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert!(held(10), "ssh -R never listened");
    let out = Command::new(rosh_ssh())
        .args(["--check", "--remote", "-R", &r])
        .args(lab.args())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("  held by "))
        .unwrap_or_else(|| panic!("no holder named: {text}"));
    // "  held by your sshd, pid N (sshd), started DATE UTC (N s ago), client 127.0.0.1 port P ..."
    let pid: i32 = line
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.starts_with("  held by your sshd, pid "), "{text}");
    assert!(line.contains(" UTC ("), "{line}");
    assert!(line.contains(", client 127.0.0.1 port "), "{line}");
    assert!(
        line.ends_with(&format!("(kill {pid} on the server ends it)")),
        "{line}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(comm.trim().starts_with("sshd"), "{pid} is {comm:?}: {text}");
    // Ended knowingly: the port is free, the background ssh is over.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(st) = holder.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = holder.kill();
            let _ = holder.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.is_some(), "ssh -N lived on after its sshd ended");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still listens"
    );
}

/// `-f`, `-N`, `-W` or a remote command in the user's words: the check runs
/// its own command, ends, and leaves no process behind.
#[test]
fn check_remote_never_hangs_nor_leaves_a_process() {
    let Some(lab) = Lab::start() else { return };
    let mark = format!("ROSH_CHECK_MARK={}", std::process::id());
    let port = lab::free_port().to_string();
    let cfg = lab.config();
    let shapes: &[&[&str]] = &[
        &["-fN", "-R", &format!("{port}:localhost:22"), "lab"],
        &["-N", "lab"],
        &["-W", "127.0.0.1:22", "lab"],
        &["lab", "sleep", "600"],
        &["-t", "lab", "-f", "cat"],
    ];
    for shape in shapes {
        let started = std::time::Instant::now();
        let out = Command::new(rosh_ssh())
            .args(["--check", "--remote", "-F", cfg.to_str().unwrap(), "-o"])
            .arg(format!("SetEnv={mark}"))
            .args(*shape)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shape:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("tmux"), "{shape:?}: {text}");
        // Generous: the check's own bound is 35 s; this only catches a hang.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        assert_eq!(with_mark(&mark), Vec::<String>::new(), "{shape:?}");
    }
}

/// Processes whose command line holds `mark`.
fn with_mark(mark: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(mark) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn check_remote_dry_run_connects_nowhere() {
    // TEST-NET-1: a connect would hang until ConnectTimeout.
    let out = Command::new(rosh_ssh())
        .args(["--check", "--remote", "--dry-run", "-F", "/dev/null"])
        .args(["-o", "HostName=192.0.2.1", "-R", "8082:localhost:22", "h"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("server: not asked (--dry-run)"), "{text}");
    assert!(text.contains("-o ClearAllForwardings=yes"), "{text}");
    assert!(!text.contains("tmux sessions"), "{text}");
}

/// tmux is asked on every socket of its directory (where `rosh -L NAME`'s
/// socket lives); no server at all reads "no tmux server".
#[test]
fn check_remote_lists_tmux_sockets_and_says_no_tmux_server() {
    if !lab::require("/usr/bin/tmux") {
        return;
    }
    let tmux_dir = lab::TempDir::new("tmux");
    let td = tmux_dir.path().to_str().unwrap().to_string();
    let Some(lab) = Lab::start_with(&format!("SetEnv TMUX_TMPDIR={td}")) else {
        return;
    };
    let check = || {
        let out = Command::new(rosh_ssh())
            .args(["--check", "--remote"])
            .args(lab.args())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = check();
    assert!(text.contains("tmux sessions: no tmux server\n"), "{text}");
    assert!(!text.contains("error connecting"), "{text}");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .env("TMUX_TMPDIR", &td)
            .args(args)
            .stdin(Stdio::null())
            .status()
            .unwrap()
    };
    assert!(tmux(&["-L", "work", "new-session", "-d", "-s", "s1"]).success());
    let text = check();
    tmux(&["-L", "work", "kill-server"]);
    assert!(text.contains("  -L work: s1: 1 windows"), "{text}");
}

#[test]
fn proxy_mode_names_the_forward_of_its_parent_ssh_that_will_fail() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let cfg = lab.config_with(
        "proxy.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{} localhost:22\n  ProxyCommand {} --proxy %h %p\n",
            held.port,
            rosh_ssh().display()
        ),
    );
    // The real ssh, as an editor's remote extension would run it.
    let out = Command::new(lab::ssh())
        .args(["-F", cfg.to_str().unwrap(), "lab", "echo", "proxied"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "proxied\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "rosh-ssh: LocalForward 127.0.0.1:{p} localhost:22 ({c}:2): in use: 127.0.0.1:{p}, held by pid {me} (",
        p = held.port,
        c = cfg.display(),
        me = std::process::id()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap()
            .ends_with("; ssh will fail to listen there"),
        "{err}"
    );
}
