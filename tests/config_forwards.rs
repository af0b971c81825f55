//! Forwards from ssh_config, ssh's own diagnostics, and the retry without
//! the forward that failed: the incident behind rosh-ssh, reproduced.
mod lab;

use lab::{Lab, TempDir, rosh_ssh};
use std::fs;
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
        let v4 = lab::fresh_listener();
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
    lab::run_with_input(Command::new(prog).args(args).env_remove("ROSH_SSH"), input)
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
        Path::new(lab::ssh()),
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

    // The config's LogLevel ERROR, then (before OpenSSH 8.5, where ERROR
    // hides the server's refusal from rosh-ssh as from the user) INFO.
    let mut levels = vec![None];
    if !lab::refusal_named_at("ERROR") {
        levels.push(Some("LogLevel=INFO"));
    }
    for level in levels {
        let _ = fs::remove_file(&count);
        let mut args = vec!["-F", cfg_s];
        if let Some(l) = level {
            args.extend(["-o", l]);
        }
        args.extend(["grav", &remote_cmd]);
        let out = run_with_input(&rosh_ssh(), &args, input);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        assert_eq!(out.stdout, input, "stdin arrives exactly once");
        assert_eq!(
            fs::read_to_string(&count).unwrap(),
            "ran\n",
            "the command ran exactly once"
        );
        // The user's whole stderr: rosh-ssh's lines and nothing else (no
        // line of ssh's from an attempt that failed; at INFO, ssh's own
        // line about the lab's /dev/null known_hosts, as with plain ssh).
        let err = text(&out.stderr);
        let warnings: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("Warning: Permanently added "))
            .collect();
        let named = lab::refusal_named_at(level.map_or("ERROR", |_| "INFO"));
        assert_eq!(
            warnings.len(),
            if named { 2 } else { 1 },
            "{level:?}: {err}"
        );
        assert!(
            warnings.iter().all(|l| l.starts_with("rosh-ssh: ")),
            "{err}"
        );
        assert!(
            warnings[0].contains(&format!("LocalForward {} ", local.port)),
            "{err}"
        );
        if named {
            assert!(
                warnings[1].contains(&format!("RemoteForward {} ", remote.port)),
                "{err}"
            );
        }
    }
}

/// A private TMPDIR/XDG_RUNTIME_DIR, to see what rosh-ssh leaves there.
fn private_tmp() -> TempDir {
    TempDir::new("xdg")
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != lab::MEMO_DIR)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn rosh_in(tmp: &TempDir, args: &[&str]) -> Command {
    let mut c = Command::new(rosh_ssh());
    c.args(args)
        .env_remove("ROSH_SSH")
        .env("XDG_RUNTIME_DIR", tmp.path())
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null());
    c
}

