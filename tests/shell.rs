//! The rosh shell function end to end: a local tmux gives it a real
//! pseudo-terminal, each supported shell runs it against the sshd lab, and
//! the "remote" tmux is a private server on this machine.
//!
//! `rosh-ssh` on the function's PATH is the binary cargo built: a broken
//! wrapper (wrong exit status, forwards not dropped) fails these tests.
mod lab;
mod netlab;

use lab::{Lab, TempDir};
use netlab::{Net, Term, Tmux, kill9, unique, wait_for};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The absolute path of a program on PATH.
fn find(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Like `find` for a tool the tests need: when it is missing,
/// `lab::require` skips the test with a note, or fails it under CI.
fn which(prog: &str) -> Option<PathBuf> {
    let found = find(prog);
    if found.is_none() {
        lab::require(&format!("/usr/bin/{prog}"));
    }
    found
}

/// One shell under test: how to start it interactively without rc files,
/// and how its command lines spell what the test types.
struct Shell {
    name: &'static str,
    argv: Vec<String>,
    fish: bool,
}

impl Shell {
    fn new(name: &'static str) -> Option<Shell> {
        let path = which(name)?.display().to_string();
        let argv = match name {
            "bash" => vec![path, "--norc".into(), "--noprofile".into(), "-i".into()],
            "zsh" => vec![path, "-f".into(), "-i".into()],
            "fish" => vec![path, "--no-config".into(), "-i".into()],
            _ => vec![path, "-i".into()],
        };
        Some(Shell {
            name,
            argv,
            fish: name == "fish",
        })
    }
    fn source(&self) -> String {
        let dir = repo().join("shell");
        if self.fish {
            format!("source '{}'", dir.join("rosh.fish").display())
        } else {
            format!(". '{}'", dir.join("rosh.sh").display())
        }
    }
    fn status(&self) -> &'static str {
        if self.fish { "$status" } else { "$?" }
    }
}

/// Everything a scenario needs: the lab (whose sshd sets HOME and
/// TMUX_TMPDIR for the remote side), a local terminal running the shell with
/// rosh-ssh on PATH, the remote tmux, and rosh's stderr in a file.
struct Rig {
    term: Term,
    remote: Tmux,
    remote_sock: String,
    log: PathBuf,
    dir: TempDir,
    lab: Lab,
}

fn rig(shell: &Shell) -> Option<Rig> {
    rig_with(shell, None)
}

/// The rig, with the lab's sshd taken from `sshd` when given (another
/// OpenSSH release). The remote side's screen sockets are the test's own
/// (SCREENDIR).
fn rig_with(shell: &Shell, sshd: Option<&Path>) -> Option<Rig> {
    which("tmux")?;
    let dir = TempDir::new("shell");
    let home = dir.path().join("remote-home");
    let tmpdir = dir.path().join("tmux");
    let screendir = dir.path().join("screen");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&tmpdir).unwrap();
    fs::create_dir_all(&screendir).unwrap();
    fs::set_permissions(
        &screendir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // Sessions made by rosh must survive this.
    fs::write(home.join(".tmux.conf"), "set -g destroy-unattached on\n").unwrap();
    let env = format!(
        "SetEnv HOME={} TMUX_TMPDIR={} SCREENDIR={}",
        home.display(),
        tmpdir.display(),
        screendir.display()
    );
    let lab = match sshd {
        // An sshd of its own is the penalties test's (9.8+): penalties on,
        // as they are by default (the lab turns them off for the others).
        Some(bin) => Lab::start_sshd(bin, &format!("{env}\nPerSourcePenalties yes")),
        None => Lab::start_with(&env)?,
    };

    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lab::rosh_ssh(), bin.join("rosh-ssh")).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let local_home = dir.path().join("local-home");
    fs::create_dir_all(&local_home).unwrap();
    let env = [
        ("PATH", path),
        ("HOME", local_home.into()),
        ("XDG_RUNTIME_DIR", lab::runtime_dir(dir.path()).into()),
        ("SHELL", "/bin/sh".into()),
        ("PS1", "$ ".into()),
    ];
    let argv: Vec<&str> = shell.argv.iter().map(String::as_str).collect();
    let term = Term::start(dir.path(), "local.sock", &env, &argv);
    let remote_sock = unique("remote");
    let remote = Tmux {
        args: vec!["-L".into(), remote_sock.clone().into()],
        tmpdir,
    };
    let log = dir.path().join("rosh.log");
    // The shell is ready when it has run a command of ours.
    term.line(&shell.source());
    term.line("echo READY''X");
    let ready = wait_for(10, || term.screen().contains("READYX").then_some(()));
    assert!(
        ready.is_some(),
        "{} did not start: {}",
        shell.name,
        term.screen()
    );
    Some(Rig {
        term,
        remote,
        remote_sock,
        log,
        dir,
        lab,
    })
}

