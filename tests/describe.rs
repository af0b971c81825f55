//! One forward, one line, in the user's own spelling: warnings, --dry-run
//! and --verbose for unix-socket forwards, `%` tokens, paths with spaces,
//! and the messages that must say what is true. Side by side with plain
//! ssh on the lab's sshd.
mod lab;

use lab::{Lab, rosh_ssh};
use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn rosh(lab: &Lab, rest: &[&str]) -> Output {
    Command::new(rosh_ssh())
        .args(lab.args())
        .args(rest)
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// rosh-ssh's own lines on stderr.
fn warnings(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("rosh-ssh: "))
        .map(str::to_string)
        .collect()
}

/// A TCP port held on 127.0.0.1 and, where there is IPv6, on ::1.
fn hold_both() -> (u16, Vec<std::net::TcpListener>) {
    loop {
        let v4 = lab::fresh_listener();
        let port = v4.local_addr().unwrap().port();
        match std::net::TcpListener::bind(("::1", port)) {
            Ok(v6) => return (port, vec![v4, v6]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return (port, vec![v4]),
        }
    }
}

#[test]
fn a_local_forward_to_a_unix_socket_is_one_forward_on_one_line() {
    let Some(lab) = Lab::start() else { return };
    let (port, _held) = hold_both();
    let spec = format!("{port}:/var/run/postgresql/.s.PGSQL.5432");
    let args = ["-o", "ExitOnForwardFailure=yes", "-L", &spec, "echo", "ran"];
    assert_eq!(lab.ssh(&args).status.code(), Some(255), "plain ssh");
    let out = rosh(&lab, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ran\n");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("rosh-ssh: -L {spec}: in use: ")),
        "{w:?}"
    );
    assert!(w[0].ends_with("; forward dropped"), "{w:?}");
    assert!(!text(&out.stderr).contains("dynamicforward"));

    let out = Command::new(rosh_ssh())
        .arg("--dry-run")
        .args(lab.args())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(!lines[0].contains(&spec), "{stdout}");
    assert!(
        lines[1].starts_with(&format!("drop -L {spec} # in use: ")),
        "{stdout}"
    );
}

#[test]
fn a_path_with_a_space_invents_no_forward() {
    // A port free now: a fixed one can be any other process's (a connect's
    // ephemeral port held 46634 once in CI, and the forward was dropped).
    let local = format!(":{}:h:22", lab::free_port());
    let out = Command::new(rosh_ssh())
        .args([
            "--dry-run",
            "-F",
            "/dev/null",
            "-D",
            "/tmp/rosh no such/a b:./rel.sock",
        ])
        .args(["-R", "33737", "-L", &local, "h"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines.contains(&"keep -D '/tmp/rosh no such/a b:./rel.sock'"),
        "{stdout}"
    );
    assert!(lines.contains(&"keep -R 33737"), "{stdout}");
    assert!(
        lines.contains(&format!("keep -L {local}").as_str()),
        "{stdout}"
    );
}

/// ssh expands `%n` in the socket path after parsing: the probe must look
/// at the expanded path and the cut must take the words as written.
#[test]
fn a_percent_token_in_a_socket_path_is_probed_expanded_and_cut_as_written() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.path().join("socks");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    // %n is the host as given on the command line: "lab".
    let _live = UnixListener::bind(dir.join("lab.sock")).unwrap();
    let _live_cfg = UnixListener::bind(dir.join("lab.cfg.sock")).unwrap();
    let spec = format!("{d}/%n.sock:{d}/target.sock");
    let args = ["-o", "ExitOnForwardFailure=yes", "-L", &spec, "echo", "ran"];
    let plain = lab.ssh(&args);
    if !lab::client_at_least(8, 3) {
        // ssh.c expands the tokens of socket paths from 8.3: before, ssh
        // binds `%n.sock` as written, which nothing holds; rosh-ssh probes
        // what ssh -G prints and keeps the forward, as plain ssh has it.
        assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
        // ssh leaves its socket file behind (a second ssh would fail on it).
        std::fs::remove_file(dir.join("%n.sock")).unwrap();
        let out = rosh(&lab, &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "ran\n");
        assert_eq!(warnings(&out), Vec::<String>::new());
        return;
    }
    assert_eq!(plain.status.code(), Some(255), "plain ssh");
    assert!(
        text(&plain.stderr).contains("lab.sock"),
        "{}",
        text(&plain.stderr)
    );
    let out = rosh(&lab, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ran\n");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("rosh-ssh: -L {spec}: in use: {d}/lab.sock")),
        "{w:?}"
    );

    // The config form: the line is disabled in the private copy.
    let cfg = lab.config_with(
        "pct.conf",
        &format!("Host lab\n  LocalForward {d}/%n.cfg.sock {d}/target.sock\n"),
    );
    let cfg_s = cfg.to_str().unwrap();
    let base = [
        "-F",
        cfg_s,
        "-o",
        "ExitOnForwardFailure=yes",
        "lab",
        "echo",
        "cfg-ran",
    ];
    let plain = Command::new(lab::ssh())
        .args(base)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(255), "plain ssh, config form");
    let out = Command::new(rosh_ssh())
        .args(base)
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "cfg-ran\n");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "rosh-ssh: LocalForward {d}/%n.cfg.sock {d}/target.sock ({cfg_s}:2): in use"
        )),
        "{w:?}"
    );
}

