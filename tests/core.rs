//! rosh-ssh end to end: against the real sshd lab where a session matters,
//! against a stub ssh (via ROSH_SSH) where only argv and exit codes do.
mod lab;

use lab::{Lab, PortHolder, TempDir, rosh_ssh};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run")
}

/// rosh-ssh with the lab's arguments, then `rest`.
fn rosh(lab: &Lab, rest: &[&str]) -> Command {
    let mut c = Command::new(rosh_ssh());
    c.args(lab.args()).args(rest).env_remove("ROSH_SSH");
    c
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A stub ssh: answers `-G` with nothing, otherwise ends the way its last
/// argument says: a number is an exit code, `sigN` kills itself with N.
fn stub(dir: &Path) -> PathBuf {
    script(
        dir,
        "ssh",
        "#!/bin/sh\n[ \"$1\" = -G ] && exit 0\neval \"last=\\${$#}\"\n\
         case $last in sig*) kill -\"${last#sig}\" $$; sleep 5;; esac\nexit \"$last\"\n",
    )
}

#[test]
fn held_port_with_exit_on_forward_failure_plain_ssh_fails_rosh_connects() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let fwd = format!("127.0.0.1:{}:localhost:22", held.port);
    let opts = [
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &fwd,
        "echo",
        "session-ran",
    ];

    let plain = lab.ssh(&opts);
    assert_eq!(
        plain.status.code(),
        Some(255),
        "plain ssh: {}",
        text(&plain.stderr)
    );
    assert!(
        text(&plain.stderr).contains("Address already in use"),
        "{}",
        text(&plain.stderr)
    );

    let out = run(&mut rosh(&lab, &opts));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "session-ran\n");
    // One line naming the forward, the busy address and its holder (us).
    let err = text(&out.stderr);
    let want = format!(
        "rosh-ssh: -L 127.0.0.1:{p}:localhost:22: in use: 127.0.0.1:{p}, held by pid {me} (",
        p = held.port,
        me = std::process::id()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(
        err.ends_with("; forward dropped\n") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn options_after_the_destination_are_read_like_ssh() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let fwd = format!("127.0.0.1:{}:localhost:22", held.port);
    // vagrant's shape: host first, then options, then the command.
    let mut c = Command::new(rosh_ssh());
    c.args(["-F", lab.config().to_str().unwrap(), "lab"]).args([
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &fwd,
        "-q",
        "echo",
        "-L",
        "x",
    ]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    // The words after the first non-option are the remote command, untouched.
    assert_eq!(text(&out.stdout), "-L x\n");
    // The drop let ExitOnForwardFailure=yes connect; -q silences rosh-ssh's
    // line as it silences ssh's own.
    assert!(
        !text(&out.stderr).contains("forward dropped"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn wildcard_default_forward_is_dropped_when_any_loopback_address_is_held() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    // Plain ssh would bind ::1 only and hand 127.0.0.1 clients to the holder.
    let fwd = format!("{}:localhost:22", held.port);
    // What ssh is given: the -L cut out of its command line.
    let out = run(Command::new(rosh_ssh())
        .arg("--dry-run")
        .args(lab.args())
        .args(["-L", &fwd, "echo", "ok"])
        .env_remove("ROSH_SSH"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dry = text(&out.stdout);
    let lines: Vec<&str> = dry.lines().collect();
    assert_eq!(lines.len(), 2, "{dry}");
    let cfg = lab.config();
    assert_eq!(
        lines[0],
        format!("{} -F {} lab echo ok", lab::ssh(), cfg.display()),
        "{dry}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "drop -L {} # in use: 127.0.0.1:{}",
            fwd, held.port
        )),
        "{dry}"
    );
    // The real run: the session runs, and while it does ssh listens on
    // neither loopback address of that port (plain ssh would take ::1).
    let mut child = rosh(&lab, &["-L", &fwd, "echo ready; cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = lab::first_line(&mut child);
    assert_eq!(first, "ready\n");
    if lab::ipv6_loopback() {
        let v6 = std::net::TcpStream::connect(("::1", held.port));
        assert!(v6.is_err(), "something listens on [::1]:{}", held.port);
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("in use: 127.0.0.1:{}", held.port)),
        "{err}"
    );
}

#[test]
fn kept_forward_really_forwards() {
    let Some(lab) = Lab::start() else { return };
    let port = lab::free_port();
    let fwd = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    // The forward leads back to the lab's sshd: its banner arrives through it.
    let cmd = "sleep 1; echo ok";
    let child = rosh(&lab, &["-o", "ExitOnForwardFailure=yes", "-L", &fwd, cmd])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // rosh-ssh's bind probe listens for a moment before ssh starts: a
    // connect that lands in the probe's backlog is reset when the probe
    // closes (seen once in CI with 10.5). Only ssh's listener answers with
    // the banner; anything else is tried again until the deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = Vec::new();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 8];
            let n = s.read(&mut buf).unwrap_or(0);
            last = buf[..n].to_vec();
            if n > 0 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the forward never carried the banner (last read {last:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(&last[..], b"SSH-2.0-");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn stdout_stderr_and_stdin_are_byte_exact() {
    let Some(lab) = Lab::start() else { return };
    let port = lab::free_port();
    let fwd = format!("{port}:localhost:22");
    let remote = r"cat; printf '\377\000\r\nout'; printf '\001err\n' >&2; exit 3";
    let input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let go = |cmd: &mut Command| lab::run_with_input(cmd, &input);
    let mut plain = Command::new(lab::ssh());
    plain.args(lab.args()).args(["-L", &fwd, remote]);
    let want = go(&mut plain);
    let got = go(&mut rosh(&lab, &["-L", &fwd, remote]));
    assert_eq!(want.status.code(), Some(3));
    assert_eq!(got.status.code(), Some(3));
    let mut expect = input.clone();
    expect.extend_from_slice(b"\xff\x00\r\nout");
    assert!(
        got.stdout == expect,
        "stdout differs ({} bytes)",
        got.stdout.len()
    );
    assert_eq!(got.stdout, want.stdout);
    assert_eq!(got.stderr, want.stderr);
    assert_eq!(got.stderr, b"\x01err\n");
}

#[test]
fn remote_exit_codes_and_a_sample_of_real_ends_mirror_ssh() {
    let Some(lab) = Lab::start() else { return };
    let fwd = format!("{}:localhost:22", lab::free_port());
    for code in [0, 1, 7, 42, 128, 200, 254, 255] {
        let cmd = format!("exit {code}");
        let out = run(&mut rosh(&lab, &["-L", &fwd, &cmd]));
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    }
}

#[test]
fn every_exit_code_and_signal_death_is_mirrored_on_both_paths() {
    let dir = TempDir::new("stub");
    let ssh = stub(dir.path());
    for code in 0..=255 {
        let c = code.to_string();
        // Fast path (exec) and child path (a forward makes rosh-ssh stay).
        for extra in [&[][..], &["-L", "4444:h:22"][..]] {
            let out = run(Command::new(rosh_ssh())
                .env("ROSH_SSH", &ssh)
                .args(extra)
                .args(["host", &c]));
            assert_eq!(
                out.status.code(),
                Some(code),
                "code {code} {extra:?}: {}",
                text(&out.stderr)
            );
        }
    }
    for sig in [
        libc::SIGKILL,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGSEGV,
        libc::SIGUSR1,
    ] {
        let s = format!("sig{sig}");
        for extra in [&[][..], &["-L", "4444:h:22"][..]] {
            let out = run(Command::new(rosh_ssh())
                .env("ROSH_SSH", &ssh)
                .args(extra)
                .args(["host", &s]));
            assert_eq!(
                out.status.signal(),
                Some(sig),
                "{s} {extra:?}: {:?} {}",
                out.status,
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn fast_path_execs_without_a_child() {
    let dir = TempDir::new("stub");
    let ssh = script(dir.path(), "ssh", "#!/bin/sh\necho \"$$ $*\"\n");
    let child = Command::new(rosh_ssh())
        .env("ROSH_SSH", &ssh)
        .args(["-v", "host", "ls", "-l"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), format!("{pid} -v host ls -l\n"));
    // ClearAllForwardings=yes and modes take the fast path too.
    for args in [
        &["-o", "ClearAllForwardings=yes", "-L", "1:h:2", "host"][..],
        &["-G", "-L", "1:h:2", "host"][..],
        &["-O", "check", "-L", "1:h:2", "host"][..],
        // A mode from 10.5, a usage error before: ssh at once either way,
        // with no ssh -G to learn which.
        &["-Z", "-L", "1:h:2", "host"][..],
        &["host", "-Z", "-L", "1:h:2"][..],
    ] {
        let child = Command::new(rosh_ssh())
            .env("ROSH_SSH", &ssh)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(
            text(&out.stdout).starts_with(&format!("{pid} ")),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

/// rosh-ssh (a kept forward: the supervised path) over a stub ssh that
/// logs USR1 to `got`, runs `trap` (its `{m}` is `got`), says `ready` and
/// idles; returned once `ready` is read.
fn trapping_session(trap: &str) -> (TempDir, std::path::PathBuf, std::process::Child) {
    let dir = TempDir::new("stub");
    let mark = dir.path().join("got");
    let m = mark.display().to_string();
    let ssh = script(
        dir.path(),
        "ssh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = -G ] && exit 0\n\
             trap 'echo USR1 >> {m}' USR1\n{}\n\
             echo ready\nwhile :; do sleep 0.05; done\n",
            trap.replace("{m}", &m)
        ),
    );
    let mut child = Command::new(rosh_ssh())
        .env("ROSH_SSH", &ssh)
        .args(["-L", "4444:h:22", "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(lab::first_line(&mut child), "ready\n");
    (dir, mark, child)
}

#[test]
fn signals_sent_to_the_wrapper_reach_ssh() {
    let (_dir, mark, mut child) = trapping_session("trap 'echo INT >> {m}; exit 42' INT");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(&mark).unwrap_or_default() != "USR1\n" {
        assert!(Instant::now() < deadline, "USR1 never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42));
    assert_eq!(fs::read_to_string(&mark).unwrap(), "USR1\nINT\n");
}

/// An ssh that misses the first ending signal (OpenSSH before 9.5 can: it
/// checks its quit flag, then polls without a signal mask) gets it again
/// from the wrapper while it lives; other signals are passed once.
#[test]
fn an_ending_signal_ssh_missed_is_passed_again() {
    let (_dir, mark, mut child) =
        trapping_session("trap 'echo missed >> {m}; trap \"echo TERM >> {m}; exit 43\" TERM' TERM");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = lab::wait_bounded(&mut child, Duration::from_secs(10));
    let got = fs::read_to_string(&mark).unwrap_or_default();
    assert_eq!(st.and_then(|s| s.code()), Some(43), "{got}");
    assert_eq!(got, "USR1\nmissed\nTERM\n");
}

#[test]
fn sigterm_to_the_wrapper_ends_the_real_session_like_plain_ssh() {
    let Some(lab) = Lab::start() else { return };
    let marker = format!("rosh-term-{}", std::process::id());
    let cmd = format!("echo {marker}; sleep 30");
    let fwd = format!("{}:localhost:22", lab::free_port());
    let mut child = rosh(&lab, &["-L", &fwd, &cmd])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = lab::first_line(&mut child);
    assert_eq!(line.trim(), marker);
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    // Ended by the signal, not by the remote `sleep 30`: a generous bound.
    assert!(started.elapsed() < Duration::from_secs(25));
    // clientloop.c: a client ended by a signal says so and exits 255 (0
    // before 8.6), and the wrapper mirrors it.
    assert_eq!(st.code(), Some(lab::killed_by_signal_exit()), "{st:?}");
    assert!(local_processes_with(&marker).is_empty(), "ssh left behind");
}

/// Local processes (not sshd's) whose command line mentions `needle`.
fn local_processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        found.clear();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = text(&cmd);
            if cmd.contains(needle)
                && !cmd.starts_with("sshd")
                && !cmd.contains("bash -c")
                && !cmd.starts_with("sleep")
            {
                found.push(pid);
            }
        }
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_process_left_behind_after_a_session() {
    let Some(lab) = Lab::start() else { return };
    let marker = format!("rosh-left-{}", std::process::id());
    let fwd = format!("{}:localhost:22", lab::free_port());
    let out = run(&mut rosh(&lab, &["-L", &fwd, "echo", &marker]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(local_processes_with(&marker).is_empty());
}

#[test]
fn require_forward_refuses_to_connect() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let fwd = format!("127.0.0.1:{}:localhost:22", held.port);
    let out = run(Command::new(rosh_ssh())
        .arg("--require-forward")
        .args(lab.args())
        .args(["-L", &fwd, "echo", "must-not-run"]));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("not connecting (--require-forward)"),
        "{}",
        text(&out.stderr)
    );
    let out = run(rosh(&lab, &["-L", &fwd, "true"]).env("ROSH_REQUIRE_FORWARD", "1"));
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn dry_run_prints_the_command_and_each_forward() {
    let held = PortHolder::v4();
    let p = held.port;
    let out = run(Command::new(rosh_ssh()).args([
        "--dry-run",
        "-F",
        "/dev/null",
        "-fNL",
        &format!("127.0.0.1:{p}:localhost:{p}"),
        "-R",
        "8082:localhost:8082",
        "h",
        "ls",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "{} -F /dev/null -fN -R 8082:localhost:8082 h ls",
            lab::ssh()
        )
    );
    let drop = format!(
        "drop -L 127.0.0.1:{p}:localhost:{p} # in use: 127.0.0.1:{p}, held by pid {me} (",
        me = std::process::id()
    );
    assert!(lines[1].starts_with(&drop), "{stdout}");
    assert_eq!(lines[2], "keep -R 8082:localhost:8082");
    // Arguments ssh rejects: ssh's own error, exit 255.
    let out =
        run(Command::new(rosh_ssh()).args(["--dry-run", "-F", "/dev/null", "-L", "0:h:1", "h"]));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "Bad local forwarding specification '0:h:1'\n"
    );
    // A usage error too.
    let out = run(Command::new(rosh_ssh()).args(["--dry-run", "-U", "h"]));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).starts_with("unknown option -- U")
            && text(&out.stderr).contains("usage: ssh"),
        "{}",
        text(&out.stderr)
    );
    // -P: a flag up to 9.3 (then -L is a forward, dropped), the tag's
    // option from 9.4 (then `-L` is the tag and the spec the destination).
    let spec = format!("127.0.0.1:{p}:h:1");
    let out = run(Command::new(rosh_ssh()).args([
        "--dry-run",
        "-F",
        "/dev/null",
        "-P",
        "-L",
        &spec,
        "h",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    if lab::client_at_least(9, 4) {
        assert_eq!(
            lines,
            [format!("{} -F /dev/null -P -L {spec} h", lab::ssh())]
        );
    } else {
        assert_eq!(lines[0], format!("{} -F /dev/null -P h", lab::ssh()));
        assert_eq!(lines.len(), 2, "{stdout}");
        assert!(
            lines[1].starts_with(&format!("drop -L {spec} # in use")),
            "{stdout}"
        );
    }
    // -Z: a mode from 10.5 (print the keys ssh would offer; no forward, so
    // the command as it is), a usage error before.
    let out = run(Command::new(rosh_ssh()).args(["--dry-run", "-Z", "-L", "1:h:2", "h"]));
    if lab::client_at_least(10, 5) {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{} -Z -L 1:h:2 h\n", lab::ssh()));
    } else {
        assert_eq!(out.status.code(), Some(255));
        assert_eq!(text(&out.stdout), "");
        assert!(text(&out.stderr).starts_with("unknown option -- Z"));
    }
}

#[test]
fn bad_forward_gets_ssh_own_error() {
    let out = run(Command::new(rosh_ssh()).args(["-F", "/dev/null", "-L", "nonsense", "h"]));
    let plain = run(Command::new(lab::ssh()).args(["-F", "/dev/null", "-L", "nonsense", "h"]));
    assert_eq!(out.status.code(), plain.status.code());
    assert_eq!(out.stderr, plain.stderr);
    assert_eq!(
        text(&out.stderr),
        "Bad local forwarding specification 'nonsense'\n"
    );
}

#[test]
fn never_runs_itself_whatever_path_holds() {
    let dir = TempDir::new("loop");
    std::os::unix::fs::symlink(rosh_ssh(), dir.path().join("ssh")).unwrap();
    let out = run(Command::new(rosh_ssh())
        .env("PATH", dir.path())
        .env_remove("ROSH_SSH")
        .args(["-L", "1:h:2", "h"]));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).starts_with("rosh-ssh: no real ssh found"),
        "{}",
        text(&out.stderr)
    );

    // Through the symlink named ssh, the same.
    let out = run(Command::new(dir.path().join("ssh"))
        .env("PATH", dir.path())
        .env_remove("ROSH_SSH")
        .arg("h"));
    assert_eq!(out.status.code(), Some(255));

    let out = run(Command::new(rosh_ssh())
        .env("ROSH_SSH", rosh_ssh())
        .arg("h"));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("is rosh-ssh itself"),
        "{}",
        text(&out.stderr)
    );

    // A script named ssh that calls rosh-ssh again: the depth guard ends it.
    let d2 = TempDir::new("loop2");
    script(
        d2.path(),
        "ssh",
        &format!("#!/bin/sh\nexec {} \"$@\"\n", rosh_ssh().display()),
    );
    let started = Instant::now();
    let out = run(Command::new(rosh_ssh())
        .env("PATH", d2.path())
        .env_remove("ROSH_SSH")
        .arg("h"));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("levels deep"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn help_and_version() {
    let out = run(Command::new(rosh_ssh()).arg("--help"));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: rosh-ssh"));
    let out = run(Command::new(rosh_ssh()).arg("--version"));
    assert_eq!(
        text(&out.stdout),
        format!("rosh-ssh {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn non_utf8_arguments_reach_ssh_byte_exact() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("stub");
    let out_file = dir.path().join("argv");
    let ssh = script(
        dir.path(),
        "ssh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = -G ] && exit 0\nprintf '%s\\0' \"$@\" > {}\n",
            out_file.display()
        ),
    );
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff'\"$x");
    for extra in [&[][..], &["-L", "4444:h:22"][..]] {
        let st = Command::new(rosh_ssh())
            .env("ROSH_SSH", &ssh)
            .args(extra)
            .arg("host")
            .arg(odd)
            .status()
            .unwrap();
        assert!(st.success());
        let mut want: Vec<u8> = Vec::new();
        for w in extra
            .iter()
            .map(|s| s.as_bytes())
            .chain([&b"host"[..], odd.as_bytes()])
        {
            want.extend_from_slice(w);
            want.push(0);
        }
        assert_eq!(fs::read(&out_file).unwrap(), want);
    }
}

#[test]
fn returns_when_the_direct_child_ends_though_a_background_ssh_lives_on() {
    let dir = TempDir::new("stub");
    let pidfile = dir.path().join("bg");
    let ssh = script(
        dir.path(),
        "ssh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = -G ] && {{ echo exitonforwardfailure yes; echo localforward 4444 [h]:22; exit 0; }}\n\
             while [ $# -gt 0 ]; do [ \"$1\" = -E ] && exec 3>>\"$2\"; shift; done\n\
             echo 'a log line' >&3\nsleep 30 & echo $! > {}\nexit 0\n",
            pidfile.display()
        ),
    );
    let started = Instant::now();
    // The background process holds stdout, stderr and ssh's log FIFO open.
    let mut child = Command::new(rosh_ssh())
        .env("ROSH_SSH", &ssh)
        .args(["-f", "-L", "4444:h:22", "host"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = child.wait().unwrap();
    let took = started.elapsed();
    let bg: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bg),
        nix::sys::signal::Signal::SIGTERM,
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).ok();
    assert!(st.success());
    // Not held up by the background process's 30 s (a generous bound).
    assert!(
        took < Duration::from_secs(25),
        "waited {took:?} for the background process"
    );
    assert_eq!(
        err, "a log line\n",
        "the log line written before ssh ended is relayed"
    );
}

/// A python stub ssh that answers `-G` with nothing; otherwise it evaluates
/// `expr` (a string) before opening anything, writes it and a newline to a
/// report file and exits with `code`. rosh-ssh runs it on the fast path and
/// on the child path (a forward makes rosh-ssh stay), with `prepare` applied
/// in rosh-ssh's process before its exec. Returns each run's exit code and
/// report, in that order.
fn report_on_both_paths(
    tag: &str,
    imports: &str,
    expr: &str,
    code: i32,
    prepare: fn() -> std::io::Result<()>,
) -> Vec<(Option<i32>, String)> {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new(tag);
    let report = dir.path().join("report");
    let ssh = script(
        dir.path(),
        "ssh",
        &format!(
            "#!/usr/bin/env python3\nimport sys, {imports}\n\
             if sys.argv[1] == '-G': sys.exit(0)\n\
             seen = {expr}\nopen('{}', 'w').write(seen + '\\n')\nsys.exit({code})\n",
            report.display()
        ),
    );
    let mut out = Vec::new();
    for extra in [&[][..], &["-L", "4444:h:22"][..]] {
        let _ = fs::remove_file(&report);
        let mut cmd = Command::new(rosh_ssh());
        cmd.env("ROSH_SSH", &ssh).args(extra).arg("host");
        // SAFETY: `prepare` makes plain libc calls in the child before exec.
        unsafe { cmd.pre_exec(prepare) };
        let code = cmd.stdin(Stdio::null()).status().unwrap().code();
        out.push((code, fs::read_to_string(&report).unwrap_or_default()));
    }
    out
}

#[test]
fn signals_the_caller_ignores_stay_ignored_as_under_nohup() {
    let runs = report_on_both_paths(
        "nohup",
        "signal",
        "' '.join(s.name for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM) \
         if signal.getsignal(s) == signal.SIG_IGN)",
        0,
        // As nohup (and a script's `&` for SIGINT) does.
        || {
            // SAFETY: signal() with SIG_IGN, in the child before exec.
            unsafe {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
            }
            Ok(())
        },
    );
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run, &(Some(0), "SIGHUP SIGINT\n".to_string()), "path {i}");
    }
}

#[test]
fn closed_standard_descriptors_reach_ssh_as_dev_null_on_both_paths() {
    // What ssh finds on 0, 1 and 2 (ssh's own sanitise_stdfd would open
    // /dev/null there; the wrapper must neither leave them closed for a
    // file of its own to land on nor hand ssh one of its pipes).
    let runs = report_on_both_paths(
        "stdfd",
        "os",
        "' '.join(os.readlink('/proc/self/fd/%d' % fd) if os.path.exists('/proc/self/fd/%d' % fd) \
         else 'closed' for fd in (0, 1, 2))",
        7,
        || {
            for fd in 0..3 {
                // SAFETY: close() in the child before exec.
                unsafe { libc::close(fd) };
            }
            Ok(())
        },
    );
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(
            run,
            &(Some(7), "/dev/null /dev/null /dev/null\n".to_string()),
            "path {i}"
        );
    }
}

#[test]
fn the_wrapper_does_not_load_libgcc_s() {
    // src/main.rs links the unwinder statically so that each start skips
    // loading libgcc_s.so.1 (issue 6's startup figure). The child path's
    // wrapper is still running while its ssh reads the wrapper's mappings.
    let dir = TempDir::new("maps");
    let ssh = script(
        dir.path(),
        "ssh",
        "#!/bin/sh\n[ \"$1\" = -G ] && exit 0\ncat /proc/$PPID/maps\n",
    );
    let out = run(Command::new(rosh_ssh())
        .env("ROSH_SSH", &ssh)
        .args(["-L", "4444:h:22", "host"]));
    let maps = text(&out.stdout);
    assert!(maps.contains("libc.so"), "{maps}");
    assert!(!maps.contains("libgcc_s"), "{maps}");
}

/// `--verbose` names each forward as the user wrote it: the first
/// command-line option that asks for it, else the config line with its file
/// and line number.
#[test]
fn verbose_names_where_each_forward_comes_from() {
    let dir = TempDir::new("verbose");
    let (a, b, c) = (lab::free_port(), lab::free_port(), lab::free_port());
    let cfg = dir.path().join("cfg");
    fs::write(
        &cfg,
        format!("Host h\n  LocalForward {a} g:2\n  LocalForward {b} h:1\n"),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let lb = format!("{b}:h:1");
    let oc = format!("LocalForward={c} h:3");
    let out = run(Command::new(rosh_ssh())
        .args([
            "--verbose",
            "--dry-run",
            "-F",
            cfg_s,
            "-L",
            &lb,
            "-o",
            &oc,
            "h",
        ])
        .env_remove("ROSH_SSH"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let line = |port: u16| {
        err.lines()
            .find(|l| l.starts_with("rosh-ssh: forward ") && l.contains(&port.to_string()))
            .unwrap_or_else(|| panic!("no verbose line for {port}: {err}"))
    };
    assert_eq!(line(b), format!("rosh-ssh: forward -L {lb}: free"), "{err}");
    assert_eq!(
        line(c),
        format!("rosh-ssh: forward -o '{oc}': free"),
        "{err}"
    );
    assert_eq!(
        line(a),
        format!("rosh-ssh: forward LocalForward {a} g:2 ({cfg_s}:2): free"),
        "{err}"
    );
}

/// Issue 21, defect 7: every ROSH_* switch reads 1/yes/true/on and
/// 0/no/false/off (and empty) in any case; anything else is one line naming
/// the variable, exit 255, and no ssh is run at all (not even `ssh -G`).
#[test]
fn a_switch_that_is_neither_on_nor_off_is_an_error_and_runs_nothing() {
    let dir = TempDir::new("switch");
    let ran = dir.path().join("ran");
    let ssh = script(
        dir.path(),
        "ssh",
        &format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 0\n", ran.display()),
    );
    let rosh = |var: &str, value: &str, words: &[&str]| {
        let mut c = Command::new(rosh_ssh());
        c.args(words).env("ROSH_SSH", &ssh);
        for name in ["ROSH_VERBOSE", "ROSH_REQUIRE_FORWARD", "ROSH_RESTORE"] {
            c.env_remove(name);
        }
        c.env(var, value);
        run(&mut c)
    };
    // With a forward (ssh -G would be asked) and without (the fast path).
    let shapes: [&[&str]; 3] = [
        &["-L", "1:h:2", "h", "true"],
        &["h", "true"],
        &["--check", "h"],
    ];
    for var in ["ROSH_VERBOSE", "ROSH_REQUIRE_FORWARD", "ROSH_RESTORE"] {
        for value in ["maybe", "2", "YES please"] {
            for words in shapes {
                let out = rosh(var, value, words);
                let err = text(&out.stderr);
                assert_eq!(
                    out.status.code(),
                    Some(255),
                    "{var}={value} {words:?}: {err}"
                );
                assert_eq!(err.lines().count(), 1, "{var}={value}: {err}");
                assert!(
                    err.starts_with(&format!("rosh-ssh: {var}=")) && err.contains("not a switch"),
                    "{var}={value}: {err}"
                );
                assert!(!ran.exists(), "{var}={value} {words:?}: ssh was run");
            }
        }
        // Every spelling of on and off is accepted, in any case: ssh runs.
        for value in ["1", "Yes", "TRUE", "on", "0", "No", "false", "OFF", ""] {
            let out = rosh(var, value, &["h", "true"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{var}={value}: {}",
                text(&out.stderr)
            );
        }
        assert!(ran.exists(), "{var}: the accepted values ran ssh");
        fs::remove_file(&ran).unwrap();
    }
}