impl Rig {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn rosh(&self, shell: &Shell, opts: &str, session: &str) {
        let cmd = format!(
            "rosh {opts} -L {} -F '{}' lab {session} 2>>'{}'; echo ROSH-END-{}",
            self.remote_sock,
            self.lab.config().display(),
            self.log.display(),
            shell.status()
        );
        self.term.line(&cmd);
    }
    fn context(&self) -> String {
        format!(
            "\n--- rosh log:\n{}\n--- local screen:\n{}\n--- sshd log tail:\n{}",
            self.log(),
            self.term.screen(),
            self.lab
                .sshd_log()
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
    fn wait_log(&self, what: &str, count: usize, secs: u64) {
        let ok = wait_for(secs, || {
            (self.log().matches(what).count() >= count).then_some(())
        });
        assert!(
            ok.is_some(),
            "no {count}x {what:?} in time{}",
            self.context()
        );
    }
    /// The one attached remote client that is not in `old`.
    fn new_client(&self, old: &[i32]) -> i32 {
        let c = wait_for(15, || {
            self.remote.clients().into_iter().find(|c| !old.contains(c))
        });
        c.unwrap_or_else(|| panic!("no remote tmux client attached{}", self.context()))
    }
    /// Kills the sshd process serving `client` (its nearest sshd ancestor).
    fn kill_sshd_of(&self, client: i32) {
        let mut pid = client;
        for _ in 0..10 {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                break;
            };
            let ppid: i32 = tail
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if head.contains("(sshd") && pid != client {
                kill9(pid);
                return;
            }
            pid = ppid;
        }
        panic!("no sshd process above client {client}{}", self.context());
    }
    fn remote_screen(&self) -> String {
        self.remote
            .run(&["capture-pane", "-p", "-J"])
            .unwrap_or_default()
    }
    fn wait_remote(&self, what: &str) {
        let ok = wait_for(10, || self.remote_screen().contains(what).then_some(()));
        assert!(
            ok.is_some(),
            "remote pane never showed {what:?}:\n{}{}",
            self.remote_screen(),
            self.context()
        );
    }
    /// The status `echo ROSH-END-$?` printed after rosh returned, if on screen.
    fn end_status(&self) -> Option<String> {
        let s = self.term.screen();
        s.match_indices("ROSH-END-").find_map(|(i, m)| {
            let code: String = s[i + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!code.is_empty()).then_some(code)
        })
    }
    fn wait_end(&self) -> String {
        let end = wait_for(15, || self.end_status());
        end.unwrap_or_else(|| panic!("the rosh loop did not end{}", self.context()))
    }
    fn clear(&self) {
        self.term.line("clear");
        let ok = wait_for(10, || self.end_status().is_none().then_some(()));
        assert!(ok.is_some(), "clear{}", self.context());
    }
}

/// A session name that needs quoting at every step.
const NAME: &str = r#"it's "a" $x `y` ;z"#;

fn quoted_for(shell: &Shell, s: &str) -> String {
    if shell.fish {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What tmux itself stores for `name` when given it as one argv word.
fn tmux_name_of(name: &str, tmpdir: &Path) -> String {
    let oracle = Tmux {
        args: vec![
            "-L".into(),
            unique("oracle").into(),
            "-f".into(),
            "/dev/null".into(),
        ],
        tmpdir: tmpdir.to_path_buf(),
    };
    let st = oracle
        .cmd()
        .args(["new-session", "-d", "-s", name])
        .status()
        .unwrap();
    assert!(st.success());
    oracle
        .run(&["list-sessions", "-F", "#{session_name}"])
        .unwrap()
}

/// A listener on a free 127.0.0.1 port in a process of its own (rosh-ssh's
/// restorer waits for the holder to exit); its port.
fn holder_process() -> (std::process::Child, u16) {
    let mut c = Command::new("python3")
        .args([
            "-c",
            "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
             print(s.getsockname()[1], flush=True); time.sleep(120)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let port = lab::first_line(&mut c)
        .trim()
        .parse()
        .expect("the holder's port");
    (c, port)
}

fn scenario(name: &'static str) {
    let Some(shell) = Shell::new(name) else {
        return;
    };
    let Some(r) = rig(&shell) else { return };
    let tag = unique("v");

    // 1. Creates the session and attaches, the name intact; the forward
    // whose port is taken is dropped by rosh-ssh (ssh never tries it).
    let (mut holder, port) = holder_process();
    let forward = format!("-o 'LocalForward 127.0.0.1:{port} 127.0.0.1:9'");
    r.rosh(
        &shell,
        &format!("-I 1 -a 1 {forward}"),
        &quoted_for(&shell, NAME),
    );
    let c1 = r.new_client(&[]);
    r.wait_log("forward dropped", 1, 10);
    assert!(
        !r.log().contains("Address already in use"),
        "ssh was given the busy forward{}",
        r.context()
    );
    let names = r
        .remote
        .run(&["list-sessions", "-F", "#{session_name}"])
        .unwrap_or_default();
    assert_eq!(
        names,
        tmux_name_of(NAME, r.dir.path()),
        "session name{}",
        r.context()
    );
    let opt = r.remote.run(&["show-options", "-v", "destroy-unattached"]);
    assert_eq!(
        opt.as_deref(),
        Some("off\n"),
        "destroy-unattached{}",
        r.context()
    );

    // 2. State in the remote shell: a variable and a running counter.
    let counter = r.dir.path().join("counter");
    let stray = r.dir.path().join("stray");
    r.term.line(&format!(
        "V={tag}; (i=0; while echo $i 2>/dev/null >'{}'; do i=$((i+1)); sleep 0.1; done) &",
        counter.display()
    ));
    let count = || -> u64 {
        fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_for(10, || (count() > 0).then_some(())).is_some(),
        "counter{}",
        r.context()
    );

    // 2b. The holder ends: rosh-ssh puts the forward back into the live
    // connection, and says so once.
    let _ = holder.kill();
    let _ = holder.wait();
    r.wait_log("restored", 1, 30);

    // 3. The server side of the connection dies: rosh reconnects, state kept.
    r.kill_sshd_of(c1);
    r.wait_log("reconnecting...", 1, 15);
    let before = count();
    let c2 = r.new_client(&[c1]);
    r.term.line("echo V=$V");
    r.wait_remote(&format!("V={tag}"));
    assert!(
        wait_for(10, || (count() > before).then_some(())).is_some(),
        "counter stopped{}",
        r.context()
    );

    // 4. Keys typed while disconnected (a command and a ^D) are dropped.
    r.kill_sshd_of(c2);
    r.wait_log("reconnecting...", 2, 15);
    r.term.line(&format!("touch '{}'", stray.display()));
    r.term.keys(&["C-d"]);
    let c3 = r.new_client(&[c1, c2]);
    r.term.line("echo again=$V");
    r.wait_remote(&format!("again={tag}"));
    assert!(
        !stray.exists(),
        "a key typed while disconnected ran{}",
        r.context()
    );

    // 5. The remote tmux client killed by SIGKILL: OOM hint, then back.
    kill9(c3);
    r.wait_log("OOM killer", 1, 15);
    let _c4 = r.new_client(&[c1, c2, c3]);
    r.term.line("echo third=$V");
    r.wait_remote(&format!("third={tag}"));

    // The later attempts found the port free: nothing dropped or restored
    // again, nothing said twice.
    assert_eq!(
        (
            r.log().matches("forward dropped").count(),
            r.log().matches("restored").count()
        ),
        (1, 1),
        "{}",
        r.context()
    );

    // 6. Detach ends the loop, and says the session is still running.
    let id = r
        .remote
        .run(&["list-sessions", "-F", "#{session_id}"])
        .unwrap_or_default();
    r.remote.run(&["detach-client", "-s", id.trim()]);
    assert_eq!(r.wait_end(), "0", "exit status after detach{}", r.context());
    assert!(r.log().contains("detached; session"), "{}", r.context());
    assert!(
        r.remote.server_pid().is_some(),
        "session gone after detach{}",
        r.context()
    );

    // 7. Ctrl-C while waiting to reconnect ends the loop.
    r.clear();
    r.rosh(&shell, "-I 30 -a 1", &quoted_for(&shell, NAME));
    let c5 = wait_for(15, || r.remote.clients().first().copied()).expect("attach for Ctrl-C");
    r.kill_sshd_of(c5);
    r.wait_log("reconnecting...", 4, 15);
    r.term.keys(&["C-c"]);
    r.wait_end();
    assert!(
        r.remote.clients().is_empty(),
        "reconnected after Ctrl-C{}",
        r.context()
    );

    // 8. The remote shell exits: the loop ends and says the session is gone.
    r.clear();
    r.rosh(&shell, "-I 1 -a 1", "fresh");
    r.new_client(&[]);
    r.term.line("exit");
    assert_eq!(
        r.wait_end(),
        "0",
        "exit status after the shell exited{}",
        r.context()
    );
    assert!(
        r.log().contains("session 'fresh' is gone"),
        "{}",
        r.context()
    );
}

#[test]
fn rosh_in_bash() {
    scenario("bash");
}
#[test]
fn rosh_in_zsh() {
    scenario("zsh");
}
#[test]
fn rosh_in_dash() {
    scenario("dash");
}
#[test]
fn rosh_in_ksh() {
    scenario("ksh");
}
#[test]
fn rosh_in_fish() {
    scenario("fish");
}

/// Without a terminal: permanent errors end the loop at once, with ssh's
/// message and one line of rosh's; -V shows the command and the status.
fn fails_fast(name: &'static str) {
    let Some(shell) = Shell::new(name) else {
        return;
    };
    if which("tmux").is_none() {
        return;
    }
    let dir = TempDir::new("fail");
    // A remote PATH with sh and friends but no tmux.
    let rbin = dir.path().join("rbin");
    fs::create_dir_all(&rbin).unwrap();
    for tool in ["sh", "mktemp", "cat", "rm"] {
        let real = ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file());
        std::os::unix::fs::symlink(real.expect(tool), rbin.join(tool)).unwrap();
    }
    let Some(lab) = Lab::start_with(&format!("SetEnv PATH={}", rbin.display())) else {
        return;
    };
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lab::rosh_ssh(), bin.join("rosh-ssh")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let conf = lab.config().display().to_string();
    let cases = [
        (
            "-V -I 0 nosuchhost.invalid",
            255,
            "ssh could not set up the session",
        ),
        ("-I 0 -o Port=1 lab", 255, "Connection refused"),
        ("-I 0 lab", 127, "tmux not found"),
        ("-I x lab", 2, "rosh"),
    ];
    for (args, want, msg) in cases {
        let script = format!("{}; rosh -F '{conf}' {args}", shell.source());
        let mut argv = shell.argv.clone();
        argv.retain(|a| a != "-i");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("-c")
            .arg(&script)
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", lab::runtime_dir(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let done = wait_for(20, || child.try_wait().ok().flatten());
        if done.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(done.is_some(), "{name}: rosh {args} did not end: {err}");
        assert_eq!(out.status.code(), Some(want), "{name}: rosh {args}: {err}");
        assert!(
            err.contains(msg),
            "{name}: rosh {args}: no {msg:?} in {err}"
        );
        let ours = err.lines().filter(|l| l.starts_with("rosh: ")).count();
        if !args.starts_with("-V") {
            assert_eq!(
                ours, 1,
                "{name}: rosh {args}: one line of rosh's own: {err}"
            );
        }
        if args.starts_with("-V") {
            assert!(
                err.contains("rosh: + rosh-ssh "),
                "{name}: -V shows the command: {err}"
            );
            assert!(
                err.contains("ServerAliveCountMax=1"),
                "{name}: -V shows the command: {err}"
            );
            assert!(
                err.contains("rosh-ssh exited 255"),
                "{name}: -V shows the status: {err}"
            );
        }
    }
}

#[test]
fn fails_fast_in_bash() {
    fails_fast("bash");
}
#[test]
fn fails_fast_in_dash() {
    fails_fast("dash");
}
#[test]
fn fails_fast_in_zsh() {
    fails_fast("zsh");
}
#[test]
fn fails_fast_in_ksh() {
    fails_fast("ksh");
}
#[test]
fn fails_fast_in_fish() {
    fails_fast("fish");
}

/// The sh file stays POSIX: dash parses it, shellcheck -s sh finds nothing.
#[test]
fn rosh_sh_is_posix() {
    let f = repo().join("shell/rosh.sh");
    if find("dash").is_some() {
        let st = Command::new("dash").arg("-n").arg(&f).status().unwrap();
        assert!(st.success(), "dash -n");
    }
    if find("shellcheck").is_some() {
        let out = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if find("fish").is_some() {
        let st = Command::new("fish")
            .arg("-n")
            .arg(repo().join("shell/rosh.fish"))
            .status()
            .unwrap();
        assert!(st.success(), "fish -n");
    }
}

/// Issue 23: the function is a few lines (at most 25 of code, comments and
/// blank lines aside) in sh and in fish; the logic is rosh-ssh's.
#[test]
fn the_function_is_a_few_lines() {
    for f in ["shell/rosh.sh", "shell/rosh.fish"] {
        let text = fs::read_to_string(repo().join(f)).unwrap();
        let code = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert!(code <= 25, "{f}: {code} lines of code");
        assert!(text.contains("rosh-ssh --rosh"), "{f}");
    }
}

/// The loop across a link that really dies (tests/netlab: two network
/// namespaces, sshd in one, the terminal in the other, an nftables
/// blackhole between). Fields drop in order: terminals first, so nothing
/// runs inside a namespace when it is deleted.
struct NetRig {
    term: Term,
    other: Option<Term>,
    remote: Tmux,
    log: PathBuf,
    net: Net,
    dir: TempDir,
}

fn net_rig(shell: &Shell) -> Option<NetRig> {
    net_rig_with(shell, None)
}

/// `net_rig`, with the server's sshd taken from `sshd` when given.
fn net_rig_with(shell: &Shell, sshd: Option<&Path>) -> Option<NetRig> {
    which("tmux")?;
    if let Some(why) = netlab::unavailable() {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
            panic!("network namespace tests cannot run under CI: {why}");
        }
        eprintln!("skipping: {why}");
        return None;
    }
    let dir = TempDir::new("net");
    let home = dir.path().join("remote-home");
    let tmpdir = dir.path().join("tmux");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&tmpdir).unwrap();
    let env = format!("HOME={} TMUX_TMPDIR={}", home.display(), tmpdir.display());
    let net = match sshd {
        Some(bin) => Net::start_sshd(dir.path(), &env, bin),
        None => Net::start(dir.path(), &env),
    }
    .unwrap_or_else(|e| panic!("namespace lab: {e}"));
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lab::rosh_ssh(), bin.join("rosh-ssh")).unwrap();
    fs::create_dir_all(dir.path().join("local-home")).unwrap();
    let term = client_term(dir.path(), &net, shell, "local.sock");
    let remote = Tmux {
        args: vec!["-L".into(), unique("remote").into()],
        tmpdir,
    };
    Some(NetRig {
        term,
        other: None,
        remote,
        log: dir.path().join("rosh.log"),
        net,
        dir,
    })
}

/// A terminal on the client's side running `shell` with the rosh function
/// loaded and the rosh-ssh under test first on PATH; its tmux socket is
/// `sock` in `dir`.
fn client_term(dir: &Path, net: &Net, shell: &Shell, sock: &str) -> Term {
    let path = std::env::join_paths(
        std::iter::once(dir.join("bin")).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let env = [
        ("PATH", path),
        ("HOME", dir.join("local-home").into()),
        ("XDG_RUNTIME_DIR", lab::runtime_dir(dir).into()),
        ("SHELL", "/bin/sh".into()),
        ("PS1", "$ ".into()),
    ];
    let mut argv = net.in_client();
    argv.extend(shell.argv.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let term = Term::start(dir, sock, &env, &argv);
    term.line(&shell.source());
    term.line("echo READY''X");
    let ready = wait_for(10, || term.screen().contains("READYX").then_some(()));
    assert!(ready.is_some(), "{}: {}", shell.name, term.screen());
    term
}

impl NetRig {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn context(&self) -> String {
        format!(
            "\n--- rosh log:\n{}\n--- local screen:\n{}\n--- remote screen:\n{}\n--- sshd log tail:\n{}",
            self.log(),
            self.term.screen(),
            self.remote
                .run(&["capture-pane", "-p", "-J"])
                .unwrap_or_default(),
            self.net
                .sshd_log()
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
    fn new_client(&self, old: &[i32], secs: u64) -> i32 {
        let c = wait_for(secs, || {
            self.remote.clients().into_iter().find(|c| !old.contains(c))
        });
        c.unwrap_or_else(|| panic!("no new remote tmux client in {secs} s{}", self.context()))
    }
    fn wait_remote(&self, what: &str) {
        let ok = wait_for(10, || {
            self.remote
                .run(&["capture-pane", "-p", "-J"])
                .unwrap_or_default()
                .contains(what)
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "remote pane never showed {what:?}{}",
            self.context()
        );
    }

    /// One outage of `secs`: the loss noticed, keys typed meanwhile
    /// dropped, back within `bound` s of the link returning (generous: the
    /// bench has the times), state kept, the stale client of the previous
    /// connection detached and the other terminal's client kept.
    fn outage(
        &mut self,
        secs: u64,
        bound: u64,
        tag: &str,
        lost: usize,
        other: i32,
        old: &mut Vec<i32>,
    ) {
        let stale = *old.last().unwrap();
        let stray = self.dir.path().join(format!("stray-{secs}"));
        let dead = self.net.client_ports();
        assert!(!dead.is_empty(), "no connection to sshd{}", self.context());
        let start = std::time::Instant::now();
        self.net.block();
        let noticed = wait_for(secs + 15, || {
            (self.log().matches("connection to lab lost").count() >= lost).then_some(())
        });
        assert!(
            noticed.is_some(),
            "the loss was not noticed{}",
            self.context()
        );
        // The server never noticed: the old client is still attached.
        assert!(self.remote.clients().contains(&stale), "{}", self.context());
        self.term.line(&format!("touch '{}'", stray.display()));
        self.term.keys(&["C-d"]);
        if let Some(rest) = Duration::from_secs(secs).checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
        for &port in &dead {
            self.net.bury(port);
        }
        self.net.unblock();
        let c = self.new_client(&[old.as_slice(), &[other]].concat(), bound);
        old.push(c);
        self.term.line(&format!("echo after-{secs}=$V"));
        self.wait_remote(&format!("after-{secs}={tag}"));
        assert!(
            !stray.exists(),
            "a key typed during the outage ran{}",
            self.context()
        );
        let gone = wait_for(10, || {
            (!self.remote.clients().contains(&stale)).then_some(())
        });
        assert!(
            gone.is_some(),
            "stale client {stale} still attached{}",
            self.context()
        );
        assert!(
            self.remote.clients().contains(&other),
            "the other terminal's client was detached{}",
            self.context()
        );
    }
}

fn outages(name: &'static str, secs: &[u64]) {
    let Some(shell) = Shell::new(name) else {
        return;
    };
    let Some(mut r) = net_rig(&shell) else { return };
    let tag = unique("v");
    let sock = r.remote.args[1].to_string_lossy().into_owned();
    r.term.line(&format!(
        "rosh -V -I 1 -a 1 -L {sock} -F '{}' lab s1 2>>'{}'; echo ROSH-END-{}",
        r.net.config().display(),
        r.log.display(),
        shell.status()
    ));
    let c1 = r.new_client(&[], 20);
    r.term.line(&format!("V={tag}"));
    // A second terminal on the same session, not through this loop.
    let other_term = Term::start(
        r.dir.path(),
        "other.sock",
        &[("TMUX_TMPDIR", r.remote.tmpdir.clone().into())],
        &["tmux", "-L", &sock, "attach", "-t", "s1"],
    );
    r.other = Some(other_term);
    let other = r.new_client(&[c1], 10);
    let mut old = vec![c1];
    for (i, &s) in secs.iter().enumerate() {
        r.outage(s, 15, &tag, i + 1, other, &mut old);
    }
    // Detach: the loop ends with 0.
    let last = *old.last().unwrap();
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, last)]);
    let end = wait_for(15, || r.term.screen().contains("ROSH-END-0").then_some(()));
    assert!(
        end.is_some(),
        "the loop did not end after detach{}",
        r.context()
    );
}

fn tty_of(t: &Tmux, client: i32) -> String {
    t.run(&["list-clients", "-F", "#{client_pid} #{client_tty}"])
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (pid, tty) = l.split_once(' ')?;
            (pid == client.to_string()).then(|| tty.to_string())
        })
        .unwrap_or_default()
}

/// sh's loop: a short outage and a 90 s one, after which TCP's SYN backoff
/// alone would come back about a minute late.
#[test]
fn outages_in_bash() {
    outages("bash", &[10, 90]);
}
#[test]
fn outages_in_fish() {
    outages("fish", &[10]);
}

/// A copy of the netlab's client config whose `Host lab` has one
/// `RemoteForward PORT SERVER:22` per port: the server's 127.0.0.1:PORT
/// reaches the server's own sshd back through the client, so its banner
/// read there says the forward works (through a dead connection nothing
/// comes back).
fn forward_config(r: &NetRig, name: &str, ports: &[u16]) -> PathBuf {
    let mut text = fs::read_to_string(r.net.config()).unwrap();
    for p in ports {
        text.push_str(&format!("  RemoteForward {p} {}:22\n", netlab::SERVER_ADDR));
    }
    let path = r.dir.path().join(name);
    fs::write(&path, text).unwrap();
    path
}

/// The remote forward on `port` carries a connection: sshd's banner comes
/// back through it within `secs` seconds, tried once a second.
fn forward_works(r: &NetRig, port: u16, secs: u64) -> bool {
    wait_for(secs, || {
        r.net
            .read_on_server(port, 1)
            .starts_with("SSH-2.0")
            .then_some(())
    })
    .is_some()
}

/// The process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, t)| t.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// The process name of `pid` (its comm).
fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The laptop sleeps and wakes up on another address, in a loop whose
/// host has a RemoteForward; `env` is put before `rosh` on its command
/// line. The old connection's sshd (which held the forward), the new
/// one's, and the seconds the forward took to come back (None: not
/// within 10 s of the reattach).
fn roam(
    shell: &Shell,
    sshd: Option<&Path>,
    env: &str,
) -> Option<(NetRig, i32, Vec<i32>, Option<f64>)> {
    let mut r = net_rig_with(shell, sshd)?;
    const PORT: u16 = 18082;
    let cfg = forward_config(&r, "roam.config", &[PORT]);
    let sock = r.remote.args[1].to_string_lossy().into_owned();
    r.term.line(&format!(
        "{env} rosh -V -I 1 -a 1 -L {sock} -F '{}' lab s1 2>>'{}'; echo ROSH-END-{}",
        cfg.display(),
        r.log.display(),
        shell.status()
    ));
    let c1 = r.new_client(&[], 20);
    assert!(
        forward_works(&r, PORT, 10),
        "no forward at first{}",
        r.context()
    );
    let old = r.net.listeners(PORT);
    assert_eq!(old.len(), 1, "{old:?}{}", r.context());
    let old = old[0];
    // The listener is the session's sshd, the user's own process (9.8+:
    // sshd-session), not its monitor.
    let name = comm(old);
    assert!(name == "sshd" || name == "sshd-session", "{name}");
    eprintln!("the RemoteForward's listener: pid {old} ({name})");

    r.net.block();
    let noticed = wait_for(20, || {
        r.log().contains("connection to lab lost").then_some(())
    });
    assert!(noticed.is_some(), "the loss was not noticed{}", r.context());
    r.net.readdress();
    r.net.unblock();
    let c2 = r.new_client(&[c1], 20);
    let reattached = std::time::Instant::now();
    let back = forward_works(&r, PORT, 10).then(|| reattached.elapsed().as_secs_f64());
    let now = r.net.listeners(PORT);
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, c2)]);
    let end = wait_for(15, || r.term.screen().contains("ROSH-END-0").then_some(()));
    assert!(end.is_some(), "the loop did not end{}", r.context());
    Some((r, old, now, back))
}

