//! One connection, one login: a forward that fails after ssh connected
//! costs the forward and one `rosh-ssh:` line, never a second
//! authentication. Logins are counted in the lab sshd's own log.
mod lab;

use lab::{Lab, PortHolder, TempDir, rosh_ssh};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// rosh-ssh's own lines on stderr.
fn rosh_lines(err: &str) -> Vec<&str> {
    err.lines()
        .map(|l| l.trim_start_matches('\r'))
        .filter(|l| l.starts_with("rosh-ssh: "))
        .collect()
}

/// A config whose `Host lab` block starts with `extra` lines.
fn config(lab: &Lab, name: &str, extra: &str) -> PathBuf {
    lab.config_with(name, &format!("Host lab\n{extra}"))
}

fn rosh(args: &[&str]) -> Command {
    let mut c = Command::new(rosh_ssh());
    c.args(args).env_remove("ROSH_SSH").stdin(Stdio::null());
    c
}

/// Runs `cmd` with stdout and stderr in files (a backgrounded ssh may keep
/// them open), waiting at most `limit`.
fn run_files(cmd: &mut Command, dir: &Path, limit: Duration) -> (Option<i32>, String, String) {
    let out = dir.join("stdout");
    let err = dir.join("stderr");
    let mut child = cmd
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        code,
        fs::read_to_string(out).unwrap_or_default(),
        fs::read_to_string(err).unwrap_or_default(),
    )
}

/// `rosh-ssh -F CFG -fN FORWARDS... lab`, waited for at most `limit`: its
/// exit code and stderr.
fn fork_n(cfg: &Path, forwards: &[&str], limit: Duration) -> (Option<i32>, String) {
    let runs = TempDir::new("fork");
    let mut args = vec!["-F", cfg.to_str().unwrap(), "-fN"];
    args.extend_from_slice(forwards);
    args.push("lab");
    let (code, _out, err) = run_files(&mut rosh(&args), runs.path(), limit);
    (code, err)
}

/// Ends the process listening on 127.0.0.1:`port` (a backgrounded ssh this
/// test started), by its pid.
fn end_listener(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if let Ok(h) = rosh_ssh::holder::tcp_listener(addr) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(h.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

#[test]
fn held_remote_forward_at_every_log_level_costs_at_most_one_line_and_no_login() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let runs = TempDir::new("levels");
    for eoff in ["yes", "no"] {
        let cfg = config(
            &lab,
            &format!("eoff-{eoff}.conf"),
            &format!(
                "  RemoteForward {} localhost:22\n  ExitOnForwardFailure {eoff}\n",
                held.port
            ),
        );
        for level in ["DEBUG", "INFO", "ERROR", "FATAL", "QUIET"] {
            for with_e in [false, true] {
                let tag = format!("{eoff}-{level}-{with_e}");
                let count = runs.path().join(format!("count-{tag}"));
                let elog = runs.path().join(format!("e-{tag}.log"));
                let cmd = format!("echo ran >> {}; echo ok", count.display());
                let level_opt = format!("LogLevel={level}");
                let mut args = vec!["-F", cfg.to_str().unwrap(), "-o", &level_opt];
                let e = elog.to_str().unwrap().to_string();
                if with_e {
                    args.extend(["-E", &e]);
                }
                args.extend(["lab", &cmd]);
                let before = lab.logins();
                let out: Output = rosh(&args).output().unwrap();
                let err = text(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "{tag}: {err}");
                assert_eq!(text(&out.stdout), "ok\n", "{tag}");
                assert_eq!(
                    fs::read_to_string(&count).unwrap(),
                    "ran\n",
                    "{tag}: the command ran once"
                );
                let lines = rosh_lines(&err);
                // rosh-ssh's line follows ssh's LogLevel as ssh's own
                // failure line would (none under FATAL and QUIET), and
                // before OpenSSH 8.5 the refusal is not seen below INFO.
                let named = lab::refusal_line_at(level);
                assert_eq!(lines.len(), usize::from(named), "{tag}: {err}");
                assert!(
                    lines.iter().all(|l| l.starts_with(&format!(
                        "rosh-ssh: RemoteForward {} localhost:22 (",
                        held.port
                    )) && l.contains("refused")),
                    "{tag}: {err}"
                );
                // ssh's own failure line is replaced; no forced line leaks.
                assert!(
                    !err.contains("remote port forwarding failed"),
                    "{tag}: {err}"
                );
                assert!(!err.contains("(pid="), "{tag}: {err}");
                if with_e {
                    let log = fs::read_to_string(&elog).unwrap_or_default();
                    assert!(!log.contains("(pid="), "{tag}: {log}");
                }
                assert_eq!(lab.logins() - before, 1, "{tag}: {}", lab.sshd_log());
            }
        }
    }
}

#[test]
fn require_forward_covers_a_refused_remote_forward_whatever_the_config_says() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let cfg = config(
        &lab,
        "req.conf",
        &format!(
            "  RemoteForward {} localhost:22\n  ExitOnForwardFailure no\n",
            held.port
        ),
    );
    let runs = TempDir::new("req");
    let count = runs.path().join("count");
    let cmd = format!("echo ran >> {}", count.display());
    let before = lab.logins();
    let out = rosh(&[
        "--require-forward",
        "-F",
        cfg.to_str().unwrap(),
        "lab",
        &cmd,
    ])
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(!count.exists(), "the command ran");
    let lines = rosh_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("RemoteForward {} localhost:22 (", held.port)),
        "{err}"
    );
    // It did connect (one login): the words say what happened after it.
    assert!(
        lines[0].ends_with("; ssh ends the connection (--require-forward)"),
        "{err}"
    );
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