/// StreamLocalBindUnlink yes: ssh removes the live socket and listens; the
/// user asked for that, so rosh-ssh keeps the forward.
#[test]
fn stream_local_bind_unlink_keeps_a_forward_over_a_live_socket() {
    let Some(lab) = Lab::start() else { return };
    let sock = lab.path().join("live.sock");
    let _live = UnixListener::bind(&sock).unwrap();
    let spec = format!("{}:127.0.0.1:{}", sock.display(), lab.port);
    let args = [
        "-o",
        "StreamLocalBindUnlink=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &spec,
        "echo",
        "ran",
    ];
    assert_eq!(lab.ssh(&args).status.code(), Some(0), "plain ssh");
    let out = Command::new(rosh_ssh())
        .arg("--dry-run")
        .args(lab.args())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains(&format!("keep -L {spec}\n")),
        "{}",
        text(&out.stdout)
    );
    let out = rosh(&lab, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(warnings(&out), Vec::<String>::new());
}

#[test]
fn verbose_does_not_call_an_unprobed_remote_forward_free() {
    let out = Command::new(rosh_ssh())
        .args([
            "--verbose",
            "--dry-run",
            "-F",
            "/dev/null",
            "-R",
            "8082:localhost:22",
            "h",
        ])
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        err.contains("rosh-ssh: forward -R 8082:localhost:22: on the server, not probed\n"),
        "{err}"
    );
}

#[test]
fn a_bind_address_not_on_this_host_says_so() {
    let out = Command::new(rosh_ssh())
        .args([
            "--dry-run",
            "-F",
            "/dev/null",
            "-L",
            "192.0.2.1:4711:h:22",
            "h",
        ])
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).lines().nth(1),
        Some(
            "drop -L 192.0.2.1:4711:h:22 # 192.0.2.1 is not an address of this host: \
             nothing can listen on 192.0.2.1:4711"
        ),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn no_ssh_on_path_is_not_called_rosh_ssh_itself() {
    let out = Command::new(rosh_ssh())
        .args(["-L", "1:h:2", "h"])
        .env_remove("ROSH_SSH")
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).starts_with("rosh-ssh: no ssh found on PATH"),
        "{}",
        text(&out.stderr)
    );
}