/// Issue 26, 1, 2 and 4: the laptop sleeps and wakes up on another address.
/// The server never hears of it: the old connection's sshd lives on, with
/// the listener of the host's RemoteForward, until TCP gives up (about 15
/// minutes). On reattach the loop ends that sshd (its own previous
/// connection's), so the new connection's RemoteForward is back within
/// 10 s. `ROSH_TEST_SSHD` runs it against another sshd (9.8+: the session
/// process is sshd-session).
#[test]
fn after_roaming_the_remote_forward_is_back_within_10_s() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let sshd = std::env::var_os("ROSH_TEST_SSHD").map(PathBuf::from);
    let Some((r, old, now, back)) = roam(&shell, sshd.as_deref(), "") else {
        return;
    };
    let Some(secs) = back else {
        panic!(
            "RemoteForward not back 10 s after the reattach: held by {now:?}, \
             the old connection's sshd {old} (alive: {}){}",
            !gone(old),
            r.context()
        );
    };
    eprintln!("RemoteForward back {secs:.1} s after the reattach");
    assert!(gone(old), "old sshd {old} still runs{}", r.context());
    assert!(
        !now.is_empty() && !now.contains(&old),
        "{now:?}{}",
        r.context()
    );
}

/// Issue 26, 5: with `ROSH_END_SSHD=0` (rosh's `--keep-sshd`) the loop
/// leaves the old connection's sshd alone, and with it the forward.
#[test]
fn rosh_end_sshd_0_leaves_the_old_sshd_running() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some((r, old, now, back)) = roam(&shell, None, "ROSH_END_SSHD=0") else {
        return;
    };
    assert!(
        back.is_none() && now == [old],
        "{now:?} {old}{}",
        r.context()
    );
    assert!(!gone(old), "{}", r.context());
}