#[test]
fn forwards_through_includes_and_match_blocks_are_honoured() {
    let Some(lab) = Lab::start() else { return };
    let local = hold_both();
    let remote = hold_both();
    let inc = lab.path().join("inc.d");
    fs::create_dir(&inc).unwrap();
    fs::write(
        inc.join("10-conn.conf"),
        format!(
            "Host grav\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
            lab.port,
            lab.user,
            lab.key().display()
        ),
    )
    .unwrap();
    fs::write(
        inc.join("20-fwd.conf"),
        format!(
            "Match originalhost grav\n  LocalForward {} localhost:22\n",
            local.port
        ),
    )
    .unwrap();
    let top = lab.path().join("top.conf");
    fs::write(
        &top,
        format!(
            "Include {inc}/*.conf\nMatch originalhost grav exec true\n  RemoteForward {r} localhost:22\n\
             Host *\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
             \x20 BatchMode yes\n  LogLevel ERROR\n  ExitOnForwardFailure yes\n",
            inc = inc.display(),
            r = remote.port
        ),
    )
    .unwrap();
    let tmp = private_tmp();
    let top_s = top.to_str().unwrap();
    let plain = Command::new(lab::ssh())
        .args(["-F", top_s, "grav", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(255), "{}", text(&plain.stderr));
    let out = rosh_in(&tmp, &["-F", top_s, "grav", "echo", "through-includes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "through-includes\n");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "LocalForward {} localhost:22 ({}/20-fwd.conf:2): in use",
            local.port,
            inc.display()
        )),
        "{err}"
    );
    // LogLevel ERROR: before 8.5 the refusal is not logged (lab::refusal_named_at).
    assert_eq!(
        err.contains(&format!(
            "RemoteForward {} localhost:22 ({top_s}:3): the server refused",
            remote.port
        )),
        lab::refusal_named_at("ERROR"),
        "{err}"
    );
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());

    // --dry-run names the config line each forward comes from.
    let out = rosh_in(&tmp, &["--dry-run", "-F", top_s, "grav"])
        .output()
        .unwrap();
    let dry = text(&out.stdout);
    assert!(
        dry.contains(&format!(
            "drop LocalForward {} localhost:22 ({}/20-fwd.conf:2) # in use: ",
            local.port,
            inc.display()
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "keep RemoteForward {} localhost:22 ({top_s}:3)\n",
            remote.port
        )),
        "{dry}"
    );
    assert!(dry.contains("# -F "), "{dry}");
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn vagrant_argv_shape_and_quiet_retry_without_extra_lines() {
    let Some(lab) = Lab::start() else { return };
    let remote = hold_both();
    let cfg = grav_config(
        &lab,
        "vagrant.conf",
        &format!("  RemoteForward {} localhost:22\n", remote.port),
    );
    let cfg_s = cfg.to_str().unwrap();
    let key = lab.key();
    let port = lab.port.to_string();
    let tmp = private_tmp();
    for level in [
        &["-o", "LogLevel=FATAL"][..],
        &["-q"][..],
        &["-o", "LogLevel=ERROR"][..],
    ] {
        let mut args: Vec<&str> = vec!["-F", cfg_s, "grav", "-p", &port];
        args.extend_from_slice(level);
        args.extend_from_slice(&[
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ExitOnForwardFailure=yes",
            "-i",
            key.to_str().unwrap(),
            "echo vagrant-ok",
        ]);
        let plain = Command::new(lab::ssh())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(plain.status.code(), Some(255), "{level:?}");
        let out = rosh_in(&tmp, &args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{level:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "vagrant-ok\n");
        // At most rosh-ssh's one warning: no forced or failed-attempt ssh
        // line. It follows ssh's LogLevel as ssh's own failure line would
        // (shown from ERROR up, silent under FATAL, vagrant's, and QUIET),
        // and before OpenSSH 8.5 the refusal is not seen below INFO at all.
        let shown_at = if level.contains(&"LogLevel=ERROR") {
            "ERROR"
        } else if level.contains(&"-q") {
            "QUIET"
        } else {
            "FATAL"
        };
        let want = if lab::refusal_line_at(shown_at) {
            format!(
                "rosh-ssh: RemoteForward {} localhost:22 ({cfg_s}:11): the server refused listen port {}; forward dropped\n",
                remote.port, remote.port
            )
        } else {
            String::new()
        };
        assert_eq!(text(&out.stderr), want, "{level:?}");
    }
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn remote_program_printing_the_failure_sentences_triggers_nothing() {
    let Some(lab) = Lab::start() else { return };
    let free = lab::free_port();
    let cfg = grav_config(
        &lab,
        "liar.conf",
        &format!("  RemoteForward {free} localhost:22\n  ExitOnForwardFailure yes\n"),
    );
    let runs = TempDir::new("runs");
    let count = runs.path().join("count");
    let cmd = format!(
        "echo ran >> {c}; echo 'Error: remote port forwarding failed for listen port {free}' >&2; \
         echo 'bind [127.0.0.1]:{free}: Address already in use' >&2; echo 'Could not request local forwarding.' >&2; exit 255",
        c = count.display()
    );
    let tmp = private_tmp();
    let out = rosh_in(&tmp, &["-F", cfg.to_str().unwrap(), "grav", &cmd])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        fs::read_to_string(&count).unwrap(),
        "ran\n",
        "ran once, no retry"
    );
    assert!(
        !text(&out.stderr).contains("rosh-ssh"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("Could not request local forwarding."));
}

#[test]
fn port_taken_between_probe_and_bind_costs_the_forward_not_a_login() {
    let Some(lab) = Lab::start() else { return };
    let port = lab::free_port();
    let work = TempDir::new("race");
    let w = work.path().display();
    // `Match exec` runs at each config parse: rosh-ssh's `ssh -G` is the
    // first, the real ssh the second: that one takes the port for a while.
    fs::write(
        work.path().join("grab.sh"),
        format!(
            "n=$(cat {w}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {w}/n\n\
             if [ $n -eq 2 ]; then\n\
             python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",{port})); s.listen(); open(\"{w}/held\",\"w\").close(); time.sleep(20)' \
             </dev/null >/dev/null 2>&1 &\n echo $! > {w}/pid\n\
             while [ ! -e {w}/held ]; do sleep 0.02; done\nfi\nexit 1\n"
        ),
    )
    .unwrap();
    let cfg = grav_config(
        &lab,
        "race.conf",
        &format!(
            "  LocalForward 127.0.0.1:{port} localhost:22\n  ExitOnForwardFailure yes\nMatch exec \"sh {w}/grab.sh\"\n"
        ),
    );
    let tmp = private_tmp();
    let before = lab.logins();
    let out = rosh_in(
        &tmp,
        &["-F", cfg.to_str().unwrap(), "grav", "echo", "raced"],
    )
    .output()
    .unwrap();
    if let Ok(pid) = fs::read_to_string(work.path().join("pid")) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.trim().parse().unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "raced\n");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("LocalForward 127.0.0.1:{port} localhost:22 (")),
        "{err}"
    );
    assert_eq!(err.matches("rosh-ssh:").count(), 1, "{err}");
    assert_eq!(lab.logins() - before, 1, "one login: {}", lab.sshd_log());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn nothing_left_in_the_private_dir_when_ssh_or_the_wrapper_is_killed() {
    let Some(lab) = Lab::start() else { return };
    let remote = hold_both();
    let cfg = grav_config(
        &lab,
        "kill.conf",
        &format!(
            "  RemoteForward {} localhost:22\n  ExitOnForwardFailure yes\n",
            remote.port
        ),
    );
    let cfg_s = cfg.to_str().unwrap();
    use nix::sys::signal::Signal::*;
    // (whom to kill, signal, expected end of rosh-ssh)
    for (victim, sig) in [
        ("ssh", SIGTERM),
        ("ssh", SIGKILL),
        ("wrapper", SIGTERM),
        ("wrapper", SIGHUP),
        ("wrapper", SIGINT),
    ] {
        let tmp = private_tmp();
        let mut child = rosh_in(&tmp, &["-F", cfg_s, "grav", "echo started; sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = lab::first_line(&mut child);
        assert_eq!(line, "started\n", "{victim} {sig}");
        assert_eq!(
            leftovers(tmp.path()).len(),
            1,
            "the private dir exists while ssh runs"
        );
        let target = match victim {
            "ssh" => lab::first_child(child.id()) as i32,
            _ => child.id() as i32,
        };
        lab::parked(lab::first_child(child.id()));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(target), sig).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        match (victim, sig) {
            // ssh killed by SIGKILL: the wrapper dies the same way.
            ("ssh", SIGKILL) => assert_eq!(st.signal(), Some(9), "{st:?}"),
            // ssh catches TERM, HUP and INT and exits 255 (0 before 8.6).
            _ => assert_eq!(
                st.code(),
                Some(lab::killed_by_signal_exit()),
                "{victim} {sig}: {st:?}"
            ),
        }
        assert_eq!(
            leftovers(tmp.path()),
            Vec::<String>::new(),
            "{victim} {sig}"
        );
    }
}

#[test]
fn fast_path_reads_config_files_not_ssh_g() {
    let work = TempDir::new("fast");
    let calls = work.path().join("calls");
    let ssh = work.path().join("ssh");
    fs::write(
        &ssh,
        format!("#!/bin/sh\necho \"$$ $1\" >> {}\nexit 0\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    let inc = work.path().join("inc.conf");
    fs::write(&inc, "Host x\n  LocalForward 4444 h:22\n").unwrap();
    let plain_cfg = work.path().join("plain.conf");
    fs::write(&plain_cfg, "Host *\n  Compression yes\n").unwrap();
    let fwd_cfg = work.path().join("fwd.conf");
    fs::write(&fwd_cfg, format!("Host *\n  Include {}\n", inc.display())).unwrap();
    for (cfg, want_g) in [(&plain_cfg, false), (&fwd_cfg, true)] {
        let _ = fs::remove_file(&calls);
        let child = Command::new(rosh_ssh())
            .env("ROSH_SSH", &ssh)
            .args(["-F", cfg.to_str().unwrap(), "host"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let log = fs::read_to_string(&calls).unwrap();
        if want_g {
            // ssh -G first, then ssh as a child of rosh-ssh.
            let lines: Vec<&str> = log.lines().collect();
            assert_eq!(lines.len(), 2, "{log}");
            assert!(lines[0].ends_with(" -G"), "{log}");
            assert!(!lines[1].starts_with(&format!("{pid} ")), "{log}");
        } else {
            assert_eq!(log, format!("{pid} -F\n"), "exec'd directly, no ssh -G");
        }
    }
}

#[test]
fn log_lines_go_to_the_users_own_e_file() {
    let Some(lab) = Lab::start() else { return };
    let remote = hold_both();
    let cfg = grav_config(
        &lab,
        "elog.conf",
        &format!(
            "  RemoteForward {} localhost:22\n  ExitOnForwardFailure yes\n",
            remote.port
        ),
    );
    let logs = TempDir::new("elog");
    let first = logs.path().join("first.log");
    let last = logs.path().join("last.log");
    let tmp = private_tmp();
    let out = rosh_in(
        &tmp,
        &[
            "-E",
            first.to_str().unwrap(),
            "-F",
            cfg.to_str().unwrap(),
            "-E",
            last.to_str().unwrap(),
            "-o",
            "LogLevel=INFO",
            "grav",
            "echo ok",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\n");
    // Only rosh-ssh's warning on stderr; ssh's lines in the last -E file.
    let err = text(&out.stderr);
    assert!(
        err.starts_with("rosh-ssh: RemoteForward") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!first.exists());
    let log = fs::read_to_string(&last).unwrap();
    assert!(log.contains("Warning: Permanently added"), "{log}");
    assert!(
        !log.contains("Error: remote port forwarding failed"),
        "{log}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&last).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_remote_forward_refused_through_a_control_master_is_retried_without_it() {
    let Some(lab) = Lab::start() else { return };
    let remote = hold_both();
    let remote2 = hold_both();
    let cfg = grav_config(&lab, "mux.conf", "");
    let cfg_s = cfg.to_str().unwrap();
    let sock = lab.path().join("cm");
    let sock_s = sock.to_str().unwrap();
    let st = Command::new(lab::ssh())
        .args(["-F", cfg_s, "-M", "-S", sock_s, "-fN", "grav"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let r = format!("{}:localhost:22", remote.port);
    let r2 = format!("{}:localhost:22", remote2.port);
    let args = [
        "-F",
        cfg_s,
        "-S",
        sock_s,
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        &r,
        "-R",
        &r2,
        "grav",
        "echo via-master",
    ];
    let plain = Command::new(lab::ssh())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tmp = private_tmp();
    let out = rosh_in(&tmp, &args).output().unwrap();
    let _ = Command::new(lab::ssh())
        .args(["-F", cfg_s, "-S", sock_s, "-O", "exit", "grav"])
        .output();
    assert_eq!(plain.status.code(), Some(255), "{}", text(&plain.stderr));
    assert!(
        text(&plain.stderr).contains("master forward request failed"),
        "{}",
        text(&plain.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "via-master\n");
    assert!(
        text(&out.stderr).starts_with(&format!(
            "rosh-ssh: -R {}:localhost:22: the server refused",
            remote.port
        )),
        "{}",
        text(&out.stderr)
    );
    // Both refused forwards are named, each once; the mux client's own lines
    // about them are rosh-ssh's to replace.
    let err = text(&out.stderr);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("rosh-ssh: "))
        .collect();
    assert_eq!(ours.len(), 2, "{err}");
    assert!(
        ours[1].starts_with(&format!("rosh-ssh: -R {r2}: the server refused")),
        "{err}"
    );
    assert!(
        !text(&out.stderr).contains("forward request failed"),
        "{}",
        text(&out.stderr)
    );
}

/// `~` in an Include pattern is `$HOME` (ssh's own glob on glibc), not the
/// passwd entry: the forward in `$HOME/inc.conf` is found, named as written
/// with its file and line, and dropped from the private copy.
#[test]
fn tilde_in_an_include_is_home_not_the_passwd_entry() {
    let home = TempDir::new("home");
    let held = lab::fresh_listener();
    let port = held.local_addr().unwrap().port();
    fs::write(
        home.path().join("inc.conf"),
        format!("LocalForward 127.0.0.1:{port} localhost:22\n"),
    )
    .unwrap();
    let cfg = home.path().join("cfg");
    fs::write(&cfg, "Include ~/inc.conf\n").unwrap();
    let tmp = private_tmp();
    let out = rosh_in(&tmp, &["--dry-run", "-F", cfg.to_str().unwrap(), "host"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let want = format!(
        "drop LocalForward 127.0.0.1:{port} localhost:22 (~/inc.conf:1) # in use: 127.0.0.1:{port}"
    );
    assert!(stdout.lines().any(|l| l.starts_with(&want)), "{stdout}");
    assert!(
        stdout.lines().next().unwrap().contains(" -F "),
        "ssh is given the private copy: {stdout}"
    );
    assert!(
        !stdout
            .lines()
            .next()
            .unwrap()
            .contains(cfg.to_str().unwrap()),
        "{stdout}"
    );
}

/// Issue 21, defect 5: the same forward under two blocks was named by its
/// first line in the files, not the line ssh applied. `ssh -G` is the
/// judge: Host blocks, negated patterns, Match host, Match final, an
/// Include inside a Host block, both blocks applying (the first wins), and
/// a forward also on the command line whose config line does not apply.
#[test]
fn the_config_line_named_is_the_one_ssh_applied() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let held = hold_both();
    let p = held.port;
    let fwd = format!("LocalForward 127.0.0.1:{p} localhost:22");
    let dir = TempDir::new("applied");
    let d = dir.path();
    fs::write(d.join("inc-other"), format!("{fwd}\n")).unwrap();
    fs::write(d.join("inc-grav"), format!("# grav's\n{fwd}\n")).unwrap();
    let inc = |n: &str| d.join(n).display().to_string();
    // (config, the file:line ssh applies for `grav`)
    let table: Vec<(String, String)> = vec![
        (
            format!("Host other\n  {fwd}\nHost grav\n  {fwd}\n"),
            "cfg:4".into(),
        ),
        (
            format!("Host * !grav\n  {fwd}\nHost gr*\n  {fwd}\n"),
            "cfg:4".into(),
        ),
        (
            format!("Match host other\n  {fwd}\nMatch host grav\n  {fwd}\n"),
            "cfg:4".into(),
        ),
        (
            format!("Host other\n  {fwd}\nMatch final host grav\n  {fwd}\n"),
            "cfg:4".into(),
        ),
        (
            format!(
                "Host other\n  Include {}\nHost grav\n  Include {}\n",
                inc("inc-other"),
                inc("inc-grav")
            ),
            "inc-grav:2".into(),
        ),
        // Both apply: ssh keeps the first of equal forwards.
        (
            format!("Host grav\n  {fwd}\nHost *\n  {fwd}\n"),
            "cfg:2".into(),
        ),
        (
            format!("Host other\n  {fwd}\nHost *\n  {fwd}\n"),
            "cfg:4".into(),
        ),
    ];
    for (n, (body, want)) in table.iter().enumerate() {
        let cfg = d.join(format!("cfg{n}"));
        fs::write(&cfg, body).unwrap();
        let (file, line) = want.split_once(':').unwrap();
        let file = if file == "cfg" {
            cfg.clone()
        } else {
            d.join(file)
        };
        let want = format!("{fwd} ({}:{line})", file.display());
        let out = Command::new(rosh_ssh())
            .args(["--dry-run", "-F"])
            .arg(&cfg)
            .arg("grav")
            .env_remove("ROSH_SSH")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        let drop = stdout.lines().nth(1).unwrap_or_default();
        assert!(
            drop.starts_with(&format!("drop {want} # in use: 127.0.0.1:{p}")),
            "{body}\n{stdout}{}want: drop {want}",
            text(&out.stderr)
        );
        let out = Command::new(rosh_ssh())
            .args(["--check", "-F"])
            .arg(&cfg)
            .arg("grav")
            .env_remove("ROSH_SSH")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let check = text(&out.stdout);
        assert!(
            check.contains(&format!("\n{want}\n  from: {}:{line}\n", file.display())),
            "{body}\n{check}want: {want}"
        );
    }
    // On the command line too, its config line in a block that does not
    // apply: the command line alone asks for it, the config stays as it is.
    let cfg = d.join("cfg-argv");
    fs::write(&cfg, format!("Host other\n  {fwd}\n")).unwrap();
    let spec = format!("127.0.0.1:{p}:localhost:22");
    let out = Command::new(rosh_ssh())
        .args(["--dry-run", "-F"])
        .arg(&cfg)
        .args(["-L", &spec, "grav"])
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("{} -F {} grav", lab::ssh(), cfg.display()).as_str()),
        "{stdout}"
    );
    assert!(
        lines.len() == 2 && lines[1].starts_with(&format!("drop -L {spec} # ")),
        "{stdout}"
    );
}
