//! Faults and load against the sshd lab: signals to ssh and to the wrapper, a closed terminal,
//! bad input, many wrappers racing for one forward, and a soak. Every run is bounded by a
//! deadline this file enforces by killing the pid; every run gets a private TMPDIR and
//! XDG_RUNTIME_DIR so leftovers can be counted.
mod lab;

use lab::{Lab, TempDir, rosh_ssh};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A process's parent pid and state letter, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: read after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

/// The live children of `pid`: (pid, state, argv0).
fn children(pid: u32) -> Vec<(u32, char, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state)) = stat(p)
            && ppid == pid
        {
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let argv0 = text(cmd.split(|&c| c == 0).next().unwrap_or_default());
            out.push((p, state, argv0));
        }
    }
    out
}

/// Whether `pid` still names a live process running `argv0` (not a zombie, not reused).
fn alive_as(pid: u32, argv0: &str) -> bool {
    let Some((_, state)) = stat(pid) else {
        return false;
    };
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    state != 'Z' && text(cmd.split(|&c| c == 0).next().unwrap_or_default()) == argv0
}

/// Waits for `pid` (not ours to reap) to be gone, up to `limit`.
fn gone_within(pid: u32, argv0: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive_as(pid, argv0) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// What a bounded run gave: status (None: it hung and was killed), stdout, stderr, duration.
struct Ran {
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    took: Duration,
}

/// Runs `cmd` with stdin from /dev/null, output collected, killed after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Ran {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let a = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let b = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = lab::wait_bounded(&mut child, limit);
    Ran {
        status,
        stdout: a.join().unwrap(),
        stderr: b.join().unwrap(),
        took: started.elapsed(),
    }
}

/// A private TMPDIR and XDG_RUNTIME_DIR for one wrapper run.
struct Scratch(TempDir);

impl Scratch {
    fn new() -> Scratch {
        let d = TempDir::new("faults-tmp");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(d)
    }
    fn apply(&self, c: &mut Command) {
        c.env("TMPDIR", self.0.path())
            .env("XDG_RUNTIME_DIR", self.0.path());
    }
    /// What is left in it.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != lab::MEMO_DIR)
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

/// rosh-ssh with the lab's arguments, then `rest`, in `scratch`.
fn rosh(lab: &Lab, scratch: &Scratch, rest: &[&str]) -> Command {
    let mut c = Command::new(rosh_ssh());
    c.args(lab.args()).args(rest).env_remove("ROSH_SSH");
    scratch.apply(&mut c);
    c
}

/// Plain ssh with the lab's arguments, then `rest`.
fn plain(lab: &Lab, rest: &[&str]) -> Command {
    let mut c = Command::new(lab::ssh());
    c.args(lab.args()).args(rest);
    c
}

/// A `LocalForward` line for a port that was free a moment ago, leading to the lab's sshd.
fn forward_to_lab(lab: &Lab) -> String {
    format!("127.0.0.1:{}:127.0.0.1:{}", lab::free_port(), lab.port)
}

/// Spawns `cmd` (its stdout piped), reads until a line holding `marker`; returns the child.
fn spawn_until(cmd: &mut Command, marker: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let m = marker.to_owned();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(false);
                    return;
                }
                Ok(_) if line.contains(&m) => {
                    let _ = tx.send(true);
                    // Keep draining so the session never blocks on a full pipe.
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(20)).unwrap_or(false);
    if !got {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let _ = child.wait();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("{marker} never came: {err}");
    }
    child
}

/// The one ssh child of a wrapper, waited for briefly (the ssh -G query comes and goes first).
fn ssh_child(wrapper: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids: Vec<_> = children(wrapper)
            .into_iter()
            .filter(|(_, s, a)| *s != 'Z' && a == lab::ssh())
            .collect();
        if kids.len() == 1 {
            return kids[0].0;
        }
        assert!(
            Instant::now() < deadline,
            "wrapper {wrapper} children: {:?}",
            children(wrapper)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sig_name(s: Signal) -> &'static str {
    s.as_str()
}

/// How a status reads in a message.
fn show(st: Option<ExitStatus>) -> String {
    match st {
        None => "hung (killed by the test)".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(g)) => format!("signal {g}"),
            _ => format!("{s:?}"),
        },
    }
}

/// The remote command of a long session: a marker line, then a wait.
fn session(marker: &str) -> String {
    format!("echo {marker}; sleep 30")
}

/// Asserts the wrapper has exactly one live child, ssh, and no zombie.
fn assert_one_live_ssh_child(wrapper: u32) -> u32 {
    let ssh = ssh_child(wrapper);
    let kids = children(wrapper);
    assert!(
        kids.iter().all(|(_, s, _)| *s != 'Z'),
        "zombie child of the wrapper: {kids:?}"
    );
    assert_eq!(kids.len(), 1, "children of the wrapper: {kids:?}");
    ssh
}