/// Issue 26, 1 and 4: another terminal's loop (same user, same host, its
/// own RemoteForward) keeps its connection's sshd and its forward while
/// this loop reattaches and ends its own previous connection's sshd.
#[test]
fn another_loops_sshd_and_forwards_are_kept() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some(mut r) = net_rig(&shell) else {
        return;
    };
    const MINE: u16 = 18082;
    const THEIRS: u16 = 18083;
    let sock = r.remote.args[1].to_string_lossy().into_owned();
    let line = |cfg: &Path, log: &Path| {
        format!(
            "rosh -V -I 1 -a 1 -L {sock} -F '{}' lab s1 2>>'{}'; echo ROSH-END-{}",
            cfg.display(),
            log.display(),
            shell.status()
        )
    };
    let mine = forward_config(&r, "mine.config", &[MINE]);
    r.term.line(&line(&mine, &r.log));
    let c1 = r.new_client(&[], 20);
    let my_ports = r.net.client_ports();
    let theirs = forward_config(&r, "theirs.config", &[THEIRS]);
    let their_log = r.dir.path().join("theirs.log");
    let other = client_term(r.dir.path(), &r.net, &shell, "other.sock");
    other.line(&line(&theirs, &their_log));
    r.other = Some(other);
    let o1 = r.new_client(&[c1], 20);
    assert!(forward_works(&r, MINE, 10), "{}", r.context());
    assert!(forward_works(&r, THEIRS, 10), "{}", r.context());
    let (my_sshd, their_sshd) = (r.net.listeners(MINE), r.net.listeners(THEIRS));
    assert!(my_sshd.len() == 1 && their_sshd.len() == 1 && my_sshd != their_sshd);

    // This loop's connection dies for good (its packets dropped, both
    // ways); the other's lives.
    for &p in &my_ports {
        r.net.bury(p);
    }
    let c2 = r.new_client(&[c1, o1], 30);
    assert!(forward_works(&r, MINE, 10), "mine not back{}", r.context());
    assert!(gone(my_sshd[0]), "{}", r.context());
    assert_eq!(r.net.listeners(THEIRS), their_sshd, "{}", r.context());
    assert!(!gone(their_sshd[0]));
    assert!(forward_works(&r, THEIRS, 5), "theirs lost{}", r.context());
    assert!(r.remote.clients().contains(&o1), "{}", r.context());
    let their = fs::read_to_string(&their_log).unwrap_or_default();
    assert!(!their.contains("lost"), "{their}{}", r.context());
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, c2)]);
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, o1)]);
}