#[test]
fn fork_with_a_held_remote_forward_returns_with_the_kept_forward_working() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let local = lab::free_port();
    let cfg = config(&lab, "fork.conf", "  ExitOnForwardFailure yes\n");
    let l = format!("127.0.0.1:{local}:127.0.0.1:{}", lab.port);
    let r = format!("{}:localhost:22", held.port);
    let before = lab.logins();
    let (code, err) = fork_n(&cfg, &["-L", &l, "-R", &r], Duration::from_secs(60));
    let banner = lab.banner_through(local);
    end_listener(local);
    assert_eq!(code, Some(0), "{err}");
    let lines = rosh_lines(&err);
    // Before 8.5 (LogLevel ERROR, no LogVerbose) the answer can't be
    // waited for: ssh goes on without the forward, silent at ERROR; at
    // INFO the backgrounded ssh says so itself, as plain `ssh -f` does.
    if !lab::refusal_named_at("ERROR") {
        assert_eq!(lines, Vec::<&str>::new(), "{err}");
        assert!(banner.is_ok(), "{banner:?}");
        assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
        let runs = TempDir::new("fork-info");
        let local = lab::free_port();
        let l = format!("127.0.0.1:{local}:127.0.0.1:{}", lab.port);
        let cfg_s = cfg.to_str().unwrap();
        let args = [
            "-F",
            cfg_s,
            "-o",
            "LogLevel=INFO",
            "-fN",
            "-L",
            &l,
            "-R",
            &r,
            "lab",
        ];
        let (code, _, _) = run_files(&mut rosh(&args), runs.path(), Duration::from_secs(60));
        let want = format!(
            "Warning: remote port forwarding failed for listen port {}",
            held.port
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut err = String::new();
        while Instant::now() < deadline && !err.contains(&want) {
            std::thread::sleep(Duration::from_millis(50));
            err = fs::read_to_string(runs.path().join("stderr")).unwrap_or_default();
        }
        let banner = lab.banner_through(local);
        end_listener(local);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains(&want), "{err}");
        assert!(banner.is_ok(), "{banner:?}");
        return;
    }
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("-R {r}"))
            || lines[0].contains(&format!("RemoteForward {} localhost:22 (", held.port)),
        "{err}"
    );
    assert!(banner.is_ok(), "{banner:?}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

#[test]
fn control_persist_master_made_by_the_run_with_a_held_remote_forward() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let sock = lab.path().join("cp");
    let cfg = config(
        &lab,
        "persist.conf",
        &format!(
            "  ControlMaster auto\n  ControlPath {}\n  ControlPersist 30\n  ExitOnForwardFailure yes\n  RemoteForward {} localhost:22\n",
            sock.display(),
            held.port
        ),
    );
    let runs = TempDir::new("persist");
    let before = lab.logins();
    let (code, out, err) = run_files(
        &mut rosh(&["-F", cfg.to_str().unwrap(), "lab", "echo ok"]),
        runs.path(),
        Duration::from_secs(60),
    );
    // rosh-ssh is gone: nobody reads the FIFO the master logs to. Make it
    // log (a refused forward through it: mux.c error_f) and see it live on.
    // Another port: the first one is in the master's list, and `-O forward`
    // answers it as already there (mux.c "found existing forwarding").
    let held2 = PortHolder::both();
    let r = format!("{}:localhost:22", held2.port);
    let refused = Command::new(lab::ssh())
        .args([
            "-F",
            cfg.to_str().unwrap(),
            "-O",
            "forward",
            "-R",
            &r,
            "lab",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let check = Command::new(lab::ssh())
        .args(["-F", cfg.to_str().unwrap(), "-O", "check", "lab"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let exit = Command::new(lab::ssh())
        .args(["-F", cfg.to_str().unwrap(), "-O", "exit", "lab"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "ok\n");
    assert_eq!(
        refused.status.code(),
        Some(255),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        check.status.success(),
        "the master lived on: {}",
        text(&check.stderr)
    );
    assert!(
        exit.status.success(),
        "the master lived: {}",
        text(&exit.stderr)
    );
    let lines = rosh_lines(&err);
    // LogLevel ERROR: named from OpenSSH 8.5 (lab::refusal_named_at).
    let named = lab::refusal_named_at("ERROR");
    assert_eq!(lines.len(), usize::from(named), "{err}");
    assert!(
        !named || lines[0].contains(&format!("RemoteForward {} localhost:22 (", held.port)),
        "{err}"
    );
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

#[test]
fn the_users_live_master_holding_the_same_local_forward_is_no_conflict() {
    let Some(lab) = Lab::start() else { return };
    let local = lab::free_port();
    let sock = lab.path().join("own");
    let cfg = config(
        &lab,
        "own.conf",
        &format!("  ControlMaster auto\n  ControlPath {}\n", sock.display()),
    );
    let cfg_s = cfg.to_str().unwrap();
    let l = format!("127.0.0.1:{local}:127.0.0.1:{}", lab.port);
    let st = Command::new(lab::ssh())
        .args(["-F", cfg_s, "-fN", "-L", &l, "lab"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let before = lab.logins();
    let out = rosh(&["-F", cfg_s, "-L", &l, "lab", "echo ok"])
        .output()
        .unwrap();
    let banner = lab.banner_through(local);
    let _ = Command::new(lab::ssh())
        .args(["-F", cfg_s, "-O", "exit", "lab"])
        .stdin(Stdio::null())
        .output();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(text(&out.stdout), "ok\n");
    assert_eq!(rosh_lines(&err), Vec::<&str>::new(), "{err}");
    assert!(banner.is_ok(), "{banner:?}");
    assert_eq!(lab.logins(), before, "rode the master: {}", lab.sshd_log());
}

#[test]
fn passphrase_asked_once_in_a_real_terminal_with_a_refused_remote_forward() {
    let Some(lab) = Lab::start() else { return };
    if !lab::require("/usr/bin/tmux") {
        return;
    }
    let dir = TempDir::new("pass");
    let key = dir.path().join("pkey");
    let st = Command::new(lab::keygen())
        .args(["-q", "-t", "ed25519", "-N", "secret-words", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut auth = fs::read_to_string(lab.path().join("authorized_keys")).unwrap();
    auth.push_str(&fs::read_to_string(key.with_extension("pub")).unwrap());
    fs::write(lab.path().join("authorized_keys"), auth).unwrap();
    let held = PortHolder::both();
    let cfg = config(
        &lab,
        "pass.conf",
        &format!(
            "  BatchMode no\n  IdentityFile {}\n  IdentityAgent none\n  RemoteForward {} localhost:22\n  ExitOnForwardFailure yes\n  LogLevel INFO\n",
            key.display(),
            held.port
        ),
    );
    let before = lab.logins();
    let tmux = lab::Tmux::start(
        dir.path(),
        &format!(
            "{} -F {} -t lab 'echo RAN-OK; sleep 1'; echo EXIT=$?; sleep 60",
            rosh_ssh().display(),
            cfg.display()
        ),
    );
    assert!(
        tmux.wait_for("Enter passphrase", Duration::from_secs(20)),
        "{}",
        tmux.pane()
    );
    tmux.cmd(&["send-keys", "secret-words", "Enter"]);
    assert!(
        tmux.wait_for("EXIT=", Duration::from_secs(30)),
        "{}",
        tmux.pane()
    );
    let pane = tmux.pane();
    assert_eq!(pane.matches("Enter passphrase").count(), 1, "{pane}");
    assert_eq!(pane.matches("RAN-OK").count(), 1, "{pane}");
    assert!(pane.contains("EXIT=0"), "{pane}");
    let lines: Vec<&str> = pane.lines().filter(|l| l.contains("rosh-ssh:")).collect();
    assert_eq!(lines.len(), 1, "{pane}");
    assert!(lines[0].starts_with("rosh-ssh: RemoteForward "), "{pane}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

/// The words ssh gets, seen by a stub that asks the real ssh for `-G` and
/// otherwise writes its argv to a file (only the argv matters here).
fn words_for(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let stub = dir.join("ssh");
    let out = dir.join("argv");
    let _ = fs::remove_file(&out);
    fs::write(
        &stub,
        format!(
            "#!/bin/sh\ncase \"$1\" in -G) exec {} \"$@\";; esac\nprintf '%s\\n' \"$@\" > {}\n\
             while [ $# -gt 0 ]; do [ \"$1\" = -E ] && : > \"$2\"; shift; done\n",
            lab::ssh(),
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new(rosh_ssh());
    c.arg("--ssh").arg(&stub).args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_words_ssh_gets() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let dir = TempDir::new("words");
    let d = dir.path();
    let free = lab::free_port().to_string();
    let l = format!("{free}:h:22");
    // Kept forwards: ExitOnForwardFailure=no first, the log FIFO, LogVerbose,
    // and a private control socket (a forward that loses its port to a race
    // after the probe is restored through it).
    let w = words_for(d, &["-F", "/dev/null", "-L", &l, "h"], &[]);
    assert_eq!(w[..2], ["-o", "ExitOnForwardFailure=no"], "{w:?}");
    assert!(w.iter().any(|x| x == "-E"), "{w:?}");
    // LogVerbose exists from OpenSSH 8.5 (readconf.c): never before.
    assert_eq!(
        w.iter().any(|x| x.starts_with("LogVerbose=")),
        lab::client_at_least(8, 5),
        "{w:?}"
    );
    assert!(w.iter().any(|x| x == "ControlMaster=yes"), "{w:?}");
    assert!(w.iter().any(|x| x == "ControlPersist=no"), "{w:?}");
    assert_eq!(w[w.len() - 3..], ["-L", &l, "h"], "{w:?}");
    // --no-restore: no control socket.
    let w = words_for(d, &["--no-restore", "-F", "/dev/null", "-L", &l, "h"], &[]);
    assert!(!w.iter().any(|x| x.starts_with("ControlMaster")), "{w:?}");
    // --require-forward: yes.
    let w = words_for(
        d,
        &["--require-forward", "-F", "/dev/null", "-L", &l, "h"],
        &[],
    );
    assert_eq!(w[..2], ["-o", "ExitOnForwardFailure=yes"], "{w:?}");
    // A tunnel: the user's setting stays.
    let w = words_for(d, &["-F", "/dev/null", "-w", "0:0", "-L", &l, "h"], &[]);
    assert!(
        !w.iter().any(|x| x.starts_with("ExitOnForwardFailure")),
        "{w:?}"
    );
    // At a debug level nothing is forced.
    let w = words_for(d, &["-F", "/dev/null", "-v", "-L", &l, "h"], &[]);
    assert!(!w.iter().any(|x| x.starts_with("LogVerbose=")), "{w:?}");
    // A remote forward may be refused: a private master to restore through.
    let r = format!("{free}:h:22");
    let w = words_for(d, &["-F", "/dev/null", "-R", &r, "h"], &[]);
    for o in ["ControlMaster=yes", "ControlPersist=no"] {
        assert!(w.iter().any(|x| x == o), "{o}: {w:?}");
    }
    assert!(w.iter().any(|x| x.starts_with("ControlPath=/")), "{w:?}");
    // A private dir whose path is too long for a socket address: the
    // socket goes to a short private dir under /tmp, removed at the end.
    let long = d.join("x".repeat(100));
    fs::create_dir(&long).unwrap();
    let long_s = long.to_str().unwrap();
    let w = words_for(
        d,
        &["-F", "/dev/null", "-R", &r, "h"],
        &[("XDG_RUNTIME_DIR", long_s), ("TMPDIR", long_s)],
    );
    let ctl = w
        .iter()
        .find_map(|x| x.strip_prefix("ControlPath="))
        .unwrap_or_else(|| panic!("{w:?}"));
    assert!(ctl.starts_with("/tmp/rosh-ssh."), "{w:?}");
    assert!(!Path::new(ctl).parent().unwrap().exists(), "{ctl} left");
    assert_eq!(fs::read_dir(&long).unwrap().count(), 0);
    // The user's ControlPath where this ssh will be a master; a private one
    // where nothing would listen there (ControlMaster no, no live master).
    let theirs = d.join("cm-%C");
    let theirs_s = format!("ControlPath={}", theirs.display());
    let w = words_for(
        d,
        &[
            "-F",
            "/dev/null",
            "-o",
            "ControlMaster=auto",
            "-o",
            &theirs_s,
            "-R",
            &r,
            "h",
        ],
        &[],
    );
    assert!(!w.iter().any(|x| x == "ControlMaster=yes"), "{w:?}");
    let w = words_for(d, &["-F", "/dev/null", "-o", &theirs_s, "-R", &r, "h"], &[]);
    assert!(w.iter().any(|x| x == "ControlMaster=yes"), "{w:?}");
    // -f with a remote forward: the log is read only where the server's
    // answer can be waited for (forced: 8.5 on); before, ssh keeps its log.
    let w = words_for(d, &["-F", "/dev/null", "-fN", "-R", &r, "h"], &[]);
    assert_eq!(w[..2], ["-o", "ExitOnForwardFailure=no"], "{w:?}");
    assert_eq!(
        w.iter().any(|x| x == "-E"),
        lab::client_at_least(8, 5),
        "{w:?}"
    );
    let w = words_for(d, &["-F", "/dev/null", "-v", "-fN", "-R", &r, "h"], &[]);
    assert!(
        w.iter().any(|x| x == "-E"),
        "at DEBUG the answers show: {w:?}"
    );
    // ... not with --no-restore, nor ROSH_RESTORE=0, nor -f.
    for (args, env) in [
        (
            vec!["--no-restore", "-F", "/dev/null", "-R", &r, "h"],
            vec![],
        ),
        (
            vec!["-F", "/dev/null", "-R", &r, "h"],
            vec![("ROSH_RESTORE", "0")],
        ),
        (vec!["-F", "/dev/null", "-fN", "-R", &r, "h"], vec![]),
    ] {
        let w = words_for(d, &args, &env);
        assert!(
            !w.iter().any(|x| x.starts_with("Control")),
            "{args:?}: {w:?}"
        );
    }
    // No forward at all: the fast path, the words as given.
    let w = words_for(d, &["-F", "/dev/null", "h", "true"], &[]);
    assert_eq!(w, ["-F", "/dev/null", "h", "true"]);
}

/// `-f` with local forwards only: no remote forward to wait for, so rosh-ssh
/// returns as soon as ssh has gone to the background (the wait for remote
/// answers would be up to 60 s; the bound here is generous, not a timing).
#[test]
fn fork_with_local_forwards_only_waits_for_no_answers() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let (a, b) = (lab::free_port(), lab::free_port());
    let cfg = config(&lab, "fork-local.conf", "");
    let la = format!("127.0.0.1:{a}:127.0.0.1:{}", lab.port);
    let lb = format!("127.0.0.1:{b}:127.0.0.1:{}", lab.port);
    let lh = format!("127.0.0.1:{}:127.0.0.1:{}", held.port, lab.port);
    let (code, err) = fork_n(
        &cfg,
        &["-L", &la, "-L", &lb, "-L", &lh],
        Duration::from_secs(30),
    );
    let banners = (lab.banner_through(a), lab.banner_through(b));
    end_listener(a);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rosh_lines(&err).len(), 1, "{err}");
    assert!(banners.0.is_ok() && banners.1.is_ok(), "{banners:?}");
}

/// The user's own LogVerbose lines reach the user as plain ssh shows them,
/// also when rosh-ssh adds its functions to the list (it then hides none).
#[test]
fn the_users_own_log_verbose_lines_are_shown() {
    let Some(lab) = Lab::start() else { return };
    let cfg = config(&lab, "lv.conf", "");
    let l = format!("127.0.0.1:{}:127.0.0.1:{}", lab::free_port(), lab.port);
    let lv = "LogVerbose=sshconnect.c:ssh_connect_direct():*";
    let want = format!("Connecting to 127.0.0.1 [127.0.0.1] port {}.", lab.port);
    let args = [
        "-F",
        cfg.to_str().unwrap(),
        "-o",
        lv,
        "-L",
        &l,
        "lab",
        "true",
    ];
    let plain = Command::new(lab::ssh())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ours = rosh(&args).output().unwrap();
    if !lab::client_at_least(8, 5) {
        // No LogVerbose before 8.5: ssh's own error, as plain ssh gives it.
        assert_eq!(plain.status.code(), Some(255));
        assert_eq!(ours.status.code(), plain.status.code());
        assert_eq!(text(&ours.stderr), text(&plain.stderr));
        return;
    }
    assert!(
        text(&plain.stderr).contains(&want),
        "{}",
        text(&plain.stderr)
    );
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours.stderr));
    assert!(text(&ours.stderr).contains(&want), "{}", text(&ours.stderr));
}

/// A ProxyCommand that holds every chunk from the server for 300 ms: a slow
/// link, on which the server answers a remote forward well after `ssh -f`
/// has gone to the background.
const SLOW_RELAY: &str = r#"
import os, socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(b)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    time.sleep(0.3)
    os.write(1, b)
"#;

/// `-f` on a slow link: rosh-ssh waits for the server's answer to the remote
/// forward that the backgrounded ssh logs, so the refusal is still reported
/// (once) before it returns.
#[test]
fn fork_on_a_slow_link_still_reports_the_refused_remote_forward() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::both();
    let local = lab::free_port();
    let relay = lab.path().join("slow.py");
    fs::write(&relay, SLOW_RELAY).unwrap();
    let cfg = config(
        &lab,
        "slow.conf",
        &format!("  ProxyCommand python3 {} %p\n", relay.display()),
    );
    let l = format!("127.0.0.1:{local}:127.0.0.1:{}", lab.port);
    let r = format!("{}:localhost:22", held.port);
    let before = lab.logins();
    let (code, err) = fork_n(&cfg, &["-L", &l, "-R", &r], Duration::from_secs(60));
    end_listener(local);
    assert_eq!(code, Some(0), "{err}");
    let lines = rosh_lines(&err);
    // Before 8.5 at ERROR the answer can't be seen: not a word (as above).
    let named = lab::refusal_named_at("ERROR");
    assert_eq!(lines.len(), usize::from(named), "{err}");
    assert!(
        !named || lines[0].starts_with(&format!("rosh-ssh: -R {r}: the server refused")),
        "{err}"
    );
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

/// Issue 21, defect 3: `-S PATH` is the user's control socket, and ssh's
/// -S beats any ControlPath rosh-ssh could add. With no master there, plain
/// `ssh -S PATH` makes none: with a dropped forward, rosh-ssh leaves it so
/// (no master on the user's socket, no restore). With a live master there
/// (`parallel --controlmaster`'s shape), every call rides it: no login.
#[test]
fn dash_s_is_the_users_socket_with_or_without_a_master() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let dir = TempDir::new("dash-s");
    let sock = dir.path().join("cm");
    let sock_s = sock.to_str().unwrap();
    let cfg = lab.config();
    let cfg_s = cfg.to_str().unwrap();
    let l = format!("127.0.0.1:{}:127.0.0.1:{}", held.port, lab.port);
    // No master: ssh must not become one on the user's socket.
    let before = lab.logins();
    let mut child = rosh(&[
        "-F",
        cfg_s,
        "-S",
        sock_s,
        "-L",
        &l,
        "lab",
        "echo up; sleep 2",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let up = lab::first_line(&mut child);
    let master_made = sock.exists();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(up, "up\n", "{err}");
    assert!(
        !master_made,
        "ssh became a master on the user's -S socket: {err}"
    );
    assert!(err.contains("forward dropped"), "{err}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
    // A live master on it: each call rides it.
    let st = Command::new(lab::ssh())
        .args(["-F", cfg_s, "-M", "-S", sock_s, "-fN", "lab"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let before = lab.logins();
    for _ in 0..3 {
        let out = rosh(&["-F", cfg_s, "-S", sock_s, "-L", &l, "lab", "echo rode"])
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "rode\n", "{}", text(&out.stderr));
    }
    let logins = lab.logins() - before;
    let _ = Command::new(lab::ssh())
        .args(["-S", sock_s, "-O", "exit", "lab"])
        .stdin(Stdio::null())
        .output();
    assert_eq!(logins, 0, "calls through the master: {}", lab.sshd_log());
}

/// Issue 21, defect 4: two installed copies of rosh-ssh (two files: a home
/// install and a package, each with its PATH shim named `ssh`). The one run
/// finds the other as `ssh`: that one steps aside and the real ssh runs,
/// once, with a kept forward and a dropped one; nothing hangs, nothing is
/// left behind.
#[test]
fn a_second_installed_copy_found_as_ssh_steps_aside() {
    let Some(lab) = Lab::start() else { return };
    let dir = TempDir::new("two-copies");
    let (home, pkg) = (dir.path().join("home"), dir.path().join("pkg"));
    fs::create_dir_all(home.join("bin")).unwrap();
    fs::create_dir_all(pkg.join("bin")).unwrap();
    // The package's copy is another file; each shim links its own copy.
    fs::copy(rosh_ssh(), pkg.join("rosh-ssh")).unwrap();
    std::os::unix::fs::symlink(rosh_ssh(), home.join("bin/ssh")).unwrap();
    std::os::unix::fs::symlink(pkg.join("rosh-ssh"), pkg.join("bin/ssh")).unwrap();
    let real = Path::new(lab::ssh()).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        home.join("bin").display(),
        pkg.join("bin").display(),
        real.display()
    );
    let held = PortHolder::v4();
    let free = lab::free_port();
    let tmp = TempDir::new("two-copies-tmp");
    let before = lab.logins();
    let mut child = Command::new(home.join("bin/ssh"))
        .args(lab.args())
        .args(["-L", &format!("{}:127.0.0.1:{}", held.port, lab.port)])
        .args(["-L", &format!("{free}:127.0.0.1:{}", lab.port)])
        .arg("echo once")
        .env("PATH", &path)
        .env("TMPDIR", tmp.path())
        .env("XDG_RUNTIME_DIR", tmp.path())
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hung = child.try_wait().unwrap().is_none();
    if hung {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!hung, "hung: {err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(text(&out.stdout), "once\n");
    assert_eq!(err.matches("forward dropped").count(), 1, "{err}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != lab::MEMO_DIR)
        .map(|e| e.path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new());
}