/// Plain ssh's status when `sig` reaches it mid-session.
fn plain_status_on(lab: &Lab, sig: Signal, opts: &[&str]) -> Option<ExitStatus> {
    let marker = format!("plain-{}-{}", sig_name(sig), std::process::id());
    let cmd = session(&marker);
    let mut args = opts.to_vec();
    args.push(&cmd);
    let mut child = spawn_until(&mut plain(lab, &args), &marker);
    lab::parked(child.id());
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    lab::wait_bounded(&mut child, Duration::from_secs(10))
}

#[test]
fn ssh_killed_mid_session_ends_the_wrapper_the_way_ssh_ended() {
    let Some(lab) = Lab::start() else { return };
    for eoff in ["no", "yes"] {
        let e = format!("ExitOnForwardFailure={eoff}");
        for sig in [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGHUP] {
            let fwd = forward_to_lab(&lab);
            let opts = ["-o", &e, "-L", &fwd];
            let want = plain_status_on(&lab, sig, &opts);
            let scratch = Scratch::new();
            let marker = format!("ssh-{}-{eoff}-{}", sig_name(sig), std::process::id());
            let cmd = session(&marker);
            let mut args = opts.to_vec();
            args.push(&cmd);
            let mut w = spawn_until(&mut rosh(&lab, &scratch, &args), &marker);
            let ssh = assert_one_live_ssh_child(w.id());
            lab::parked(ssh);
            kill(Pid::from_raw(ssh as i32), sig).unwrap();
            let got = lab::wait_bounded(&mut w, Duration::from_secs(10));
            let what = format!("{} to ssh, {e}", sig_name(sig));
            assert!(want.is_some(), "{what}: plain ssh hung");
            assert_eq!(show(got), show(want), "{what}: wrapper vs plain ssh");
            assert!(
                gone_within(ssh, lab::ssh(), Duration::from_secs(2)),
                "{what}: ssh lives"
            );
            assert_eq!(
                scratch.leftovers(),
                Vec::<PathBuf>::new(),
                "{what}: leftovers"
            );
        }
    }
}

#[test]
fn wrapper_killed_mid_session_ends_like_plain_ssh_and_leaves_nothing() {
    let Some(lab) = Lab::start() else { return };
    for eoff in ["no", "yes"] {
        let e = format!("ExitOnForwardFailure={eoff}");
        for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
            let fwd = forward_to_lab(&lab);
            let opts = ["-o", &e, "-L", &fwd];
            let want = plain_status_on(&lab, sig, &opts);
            let scratch = Scratch::new();
            let marker = format!("wrap-{}-{eoff}-{}", sig_name(sig), std::process::id());
            let cmd = session(&marker);
            let mut args = opts.to_vec();
            args.push(&cmd);
            let mut w = spawn_until(&mut rosh(&lab, &scratch, &args), &marker);
            let ssh = assert_one_live_ssh_child(w.id());
            lab::parked(ssh);
            kill(Pid::from_raw(w.id() as i32), sig).unwrap();
            let got = lab::wait_bounded(&mut w, Duration::from_secs(10));
            let what = format!("{} to the wrapper, {e}", sig_name(sig));
            assert!(want.is_some(), "{what}: plain ssh hung");
            assert_eq!(show(got), show(want), "{what}: wrapper vs plain ssh");
            assert!(
                gone_within(ssh, lab::ssh(), Duration::from_secs(2)),
                "{what}: orphan ssh"
            );
            assert_eq!(
                scratch.leftovers(),
                Vec::<PathBuf>::new(),
                "{what}: leftovers"
            );
        }
    }
}

#[test]
fn wrapper_sigkilled_takes_ssh_with_it() {
    let Some(lab) = Lab::start() else { return };
    for eoff in ["no", "yes"] {
        let e = format!("ExitOnForwardFailure={eoff}");
        let fwd = forward_to_lab(&lab);
        let scratch = Scratch::new();
        let marker = format!("wrapkill-{eoff}-{}", std::process::id());
        let cmd = session(&marker);
        let mut w = spawn_until(
            &mut rosh(&lab, &scratch, &["-o", &e, "-L", &fwd, &cmd]),
            &marker,
        );
        let ssh = assert_one_live_ssh_child(w.id());
        kill(Pid::from_raw(w.id() as i32), Signal::SIGKILL).unwrap();
        let got = lab::wait_bounded(&mut w, Duration::from_secs(10));
        assert_eq!(got.and_then(|s| s.signal()), Some(9));
        // Linux: PR_SET_PDEATHSIG, ssh is told, and ends well before its
        // session would. The portable build (macOS, FreeBSD) has no such
        // thing: ssh lives on, as a killed shell's job would (README,
        // Platforms); ended here by its pid.
        let gone = gone_within(ssh, lab::ssh(), Duration::from_secs(5));
        if cfg!(rosh_portable) {
            assert!(!gone, "{e}: the portable build has no PR_SET_PDEATHSIG");
            let _ = kill(Pid::from_raw(ssh as i32), Signal::SIGTERM);
            assert!(gone_within(ssh, lab::ssh(), Duration::from_secs(5)), "{e}");
        } else {
            assert!(gone, "{e}: ssh {ssh} outlived a SIGKILLed wrapper");
        }
        // A SIGKILLed wrapper cannot clean up its private dir: not asserted here.
    }
}