/// The words of the `rosh: + rosh-ssh ...` line -V printed, as sh reads them.
fn printed_words(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("rosh: + rosh-ssh "))
        .unwrap_or_else(|| panic!("no command line under -V: {stderr}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -- {line}; printf '%s\\n' \"$@\""))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What ssh makes of the command rosh printed (its options and host; the
/// remote command left out), by `ssh -G`.
fn effective_of(words: &[String]) -> String {
    let dash = words
        .iter()
        .position(|w| w == "--")
        .expect("-- before host");
    let out = Command::new(lab::ssh())
        .arg("-G")
        .args(&words[..dash + 2])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh -G {words:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Options: ssh's own pass through (-p reaches the server, -o wins over
/// rosh's defaults, ssh_config's ServerAliveInterval too), a -L that looks
/// like a forward is refused with a hint, --help prints the usage.
fn options(name: &'static str) {
    let Some(shell) = Shell::new(name) else {
        return;
    };
    let dir = TempDir::new("opts");
    // A remote PATH without tmux: a session that started ends with 127.
    let rbin = dir.path().join("rbin");
    fs::create_dir_all(&rbin).unwrap();
    for tool in ["sh", "mktemp", "cat", "rm"] {
        let real = ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file());
        std::os::unix::fs::symlink(real.expect(tool), rbin.join(tool)).unwrap();
    }
    let Some(lab) = Lab::start_with(&format!("SetEnv PATH={}", rbin.display())) else {
        return;
    };
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lab::rosh_ssh(), bin.join("rosh-ssh")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The config's Port is wrong: only -p gets there.
    let wrong_port = lab.config_with("wrong-port", "Host lab\n  Port 1\n");
    let alive30 = lab.config_with("alive30", "Host lab\n  ServerAliveInterval 30\n");
    let rosh = |args: &str| {
        let script = format!("{}; rosh {args}", shell.source());
        let mut argv = shell.argv.clone();
        argv.retain(|a| a != "-i");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("-c")
            .arg(&script)
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", lab::runtime_dir(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let done = wait_for(20, || child.try_wait().ok().flatten());
        if done.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(done.is_some(), "{name}: rosh {args} did not end");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, _, err) = rosh(&format!(
        "-V -I 0 -o ServerAliveInterval=60 -p {} -F '{}' lab",
        lab.port,
        wrong_port.display()
    ));
    assert_eq!(code, Some(127), "{name}: -p reaches the server: {err}");
    let eff = effective_of(&printed_words(&err));
    assert!(eff.contains("\nserveraliveinterval 60\n"), "{name}: {err}");
    assert!(eff.contains(&format!("\nport {}\n", lab.port)), "{name}");
    // Where the user set nothing, rosh's default.
    assert!(eff.contains("\nserveralivecountmax 1\n"), "{name}: {err}");

    let (code, _, err) = rosh(&format!("-V -I 0 -F '{}' lab", alive30.display()));
    assert_eq!(code, Some(127), "{name}: {err}");
    let words = printed_words(&err);
    assert!(
        !words.iter().any(|w| w.starts_with("ServerAliveInterval")),
        "{name}: rosh's default beat ssh_config: {words:?}"
    );
    assert!(effective_of(&words).contains("\nserveraliveinterval 30\n"));

    let conns = || lab.sshd_log().matches("Connection from ").count();
    let before = conns();
    let (code, _, err) = rosh(&format!(
        "-L 8080:localhost:80 -F '{}' lab",
        lab.config().display()
    ));
    assert_eq!(code, Some(2), "{name}: -L with a forward: {err}");
    assert!(
        err.contains("not a forward") && err.contains("LocalForward"),
        "{name}: {err}"
    );
    // Refused before any connection (a search for "8080" in sshd's log
    // also found a client's port or a pid).
    assert_eq!(conns(), before, "{name}: -L connected");

    let (code, out, err) = rosh("--help");
    assert_eq!(code, Some(0), "{name}: --help: {err}");
    assert!(out.starts_with("usage: rosh "), "{name}: --help: {out}");
    assert!(out.contains("-p PORT"), "{name}: --help: {out}");
}

#[test]
fn options_in_bash() {
    options("bash");
}
#[test]
fn options_in_dash() {
    options("dash");
}
#[test]
fn options_in_zsh() {
    options("zsh");
}
#[test]
fn options_in_ksh() {
    options("ksh");
}
#[test]
fn options_in_fish() {
    options("fish");
}

/// The ssh processes (by pid) that descend from the local terminal's shell.
fn local_ssh(term: &Term) -> Vec<i32> {
    let pane: i32 = term
        .tmux
        .run(&["display-message", "-p", "#{pane_pid}"])
        .and_then(|s| s.trim().parse().ok())
        .expect("the local pane's pid");
    let parent = |pid: i32| -> Option<(String, i32)> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_string();
        Some((comm, tail.split_whitespace().nth(1)?.parse().ok()?))
    };
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if parent(pid).is_none_or(|(comm, _)| comm != "ssh") {
            continue;
        }
        let mut p = pid;
        for _ in 0..10 {
            match parent(p) {
                Some((_, pp)) if pp == pane => {
                    found.push(pid);
                    break;
                }
                Some((_, pp)) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    found
}

/// The local terminal's mode as `stty -a` prints it for a command the shell
/// runs, split into words.
fn stty_words(r: &Rig) -> Vec<String> {
    let out = r.dir.path().join(format!("stty-{}", unique("a")));
    r.term.line(&format!("stty -a >'{}'", out.display()));
    let text = wait_for(10, || {
        fs::read_to_string(&out)
            .ok()
            .filter(|t| t.contains("opost"))
    })
    .unwrap_or_else(|| panic!("no stty output{}", r.context()));
    text.split(|c: char| c.is_whitespace() || c == ';')
        .map(str::to_owned)
        .collect()
}

/// Issue 23, 1: an ssh killed by SIGKILL cannot put the terminal back; the
/// next ssh would take its raw mode for the terminal's own, and leave it so
/// after the detach. rosh saves the mode before the first attempt and puts
/// it back before each attempt and at the end.
#[test]
fn the_terminal_is_put_back_after_an_ssh_killed_by_sigkill() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some(r) = rig(&shell) else { return };
    let sane = stty_words(&r);
    for w in ["icanon", "echo", "opost"] {
        assert!(sane.iter().any(|x| x == w), "{w} before: {sane:?}");
    }
    r.clear();
    r.rosh(&shell, "-I 1 -a 1", "tty");
    let c1 = r.new_client(&[]);
    let ssh = wait_for(10, || {
        let v = local_ssh(&r.term);
        (v.len() == 1).then(|| v[0])
    })
    .unwrap_or_else(|| panic!("no local ssh{}", r.context()));
    kill9(ssh);
    let c2 = r.new_client(&[c1]);
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, c2)]);
    assert_eq!(r.wait_end(), "0", "{}", r.context());
    let after = stty_words(&r);
    for w in ["icanon", "echo", "opost", "isig", "icrnl"] {
        assert!(
            after.iter().any(|x| x == w),
            "the terminal was left with -{w}: {after:?}{}",
            r.context()
        );
    }
}