/// As a user who may not bind ports below 1024: a permission problem,
/// with no holder named.
#[test]
fn a_privileged_port_as_non_root_is_a_permission_problem() {
    if !lab::require("/usr/bin/setpriv") || !nix_is_root() {
        return;
    }
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if start <= 80 {
        eprintln!("skipping: port 80 is unprivileged on this host");
        return;
    }
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(rosh_ssh())
        .args(["--dry-run", "-F", "/dev/null", "-L", "80:h:22", "h"])
        .env_remove("ROSH_SSH")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let line = stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        line.starts_with("drop -L 80:h:22 # permission denied: "),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(line.contains("privileged port"), "{line}");
    assert!(
        !line.contains("holder") && !line.contains("held by"),
        "{line}"
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

/// A remote socket path with a `%` token that the server refuses (its
/// directory does not exist there): ssh names the expanded path; rosh-ssh
/// matches it to the forward and runs ssh again without the words written.
#[test]
fn a_percent_token_in_a_remote_socket_path_is_matched_and_cut() {
    let Some(lab) = Lab::start() else { return };
    let missing = lab.path().join("no-such-dir");
    let spec = format!("{}/%n.rs:/tmp/rosh-target.sock", missing.display());
    let args = ["-o", "ExitOnForwardFailure=yes", "-R", &spec, "echo", "ran"];
    let plain = lab.ssh(&args);
    assert_eq!(plain.status.code(), Some(255), "plain ssh");
    let out = rosh(&lab, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ran\n");
    let w = warnings(&out);
    if !lab::refusal_named_at("ERROR") {
        // Before 8.5, at the lab's LogLevel ERROR, the refusal is not seen.
        assert_eq!(w, Vec::<String>::new());
        return;
    }
    assert_eq!(w.len(), 1, "{}", text(&out.stderr));
    assert_eq!(
        w[0],
        format!(
            "rosh-ssh: -R {spec}: the server refused listen path {}/lab.rs; forward dropped",
            missing.display()
        )
    );
}

/// Docker-socket shapes: a path to a path on the command line, and
/// `${VAR}` in a config line (ssh expands it from its environment).
#[test]
fn socket_to_socket_and_dollar_var_forwards_are_one_line_each() {
    let Some(lab) = Lab::start() else { return };
    let d = lab.path().display().to_string();
    let _argv_sock = UnixListener::bind(lab.path().join("docker.sock")).unwrap();
    let _cfg_sock = UnixListener::bind(lab.path().join("cfg-docker.sock")).unwrap();
    let cfg = lab.config_with(
        "docker.conf",
        "Host lab\n  LocalForward ${ROSH_SOCK_DIR}/cfg-docker.sock /var/run/docker.sock\n",
    );
    let cfg_s = cfg.to_str().unwrap();
    let spec = format!("{d}/docker.sock:/var/run/docker.sock");
    let base = [
        "-F",
        cfg_s,
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &spec,
        "lab",
    ];
    let run = |pre: &[&str], prog: &std::path::Path| {
        Command::new(prog)
            .args(pre)
            .args(base)
            .args(["echo", "ran"])
            .env("ROSH_SOCK_DIR", &d)
            .env_remove("ROSH_SSH")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let plain = run(&[], std::path::Path::new(lab::ssh()));
    assert_eq!(plain.status.code(), Some(255), "plain ssh");
    let out = run(&[], &rosh_ssh());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let w = warnings(&out);
    assert_eq!(w.len(), 2, "{}", text(&out.stderr));
    assert!(
        w[0].starts_with(&format!("rosh-ssh: -L {spec}: in use: {d}/docker.sock")),
        "{w:?}"
    );
    if !lab::client_at_least(8, 4) {
        // Before 8.4 ssh takes `${VAR}` as written (readconf.c had no
        // dollar_expand): it binds that relative path, whose directory
        // does not exist, and fails after connecting; rosh-ssh names it as
        // ssh -G prints it (its config line reads otherwise to rosh-ssh).
        assert_eq!(
            w[1],
            "rosh-ssh: localforward ${ROSH_SOCK_DIR}/cfg-docker.sock /var/run/docker.sock: \
             cannot bind to path ${ROSH_SOCK_DIR}/cfg-docker.sock; forward dropped"
        );
        return;
    }
    assert!(
        w[1].starts_with(&format!(
            "rosh-ssh: LocalForward ${{ROSH_SOCK_DIR}}/cfg-docker.sock /var/run/docker.sock ({cfg_s}:2): in use: {d}/cfg-docker.sock"
        )),
        "{w:?}"
    );
    let dry = run(&["--dry-run"], &rosh_ssh());
    let stdout = text(&dry.stdout);
    let lines: Vec<&str> = stdout.lines().take_while(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("drop ")),
        "{stdout}"
    );
}