/// Runs argv[2:] in a new pty session (python3's pty module) and reports how it ended.
/// argv[1] is the mode: `close` closes the master (the terminal window goes away) with the
/// program itself the session leader; `shell` runs it under `sh -c` as the session leader and
/// SIGKILLs the sh (the pane's shell dies), then closes the master. python3 is a subreaper, so
/// the program's status is seen either way. Output: `wrapper PID`, `ssh PID`, `status N`
/// (a raw wait status) or `hung`.
const PTY_DRIVER: &str = r#"
import ctypes, os, pty, select, signal, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
mode, marker, argv = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
if mode == 'shell':
    argv = ['/bin/sh', '-c', '"$@"; echo after', 'sh'] + argv
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
buf, deadline = b'', time.time() + 20
while marker not in buf and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            buf += os.read(fd, 4096)
        except OSError:
            break
if marker not in buf:
    print('nomarker', buf); sys.exit(1)
def kids(p):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                s = open('/proc/%s/stat' % d).read()
            except OSError:
                continue
            if int(s[s.rfind(')') + 2:].split()[1]) == p:
                out.append(int(d))
    return out
wrapper = pid if mode == 'close' else kids(pid)[0]
ssh = [k for k in kids(wrapper) if open('/proc/%d/cmdline' % k, 'rb').read().split(b'\0')[0] == SSH_UNDER_TEST]
print('wrapper', wrapper); print('ssh', ssh[0] if ssh else 0); sys.stdout.flush()
# ssh parked in poll first (see parked() in tests/lab/mod.rs: OpenSSH before 9.5 can lose a signal
# that lands while it is busy), bounded.
def in_poll(p):
    try:
        return 'poll' in open('/proc/%d/wchan' % p).read()
    except OSError:
        return False
def parked(p):
    until = time.time() + 5
    while time.time() < until:
        if in_poll(p):
            time.sleep(0.02)
            if in_poll(p):
                return
        time.sleep(0.01)
parked(ssh[0] if ssh else wrapper)
if mode == 'shell':
    os.kill(pid, signal.SIGKILL)
os.close(fd)
deadline = time.time() + 15
while time.time() < deadline:
    try:
        p, st = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if p == wrapper:
        print('status', st); sys.stdout.flush()
        if mode == 'close':
            break
    if p == 0:
        time.sleep(0.02)
else:
    print('hung'); sys.stdout.flush()
    os.kill(wrapper, signal.SIGKILL)
"#;

/// What the PTY driver saw: (wrapper pid, ssh pid, raw wait status or None when it hung).
fn in_pty(dir: &Path, mode: &str, marker: &str, argv: &[OsString]) -> (u32, u32, Option<i32>) {
    let script = dir.join("ptydriver.py");
    // The driver looks for the ssh under test among the wrapper's children.
    let driver = PTY_DRIVER.replace("SSH_UNDER_TEST", &format!("b'{}'", lab::ssh()));
    fs::write(&script, driver).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(mode)
        .arg(marker)
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let o = text(&out.stdout);
    let field = |k: &str| {
        o.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
    };
    let wrapper = field("wrapper ").and_then(|v| v.parse().ok());
    let ssh = field("ssh ").and_then(|v| v.parse().ok());
    let (Some(wrapper), Some(ssh)) = (wrapper, ssh) else {
        panic!("pty driver: {o} {}", text(&out.stderr));
    };
    (wrapper, ssh, field("status ").and_then(|v| v.parse().ok()))
}

fn raw_status(st: Option<i32>) -> String {
    show(st.map(ExitStatus::from_raw))
}

/// Regression: a hung-up terminal signals only its session leader. When that is the wrapper (a
/// terminal or tmux window running `ssh host` directly), SIGHUP comes from the kernel and ssh
/// never sees it unless the wrapper passes it on: ssh then outlives the terminal.
#[test]
fn closed_terminal_with_the_wrapper_as_session_leader_ends_like_plain_ssh() {
    terminal_goes_away("close");
}