/// Issue 23, 2: `~.` ends rosh and the session lives on, at ssh's default
/// LogLevel and at the lab's LogLevel ERROR (where ssh prints nothing after
/// `~.`). A lost link still reconnects: the scenarios above kill the
/// server's side, the outage tests freeze the link.
#[test]
fn tilde_dot_ends_rosh_and_the_session_lives_on() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some(r) = rig(&shell) else { return };
    for (opts, session) in [
        ("-I 1 -a 1", "quiet"),
        ("-I 1 -a 1 -o LogLevel=INFO", "info"),
    ] {
        r.clear();
        r.rosh(&shell, opts, session);
        let c = r.new_client(&[]);
        r.term.line("echo ready-$((6*7))");
        r.wait_remote("ready-42");
        r.term.keys(&["Enter"]);
        let st = r
            .term
            .tmux
            .cmd()
            .args(["send-keys", "-l", "~."])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            r.wait_end(),
            "0",
            "rosh {opts}: exit after ~.{}",
            r.context()
        );
        assert!(r.log().contains("(~.)"), "{}", r.context());
        assert!(!r.log().contains("reconnecting"), "{}", r.context());
        assert!(
            r.remote.run(&["has-session", "-t", session]).is_some(),
            "session {session} gone after ~.{}",
            r.context()
        );
        assert!(!r.remote.clients().contains(&c));
        // Nothing of what rosh forced out reached the user.
        assert!(!r.log().contains("channel_free"), "{}", r.context());
    }
}