/// The pane's shell dies: the kernel hangs up the foreground process group, wrapper and ssh.
#[test]
fn killed_pane_shell_ends_the_wrapper_like_plain_ssh() {
    terminal_goes_away("shell");
}

fn terminal_goes_away(mode: &str) {
    let Some(lab) = Lab::start() else { return };
    if !lab::require("/usr/bin/python3") {
        return;
    }
    let dir = TempDir::new("pty");
    {
        for eoff in ["no", "yes"] {
            let e = format!("ExitOnForwardFailure={eoff}");
            let marker = format!("pty-{mode}-{eoff}-{}", std::process::id());
            let cmd = session(&marker);
            let fwd = forward_to_lab(&lab);
            let words: Vec<OsString> = ["-t", "-o", &e, "-L", &fwd, &cmd]
                .iter()
                .map(OsString::from)
                .collect();
            let mut plain_argv: Vec<OsString> = vec![lab::ssh().into()];
            plain_argv.extend(lab.args());
            plain_argv.extend(words.iter().cloned());
            let started = Instant::now();
            let (_, _, want) = in_pty(dir.path(), mode, &marker, &plain_argv);
            let plain_took = started.elapsed();

            let scratch = Scratch::new();
            let mut argv: Vec<OsString> = vec![
                "/usr/bin/env".into(),
                format!("TMPDIR={}", scratch.0.path().display()).into(),
                format!("XDG_RUNTIME_DIR={}", scratch.0.path().display()).into(),
                rosh_ssh().into(),
            ];
            argv.extend(lab.args());
            argv.extend(words);
            let started = Instant::now();
            let (_wrapper, ssh, got) = in_pty(dir.path(), mode, &marker, &argv);
            let took = started.elapsed();
            let what = format!("terminal {mode}, {e}");
            assert!(want.is_some(), "{what}: plain ssh hung");
            assert_eq!(
                raw_status(got),
                raw_status(want),
                "{what}: wrapper (after {took:?}) vs plain ssh (after {plain_took:?})"
            );
            assert!(ssh != 0, "{what}: no ssh child seen");
            assert!(
                gone_within(ssh, lab::ssh(), Duration::from_secs(2)),
                "{what}: orphan ssh"
            );
            assert_eq!(
                scratch.leftovers(),
                Vec::<PathBuf>::new(),
                "{what}: leftovers"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: ssh's own answer (same status, same stderr) or a clear rosh-ssh message; never a
// panic, never a hang.

const LIMIT: Duration = Duration::from_secs(30);

/// Arguments that reach nothing quickly: loopback port 1 refuses.
fn refused(config: &Path) -> Vec<OsString> {
    vec![
        "-F".into(),
        config.into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-p".into(),
        "1".into(),
        "127.0.0.1".into(),
    ]
}

fn os(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// Runs plain ssh and rosh-ssh (in a private scratch dir) with the same words, as `uid` when
/// given, and asserts they end alike: same status, same stderr, same stdout, nothing left.
fn same_as_ssh(what: &str, words: &[OsString], uid: Option<u32>) {
    let scratch = Scratch::new();
    if let Some(u) = uid {
        nix::unistd::chown(scratch.0.path(), Some(u.into()), None).unwrap();
    }
    let setup = |c: &mut Command| {
        c.args(words)
            .env_remove("ROSH_SSH")
            .env("HOME", scratch.0.path());
        if let Some(u) = uid {
            use std::os::unix::process::CommandExt;
            c.uid(u).gid(u);
        }
    };
    let mut p = Command::new(lab::ssh());
    setup(&mut p);
    let want = run_bounded(&mut p, LIMIT);
    let mut r = Command::new(rosh_ssh());
    setup(&mut r);
    scratch.apply(&mut r);
    let got = run_bounded(&mut r, LIMIT);
    assert!(want.status.is_some(), "{what}: plain ssh hung");
    assert!(
        got.status.is_some(),
        "{what}: rosh-ssh hung ({:?}); stderr: {}",
        got.took,
        text(&got.stderr)
    );
    assert!(
        !text(&got.stderr).contains("panicked"),
        "{what}: {}",
        text(&got.stderr)
    );
    assert_eq!(
        (show(got.status), text(&got.stderr), got.stdout.len()),
        (show(want.status), text(&want.stderr), want.stdout.len()),
        "{what}: rosh-ssh vs plain ssh"
    );
    assert_eq!(
        scratch.leftovers(),
        Vec::<PathBuf>::new(),
        "{what}: leftovers"
    );
}

/// `words` with a -L for a free port put first, so rosh-ssh takes its slow path.
fn with_forward(words: &[OsString]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["-L".into(), format!("{}:h:1", lab::free_port()).into()];
    v.extend(words.iter().cloned());
    v
}

#[test]
fn empty_and_hostless_argv_get_ssh_usage() {
    if !lab::require(lab::ssh()) {
        return;
    }
    same_as_ssh("empty argv", &[], None);
    same_as_ssh("-F only", &["-F".into(), "/dev/null".into()], None);
    same_as_ssh("-L only", &["-L".into(), "1234:h:1".into()], None);
    same_as_ssh("bad option", &["-Z".into(), "h".into()], None);
}

#[test]
fn a_hundred_thousand_arguments() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let mut words = refused(Path::new("/dev/null"));
    words.push("true".into());
    words.extend(std::iter::repeat_n(OsString::from("x"), 100_000));
    same_as_ssh("100k words", &words, None);
    same_as_ssh("100k words, -L", &with_forward(&words), None);
    // 100k options: what ssh makes of them, rosh-ssh must too.
    let mut opts: Vec<OsString> = Vec::new();
    for _ in 0..50_000 {
        opts.push("-o".into());
        opts.push("ServerAliveInterval=5".into());
    }
    opts.extend(refused(Path::new("/dev/null")));
    same_as_ssh("100k option words", &opts, None);
    same_as_ssh("100k option words, -L", &with_forward(&opts), None);
}

#[test]
fn megabyte_of_arguments() {
    if !lab::require(lab::ssh()) {
        return;
    }
    // Linux caps one argument at MAX_ARG_STRLEN (32 pages): a single 1 MB word cannot be
    // exec'd by anyone, so 1 MB comes as eight words of the largest size, plus one huge
    // host name and one huge -o value.
    let big = "y".repeat(128 * 1024 - 1);
    let mut words = refused(Path::new("/dev/null"));
    words.push("echo".into());
    words.extend(std::iter::repeat_n(OsString::from(&big), 8));
    same_as_ssh("8 x 128 KiB words", &words, None);
    same_as_ssh("8 x 128 KiB words, -L", &with_forward(&words), None);
    let host: Vec<OsString> = vec!["-F".into(), "/dev/null".into(), big.clone().into()];
    same_as_ssh("128 KiB host", &host, None);
    same_as_ssh("128 KiB host, -L", &with_forward(&host), None);
    let mut opt: Vec<OsString> = vec!["-o".into(), format!("SetEnv=A={}", &big[..100_000]).into()];
    opt.extend(refused(Path::new("/dev/null")));
    same_as_ssh("100 KB -o value", &opt, None);
    same_as_ssh("100 KB -o value, -L", &with_forward(&opt), None);
    let spec = format!("{}:h:1", "9".repeat(100_000));
    let l: Vec<OsString> = vec![
        "-F".into(),
        "/dev/null".into(),
        "-L".into(),
        spec.into(),
        "h".into(),
    ];
    same_as_ssh("100 KB -L", &l, None);
}

#[test]
fn non_utf8_bytes_everywhere() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let dir = TempDir::new("nonutf8");
    let cfg = dir
        .path()
        .join(OsString::from_vec(b"conf\xff\xfe".to_vec()));
    fs::write(
        &cfg,
        b"LocalForward 7\xff h:1\nUser \xe9t\xe9\nHost \xff*\n  Port 1\n",
    )
    .unwrap();
    let cases: Vec<(&str, Vec<OsString>)> = vec![
        (
            "host",
            vec!["-F".into(), "/dev/null".into(), os(b"h\xff\xfe")],
        ),
        (
            "-L spec",
            vec![
                "-F".into(),
                "/dev/null".into(),
                "-L".into(),
                os(b"\xff:h:1"),
                "h".into(),
            ],
        ),
        ("-L host", {
            let mut v = vec!["-L".into(), os(b"1234:h\xff:1")];
            v.extend(refused(Path::new("/dev/null")));
            v
        }),
        ("-o value", {
            let mut v = vec!["-o".into(), os(b"User=\xe9t\xe9")];
            v.extend(refused(Path::new("/dev/null")));
            v
        }),
        ("-o keyword", {
            let mut v = vec!["-o".into(), os(b"Local\xffForward=1 h:1")];
            v.extend(refused(Path::new("/dev/null")));
            v
        }),
        ("-o LocalForward", {
            let mut v = vec!["-o".into(), os(b"LocalForward=\xff h:1")];
            v.extend(refused(Path::new("/dev/null")));
            v
        }),
        ("-F path and contents", refused(&cfg)),
        ("command", {
            let mut v = refused(Path::new("/dev/null"));
            v.push(os(b"echo \xff\x01"));
            v
        }),
    ];
    for (what, words) in &cases {
        same_as_ssh(what, words, None);
        same_as_ssh(&format!("{what}, -L"), &with_forward(words), None);
    }
}

/// Writes `name` in `dir` with `body` (0644) and returns its path.
fn conf(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    p
}

#[test]
fn broken_configs_get_ssh_own_errors() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let dir = TempDir::new("badconf");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path().display().to_string();
    let self_loop = conf(
        dir.path(),
        "loop.conf",
        format!("Include {d}/loop.conf\nLocalForward 1234 h:1\n").as_bytes(),
    );
    conf(
        dir.path(),
        "ping.conf",
        format!("LocalForward 1235 h:1\nInclude {d}/pong.conf\n").as_bytes(),
    );
    let ping_pong = conf(
        dir.path(),
        "pong.conf",
        format!("Include {d}/ping.conf\n").as_bytes(),
    );
    let mut chain = conf(dir.path(), "c0.conf", b"LocalForward 1236 h:1\n");
    for n in 1..20 {
        chain = conf(
            dir.path(),
            &format!("c{n}.conf"),
            format!("Include {}\n", chain.display()).as_bytes(),
        );
    }
    let glob_loop = conf(
        dir.path(),
        "g-a.conf",
        format!("Include {d}/g-*.conf\nLocalForward 1237 h:1\n").as_bytes(),
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown keyword",
            b"Bogus yes\nLocalForward 1238 h:1\n".to_vec(),
        ),
        ("bad LocalForward", b"LocalForward nonsense\n".to_vec()),
        ("LocalForward without argument", b"LocalForward\n".to_vec()),
        ("unterminated quote", b"LocalForward \"1239 h:1\n".to_vec()),
        (
            "Host without pattern",
            b"Host\nLocalForward 1240 h:1\n".to_vec(),
        ),
        (
            "Match nonsense",
            b"Match frobnicate\nLocalForward 1241 h:1\n".to_vec(),
        ),
        (
            "Include without argument",
            b"Include\nLocalForward 1242 h:1\n".to_vec(),
        ),
        (
            "binary garbage",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        (
            "NUL mid-line",
            b"LocalForward 1243\0 h:1\nPort 1\n".to_vec(),
        ),
        (
            "CR only line ends",
            b"LocalForward 1244 h:1\rPort 1\r".to_vec(),
        ),
        ("a world-writable Include", {
            let w = conf(dir.path(), "ww.conf", b"LocalForward 1245 h:1\n");
            fs::set_permissions(&w, fs::Permissions::from_mode(0o666)).unwrap();
            format!("Include {}\n", w.display()).into_bytes()
        }),
        (
            "a directory Include",
            format!("Include {d}\nLocalForward 1246 h:1\n").into_bytes(),
        ),
    ];
    let mut cases: Vec<(String, PathBuf)> = vec![
        ("self Include".into(), self_loop),
        ("ping-pong Include".into(), ping_pong),
        ("20-deep Include chain".into(), chain),
        ("glob matching itself".into(), glob_loop),
        ("missing -F".into(), dir.path().join("missing.conf")),
        ("-F a directory".into(), dir.path().to_path_buf()),
    ];
    for (i, (what, body)) in bodies.iter().enumerate() {
        cases.push((
            what.to_string(),
            conf(dir.path(), &format!("b{i}.conf"), body),
        ));
    }
    for (what, f) in &cases {
        same_as_ssh(what, &refused(f), None);
        same_as_ssh(&format!("{what}, -L"), &with_forward(&refused(f)), None);
    }
}

#[test]
fn unreadable_configs_get_ssh_own_errors() {
    if !lab::require(lab::ssh()) {
        return;
    }
    // CI runs as root: there this is never skipped.
    if !nix::unistd::getuid().is_root() {
        lab::skip_or_fail("running as another user needs root");
        return;
    }
    let nobody = 65534;
    let dir = TempDir::new("unreadable");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let secret = conf(dir.path(), "secret.conf", b"LocalForward 1250 h:1\n");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let top = conf(
        dir.path(),
        "top.conf",
        format!("Port 1\nInclude {}\n", secret.display()).as_bytes(),
    );
    let glob = conf(
        dir.path(),
        "glob.conf",
        format!(
            "Include {}/secret*.conf\nLocalForward 1251 h:1\n",
            dir.path().display()
        )
        .as_bytes(),
    );
    for (what, f) in [
        ("unreadable -F", &secret),
        ("unreadable Include", &top),
        ("unreadable glob Include", &glob),
    ] {
        same_as_ssh(what, &refused(f), Some(nobody));
        same_as_ssh(
            &format!("{what}, -L"),
            &with_forward(&refused(f)),
            Some(nobody),
        );
    }
}

#[test]
fn a_missing_ssh_gets_a_clear_message() {
    let dir = TempDir::new("nossh");
    fs::write(dir.path().join("ssh"), b"not executable").unwrap();
    let cases: Vec<(&str, Vec<(&str, OsString)>)> = vec![
        (
            "ROSH_SSH=/nonexistent",
            vec![("ROSH_SSH", "/nonexistent".into())],
        ),
        (
            "ROSH_SSH a directory",
            vec![("ROSH_SSH", dir.path().into())],
        ),
        (
            "ROSH_SSH not executable",
            vec![("ROSH_SSH", dir.path().join("ssh").into())],
        ),
        ("PATH without ssh", vec![("PATH", dir.path().into())]),
        ("empty PATH", vec![("PATH", "".into())]),
    ];
    for (what, env) in &cases {
        for words in [&["h"][..], &["-L", "1234:h:1", "h"][..], &[][..]] {
            let scratch = Scratch::new();
            let mut c = Command::new(rosh_ssh());
            c.args(words).env_remove("ROSH_SSH");
            for (k, v) in env {
                c.env(k, v);
            }
            scratch.apply(&mut c);
            let r = run_bounded(&mut c, LIMIT);
            let err = text(&r.stderr);
            let what = format!("{what} {words:?}");
            assert_eq!(show(r.status), "exit 255", "{what}: {err}");
            assert!(err.starts_with("rosh-ssh: "), "{what}: {err}");
            assert_eq!(err.lines().count(), 1, "{what}: {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert!(err.contains("ssh"), "{what}: {err}");
            assert_eq!(
                scratch.leftovers(),
                Vec::<PathBuf>::new(),
                "{what}: leftovers"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load: many wrappers racing for one forward, and a soak.

/// Listening TCP sockets on `port`, IPv4 and IPv6, from /proc/net.
fn listeners(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|f| {
            fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
                })
                .count()
        })
        .sum()
}

#[test]
fn twenty_wrappers_race_for_one_forward_and_all_connect() {
    let Some(lab) = Lab::start() else { return };
    const N: usize = 20;
    let port = lab::free_port();
    let fwd = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    let scratch = Scratch::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut most, mut seen) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = listeners(port);
                most = most.max(n);
                seen += usize::from(n > 0);
                std::thread::sleep(Duration::from_millis(5));
            }
            (most, seen)
        })
    };
    let mut kids = Vec::new();
    for i in 0..N {
        let cmd = format!("sleep 2; echo run-{i}");
        let mut c = rosh(
            &lab,
            &scratch,
            &["-o", "ExitOnForwardFailure=yes", "-L", &fwd, &cmd],
        );
        kids.push(std::thread::spawn(move || {
            run_bounded(&mut c, Duration::from_secs(60))
        }));
    }
    let runs: Vec<Ran> = kids.into_iter().map(|k| k.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most, seen) = watcher.join().unwrap();
    let mut kept = 0;
    for (i, r) in runs.iter().enumerate() {
        let err = text(&r.stderr);
        assert_eq!(
            show(r.status),
            "exit 0",
            "run {i}: {err}\nsshd: {}",
            lab.sshd_log()
        );
        assert_eq!(text(&r.stdout), format!("run-{i}\n"), "run {i}: {err}");
        // Either it held the forward (silent), or it said once that it
        // dropped it, and then perhaps once that it got it back when the
        // run holding it ended.
        let dropped = format!("rosh-ssh: -L {fwd}: ");
        // Two ssh's that both bind the port (SO_REUSEADDR, neither
        // listening yet) race at listen(2): the loser's `listen ...` lines
        // (one from 8.9, two on 8.0) are replaced by rosh-ssh's line too.
        let lines: Vec<&str> = err.lines().collect();
        match lines.as_slice() {
            [] => kept += 1,
            [d, rest @ ..] if rest.len() <= 1 => {
                assert!(
                    d.starts_with(&dropped) && d.ends_with("; forward dropped"),
                    "run {i}: {err}"
                );
                if let [r] = rest {
                    assert_eq!(*r, format!("{dropped}restored"), "run {i}: {err}");
                }
            }
            _ => panic!("run {i}: {err}"),
        }
    }
    eprintln!("{kept} of {N} runs held the forward");
    assert!(kept >= 1, "no run held the forward");
    assert!(seen > 0, "the forward never listened");
    assert_eq!(most, 1, "more than one listener on {port} at once");
    assert_eq!(scratch.leftovers(), Vec::<PathBuf>::new(), "leftovers");
}