/// The digit a `echo TAG=$?` printed on `screen`, if it did.
fn answer(screen: &str, tag: &str) -> Option<char> {
    screen.match_indices(&format!("{tag}=")).find_map(|(i, m)| {
        screen[i + m.len()..]
            .chars()
            .next()
            .filter(char::is_ascii_digit)
    })
}

/// A local ssh-agent holding the lab's key, ended by pid on drop.
struct Agent {
    child: std::process::Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Option<Agent> {
        which("ssh-agent")?;
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent { child, sock };
        wait_for(10, || agent.sock.exists().then_some(())).expect("ssh-agent socket");
        let st = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.sock)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "ssh-add");
        Some(agent)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 23, 3: with -A, a shell that the session started on the first
/// connection still reaches the agent after a reattach: the session uses a
/// stable link that each connection repoints. tmux and screen.
#[test]
fn the_agent_survives_a_reattach() {
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some(r) = rig(&shell) else { return };
    let Some(_agent) = Agent::start(r.dir.path(), &r.lab.key()) else {
        return;
    };
    r.clear();
    r.term
        .line(&format!("export SSH_AUTH_SOCK='{}'", _agent.sock.display()));
    // tmux: the remote pane shows it.
    r.rosh(&shell, "-A -I 1 -a 1", "agent");
    let c1 = r.new_client(&[]);
    let probe = |tag: &str| format!("ssh-add -l >/dev/null 2>&1; echo {tag}=$?");
    r.term.line(&probe("agent-one"));
    r.wait_remote("agent-one=0");
    let ssh = wait_for(10, || local_ssh(&r.term).first().copied())
        .unwrap_or_else(|| panic!("no local ssh{}", r.context()));
    kill9(ssh);
    let c2 = r.new_client(&[c1]);
    r.term.line(&probe("agent-two"));
    let two = wait_for(10, || answer(&r.remote_screen(), "agent-two"));
    assert_eq!(two, Some('0'), "no agent after the reattach{}", r.context());
    r.remote
        .run(&["detach-client", "-t", &tty_of(&r.remote, c2)]);
    assert_eq!(r.wait_end(), "0", "{}", r.context());

    // screen: the local terminal shows the window.
    if which("screen").is_none() {
        return;
    }
    r.clear();
    let name = unique("scr");
    let cmd = format!(
        "rosh -S -A -I 1 -a 1 -F '{}' lab {name} 2>>'{}'; echo ROSH-END-$?",
        r.lab.config().display(),
        r.log.display()
    );
    let screendir = r.dir.path().join("screen");
    let screen = |args: &[&str]| {
        Command::new("screen")
            .args(args)
            .env("SCREENDIR", &screendir)
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    // Typed once the session runs: keys typed while ssh connects are dropped.
    let attached = |logins: usize| {
        let ok = wait_for(15, || {
            (r.lab.logins() >= logins
                && screen(&["-ls"])
                    .lines()
                    .any(|l| l.contains(&name) && l.contains("Attached")))
            .then_some(())
        });
        assert!(ok.is_some(), "screen not attached{}", r.context());
    };
    let logins = r.lab.logins();
    r.term.line(&cmd);
    attached(logins + 1);
    r.term.line(&probe("screen-one"));
    let one = wait_for(10, || answer(&r.term.screen(), "screen-one"));
    assert_eq!(one, Some('0'), "{}", r.context());
    let ssh = wait_for(10, || local_ssh(&r.term).first().copied()).expect("local ssh");
    kill9(ssh);
    r.wait_log("reconnecting", 2, 15);
    attached(logins + 2);
    r.term.line(&probe("screen-two"));
    let two = wait_for(10, || answer(&r.term.screen(), "screen-two"));
    screen(&["-S", &name, "-X", "quit"]);
    assert_eq!(
        two,
        Some('0'),
        "no agent in screen after the reattach{}",
        r.context()
    );
    r.wait_end();
}

/// Issue 23, 4: screen has no tmux socket to name: a usage error, 2, like
/// every other (rosh(1)), in every shell.
#[test]
fn screen_with_a_tmux_socket_is_a_usage_error() {
    for name in ["bash", "dash", "zsh", "ksh", "fish"] {
        let Some(shell) = Shell::new(name) else {
            continue;
        };
        let bin = TempDir::new("usage");
        std::os::unix::fs::symlink(lab::rosh_ssh(), bin.path().join("rosh-ssh")).unwrap();
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut argv = shell.argv.clone();
        argv.retain(|a| a != "-i");
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("-c")
            .arg(format!("{}; rosh -S -L foo host", shell.source()))
            .env("PATH", &path)
            .env("XDG_RUNTIME_DIR", lab::runtime_dir(bin.path()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("rosh: ") && err.contains("-L"),
            "{name}: {err}"
        );
    }
}

/// Issue 20, 7: the loop against an sshd with PerSourcePenalties (on by
/// default since OpenSSH 9.8; sshd_config(5): authfail 5 s, min 15 s).
/// `ROSH_TEST_SSHD` names that sshd (`../shared/tools/openssh 10.5p1`
/// builds one); without it the test says so and skips.
///
/// Reattaches never cost a penalty (sshd penalises only connections that
/// end before logging in). Refused keys do, 5 s each: the loop's own
/// retries, even with `-I 0`, never add up to the 15 s that make sshd refuse
/// the address. When other clients of the same address have made it refuse
/// (four refused logins in a row here), the loop sees the connection closed
/// before the greeting, says why, and waits past the penalty.
#[test]
fn the_loop_never_locks_itself_out_of_an_sshd_with_penalties() {
    let Some(sshd) = std::env::var_os("ROSH_TEST_SSHD").map(PathBuf::from) else {
        eprintln!("skipping: ROSH_TEST_SSHD names no sshd 9.8+ (../shared/tools/openssh 10.5p1)");
        return;
    };
    let Some(shell) = Shell::new("bash") else {
        return;
    };
    let Some(r) = rig_with(&shell, Some(&sshd)) else {
        return;
    };
    let penalised = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("activating") || l.contains(" active ") || l.contains("drop connection")
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    r.rosh(&shell, "-V -I 0 -a 1", "pen");
    let mut old = vec![r.new_client(&[])];
    // Reattach after reattach: no penalty.
    for _ in 0..4 {
        r.kill_sshd_of(*old.last().unwrap());
        let c = r.new_client(&old);
        old.push(c);
    }
    assert!(penalised(&r.lab.sshd_log()).is_empty(), "{}", r.context());

    // Refused keys: sshd counts a penalty for each, the loop backs off.
    let keys = r.lab.path().join("authorized_keys");
    let good = fs::read(&keys).unwrap();
    fs::write(&keys, b"").unwrap();
    r.kill_sshd_of(*old.last().unwrap());
    r.wait_log("answered but the session did not start", 4, 40);
    fs::write(&keys, &good).unwrap();
    let back = wait_for(40, || {
        r.remote.clients().into_iter().find(|c| !old.contains(c))
    });
    let back =
        back.unwrap_or_else(|| panic!("no reattach after the keys came back{}", r.context()));
    old.push(back);
    let log = r.lab.sshd_log();
    assert!(
        log.contains("deferred penalty"),
        "sshd counted no penalty: is {} 9.8 or newer?{}",
        sshd.display(),
        r.context()
    );
    assert!(
        penalised(&log).is_empty(),
        "the loop locked itself out: {:?}{}",
        penalised(&log),
        r.context()
    );

    // Other clients of this address make sshd refuse it: the loop waits
    // past the penalty, and says why.
    fs::write(&keys, b"").unwrap();
    for i in 0..8 {
        let st = Command::new(lab::ssh())
            .args(r.lab.args())
            .arg("true")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!st.success());
        // sshd counts the failure once its child has gone, a moment later;
        // four 5 s penalties are the first to exceed 15 s.
        if i >= 3 && wait_for(1, || r.lab.sshd_log().contains("activating").then_some(())).is_some()
        {
            break;
        }
    }
    let active = wait_for(10, || r.lab.sshd_log().contains("activating").then_some(()));
    assert!(active.is_some(), "no penalty in force{}", r.context());
    let start = std::time::Instant::now();
    r.kill_sshd_of(back);
    r.wait_log("PerSourcePenalties", 1, 20);
    fs::write(&keys, &good).unwrap();
    let again = wait_for(90, || {
        r.remote.clients().into_iter().find(|c| !old.contains(c))
    });
    assert!(
        again.is_some(),
        "no reattach after the penalty{}",
        r.context()
    );
    let dropped = penalised(&r.lab.sshd_log())
        .iter()
        .filter(|l| l.contains("drop connection"))
        .count();
    assert!(
        dropped <= 3,
        "{dropped} attempts refused in {:?}: the loop did not wait{}",
        start.elapsed(),
        r.context()
    );
}