/// Processes of this lab: whatever names its directory on its command line (its sshd, and every
/// ssh and rosh-ssh run with its `-F`), and the sshd's children (one per connection). Other
/// tests run in parallel in this process, so its own children are not counted.
fn lab_processes(lab: &Lab, sshd: Option<u32>) -> Vec<u32> {
    let needle = lab.path().display().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let child_of_sshd = sshd.is_some() && stat(p).map(|s| s.0) == sshd;
        if text(&cmd).contains(&needle) || child_of_sshd {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `n` sequential connects, the forward's port held on every other one; counts before/after.
fn soak(n: usize) {
    let Some(lab) = Lab::start() else { return };
    let sshd = sshd_pid(&lab);
    assert!(sshd.is_some(), "the lab sshd not found");
    let scratch = Scratch::new();
    let port = lab::free_port();
    let fwd = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    // Let sshd settle (its first connection's children come and go).
    let warm = run_bounded(&mut rosh(&lab, &scratch, &["true"]), LIMIT);
    assert_eq!(show(warm.status), "exit 0", "{}", text(&warm.stderr));
    std::thread::sleep(Duration::from_millis(200));
    let sshd_fds = sshd.map(fd_count);
    let procs = lab_processes(&lab, sshd);
    let started = Instant::now();
    for i in 0..n {
        let held = if i % 2 == 1 {
            Some(TcpListener::bind(("127.0.0.1", port)).expect("hold the forward's port"))
        } else {
            None
        };
        let eoff = if i % 4 < 2 { "yes" } else { "no" };
        let e = format!("ExitOnForwardFailure={eoff}");
        let r = run_bounded(
            &mut rosh(&lab, &scratch, &["-o", &e, "-L", &fwd, "echo", "soak"]),
            LIMIT,
        );
        let err = text(&r.stderr);
        assert_eq!(show(r.status), "exit 0", "connect {i}: {err}");
        assert_eq!(text(&r.stdout), "soak\n", "connect {i}");
        assert_eq!(
            err.contains("forward dropped"),
            held.is_some(),
            "connect {i}: {err}"
        );
        assert_eq!(
            scratch.leftovers(),
            Vec::<PathBuf>::new(),
            "connect {i}: leftovers"
        );
        // Closing the held port is not the end of its listener: a process
        // another test thread is forking has a copy of the descriptor until
        // it execs (CLOEXEC acts at exec). The next connect expects it gone.
        if let Some(l) = held {
            drop(l);
            let deadline = Instant::now() + Duration::from_secs(5);
            while listeners(port) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let took = started.elapsed();
    // sshd's per-connection children may take a moment to go.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab_processes(&lab, sshd) != procs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lab_processes(&lab, sshd),
        procs,
        "processes after {n} connects"
    );
    assert_eq!(sshd.map(fd_count), sshd_fds, "sshd fds after {n} connects");
    eprintln!("soak: {n} connects in {took:?}");
}

/// The lab sshd's pid: the child of this process running with the lab's sshd_config.
fn sshd_pid(lab: &Lab) -> Option<u32> {
    let conf = lab.path().join("sshd_config");
    // sshd retitles itself ("sshd: ... [listener] ..."): find it by its config path.
    children(std::process::id())
        .into_iter()
        .find_map(|(p, _, _)| {
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            text(&cmd)
                .contains(&conf.display().to_string())
                .then_some(p)
        })
}

#[test]
fn soak_fifty_connects() {
    soak(50);
}

#[test]
#[ignore = "500 connects, minutes: cargo test --release --test faults -- --ignored"]
fn soak_five_hundred_connects() {
    soak(500);
}

/// Regression: ssh -G prints `-L P:socks:N` as `dynamicforward P` (readconf.c
/// dump_cfg_forwards), so a busy P is found and reported dropped, yet the `-L` that asks for it
/// must also leave the command line, or ssh binds P anyway.
#[test]
fn a_busy_forward_to_a_host_named_socks_leaves_the_command_line() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let held = lab::PortHolder::v4();
    let spec = format!("127.0.0.1:{}:socks:21", held.port);
    let scratch = Scratch::new();
    let mut c = Command::new(rosh_ssh());
    c.args(["--dry-run", "-F", "/dev/null", "-L", &spec, "h"])
        .env_remove("ROSH_SSH");
    scratch.apply(&mut c);
    let r = run_bounded(&mut c, LIMIT);
    let out = text(&r.stdout);
    assert_eq!(show(r.status), "exit 0", "{}", text(&r.stderr));
    assert!(out.contains("drop "), "{out}");
    assert_eq!(
        out.lines().next(),
        Some(format!("{} -F /dev/null h", lab::ssh()).as_str()),
        "{out}"
    );
}
