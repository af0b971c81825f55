//! The sshd lab: a real OpenSSH `sshd` on 127.0.0.1 with an ephemeral port
//! and keys made in a private temp dir, for integration tests to connect to.
//!
//! Use it from a test file with `mod lab;`. `Lab::start()` returns `None`
//! (after printing why) only when sshd is missing outside CI; under `CI=true`
//! a missing sshd fails the test instead of skipping it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The variable naming the OpenSSH under test: a bin directory holding
/// `ssh`, `ssh-keygen` and `sshd`, as `../shared/tools/openssh VERSION`
/// prints it. Unset: Debian's own (/usr/bin/ssh, /usr/sbin/sshd).
pub const OPENSSH_VAR: &str = "ROSH_TEST_OPENSSH";
/// Pins the lab's server to one sshd whatever the client (e.g. Debian's,
/// to tell a client difference from a server one).
pub const SSHD_VAR: &str = "ROSH_TEST_SSHD";

/// The OpenSSH the tests run: one place decides it for every test file.
/// The server follows the client release (a system ships both from one
/// release; tests/releases.sh runs the suites with each), unless
/// [`SSHD_VAR`] names another sshd, or the release's sshd cannot run here:
/// before 8.2 its seccomp sandbox lacks clock_nanosleep
/// (sandbox-seccomp-filter.c), which this glibc's sleep calls, and the
/// kernel kills sshd's pre-auth child at the first connection (audit type
/// 1326, syscall 230). Those releases' clients meet Debian's sshd.
pub struct OpenSsh {
    pub ssh: String,
    pub keygen: String,
    pub sshd: String,
    /// The client's release as `ssh -V` names it: (major, minor), e.g. (8, 0).
    pub release: (u32, u32),
    /// The server's release, from `sshd -V` (old ones print it in their usage).
    pub sshd_release: (u32, u32),
}

/// The first `OpenSSH_X.Y` in a `-V` answer.
fn release_in(text: &str) -> Option<(u32, u32)> {
    let v = &text[text.find("OpenSSH_")? + "OpenSSH_".len()..];
    let (major, rest) = v.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn version_of(prog: &str) -> (u32, u32) {
    let out = Command::new(prog)
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog} -V: {e}"));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    release_in(&text).unwrap_or_else(|| panic!("{prog} -V names no OpenSSH release: {text}"))
}

/// The OpenSSH under test (see [`OPENSSH_VAR`]). With a directory named,
/// rosh-ssh under test must find that ssh too: the first `ssh` on PATH must
/// be the directory's (tests/releases.sh puts it first), or every test
/// that runs rosh-ssh would compare another ssh with the one under test.
pub fn openssh() -> &'static OpenSsh {
    static IT: std::sync::OnceLock<OpenSsh> = std::sync::OnceLock::new();
    IT.get_or_init(|| {
        let dir = std::env::var_os(OPENSSH_VAR).filter(|d| !d.is_empty());
        let (ssh, keygen, sshd) = match &dir {
            None => (
                "/usr/bin/ssh".to_string(),
                "/usr/bin/ssh-keygen".to_string(),
                "/usr/sbin/sshd".to_string(),
            ),
            Some(d) => {
                let d = Path::new(d);
                let at = |n: &str| d.join(n).to_string_lossy().into_owned();
                (at("ssh"), at("ssh-keygen"), at("sshd"))
            }
        };
        let sshd = std::env::var(SSHD_VAR)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or(sshd);
        if dir.is_some() {
            let same = |a: &Path, b: &Path| match (fs::metadata(a), fs::metadata(b)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    (a.dev(), a.ino()) == (b.dev(), b.ino())
                }
                _ => false,
            };
            let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|p| p.join("ssh"))
                .find(|p| p.is_file());
            assert!(
                on_path.as_deref().is_some_and(|p| same(p, Path::new(&ssh))),
                "{OPENSSH_VAR} names {ssh}, but the first ssh on PATH is {on_path:?}: \
                 put its directory first on PATH too (tests/releases.sh does), so that \
                 rosh-ssh runs the ssh under test"
            );
        }
        let present = |p: &str| Path::new(p).exists();
        let release_of = |p: &str| if present(p) { version_of(p) } else { (0, 0) };
        let mut sshd = sshd;
        let mut sshd_release = release_of(&sshd);
        if sshd_release < (8, 2) && std::env::var_os(SSHD_VAR).is_none() && dir.is_some() {
            sshd = "/usr/sbin/sshd".to_string();
            sshd_release = release_of(&sshd);
        }
        OpenSsh {
            release: release_of(&ssh),
            sshd_release,
            ssh,
            keygen,
            sshd,
        }
    })
}

/// The ssh under test (see [`openssh`]).
pub fn ssh() -> &'static str {
    &openssh().ssh
}

/// The sshd the lab starts (see [`openssh`]).
pub fn sshd() -> &'static str {
    &openssh().sshd
}

/// The ssh-keygen of the release under test.
pub fn keygen() -> &'static str {
    &openssh().keygen
}

/// ssh's exit status when SIGTERM, SIGHUP or SIGINT ends it (clientloop.c
/// `if (received_signal)`): 255 from 8.6, 0 before (`cleanup_exit(0)`).
pub fn killed_by_signal_exit() -> i32 {
    if client_at_least(8, 6) { 255 } else { 0 }
}

/// Whether rosh-ssh can name a remote forward the server refused when the
/// client runs at LogLevel `level`: from 8.5 at every level (LogVerbose
/// forces ssh's line out); before, only where ssh prints its own `Warning:
/// remote port forwarding failed` line (ssh.c ssh_confirm_remote_forward:
/// logit, INFO and more verbose).
pub fn refusal_named_at(level: &str) -> bool {
    client_at_least(8, 5) || !matches!(level, "QUIET" | "FATAL" | "ERROR")
}

/// Whether rosh-ssh's line about a refused remote forward shows at
/// `level`: the refusal is seen ([`refusal_named_at`]), and rosh-ssh's
/// lines follow the LogLevel as ssh's own failure lines do (silent under
/// FATAL and QUIET).
pub fn refusal_line_at(level: &str) -> bool {
    refusal_named_at(level) && !matches!(level, "QUIET" | "FATAL")
}

/// Whether the client under test is `major.minor` or newer.
pub fn client_at_least(major: u32, minor: u32) -> bool {
    openssh().release >= (major, minor)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh private directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = base.join(format!("rosh-{tag}-{}-{n}-{nanos}", std::process::id()));
            match fs::create_dir(&p) {
                Ok(()) => return TempDir(p),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", p.display()),
            }
        }
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A process the test started may still write into the directory
        // while it goes (a remote shell's loop, a tmux server ending), and
        // remove_dir_all then fails on a directory no longer empty: try
        // again, for at most two seconds.
        for _ in 0..40 {
            match fs::remove_dir_all(&self.0) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Whether a missing tool must fail the test (CI) or skip it (a developer's machine).
/// A private runtime directory (0700) under `parent`, for the shells a test
/// starts: a fish without `XDG_RUNTIME_DIR` makes `$TMPDIR/fish.$USER` and
/// leaves it behind.
pub fn runtime_dir(parent: &Path) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let d = parent.join("run");
    if !d.is_dir() {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .expect("runtime dir");
    }
    d
}

pub fn require(tool: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("{tool} is missing and CI is set: .ci/run must install it");
    }
    eprintln!("skipping: {tool} not installed");
    false
}

fn wait_ready(sshd: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = sshd.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `ssh -G [-F file] host` with `HOME` set to `home` (None: inherited):
/// stdout lines, or stderr when ssh refuses the arguments or the config.
pub fn ssh_g(f: Option<&Path>, host: &str, home: Option<&Path>) -> Result<Vec<String>, String> {
    let mut c = Command::new(ssh());
    c.arg("-G");
    if let Some(f) = f {
        c.arg("-F").arg(f);
    }
    c.arg(host).stdin(Stdio::null());
    if let Some(h) = home {
        c.env("HOME", h);
    }
    let out = c.output().expect("run ssh -G");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The name of the user the tests run as (sshd logs in as this user).
pub fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A listener on 127.0.0.1 at a port the kernel picked and this test
/// process has not used before. Tests run in parallel threads: without the
/// record, a port one test took from [`free_port`] and released could be
/// the kernel's next pick for another test's holder, and the first test's
/// forward would find it busy (seen in the soak under load).
pub fn fresh_listener() -> TcpListener {
    static USED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        if USED.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return l;
        }
    }
}

/// Waits for `child` up to `limit`; past it, kills it (SIGKILL, by pid) and returns None.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first child of `parent` (the wrapper's ssh), waited for up to 5 s.
pub fn first_child(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next().and_then(|k| k.parse().ok()) {
            return k;
        }
        assert!(Instant::now() < deadline, "{parent} has no child");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until ssh `pid` sleeps in poll(2), seen twice 20 ms apart. OpenSSH before
/// 9.5 checks its quit flag and then calls poll() without the signal mask that ppoll() takes
/// (clientloop.c at V_9_2_P1; ppoll from 9.5): a SIGTERM, SIGHUP or SIGINT landing between the
/// two waits for the next packet, and a session that only sleeps sends none, so plain ssh
/// itself hangs. Just after the marker line ssh is still in that loop: tests signal a
/// session once ssh is parked. Past the bound (a kernel that hides wchan) they go on.
pub fn parked(pid: u32) {
    let in_poll =
        || fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("poll"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if in_poll() {
            std::thread::sleep(Duration::from_millis(20));
            if in_poll() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `extra` sshd_config lines with SHLVL=1 set for sessions. Debian's bash
/// sources ~/.bashrc for a command from sshd only at shell level 1, and the
/// machine's own rc is not under test (on the dev box, pyenv init: its
/// rehash races between concurrent sessions and prints `rm: cannot remove
/// ...`). sshd keeps only its first SetEnv line: the variable joins that
/// line when `extra` has one.
fn with_shlvl(extra: &str) -> String {
    let mut done = false;
    let mut lines: Vec<String> = extra
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with("SetEnv ") {
                done = true;
                format!("{l} SHLVL=1")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !done {
        lines.push("SetEnv SHLVL=1".into());
    }
    lines.join("\n")
}

/// sshd 9.8+ penalises a source address whose connections end before
/// authenticating (PerSourcePenalties, on by default: `noauth:1`, enforced
/// from 15 s accrued): every test that reads the banner through a forward
/// is such a connection, all from 127.0.0.1, so the lab turns penalties off
/// unless the test's own lines set them. Older servers reject the keyword.
fn penalties_line(extra: &str) -> &'static str {
    let own = extra.to_ascii_lowercase().contains("persourcepenalt");
    if openssh().sshd_release >= (9, 8) && !own {
        "PerSourcePenalties no\n"
    } else {
        ""
    }
}

/// A port that was free a moment ago on 127.0.0.1 (the kernel's pick), and
/// not handed out before in this process.
pub fn free_port() -> u16 {
    fresh_listener().local_addr().unwrap().port()
}

fn make_key(path: &Path) {
    let st = Command::new(keygen())
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen failed");
}

pub struct Lab {
    pub dir: TempDir,
    pub port: u16,
    pub user: String,
    sshd: Child,
}

impl Lab {
    /// Starts sshd on an ephemeral loopback port and waits until it accepts.
    pub fn start() -> Option<Lab> {
        Lab::start_with("")
    }

    /// Like `start`, with extra lines appended to sshd_config.
    pub fn start_with(extra: &str) -> Option<Lab> {
        if !require(sshd()) || !require(ssh()) {
            return None;
        }
        Some(Lab::start_sshd(Path::new(sshd()), extra))
    }

    /// Like `start_with`, with another sshd (another OpenSSH release).
    pub fn start_sshd(sshd_bin: &Path, extra: &str) -> Lab {
        let penalties = penalties_line(extra);
        let extra = with_shlvl(extra);
        let dir = TempDir::new("lab");
        let d = dir.path().to_path_buf();
        make_key(&d.join("hostkey"));
        make_key(&d.join("id"));
        fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        // sshd insists on its privilege separation directory when run as root.
        let _ = fs::create_dir_all("/run/sshd");
        let user = user_name();
        for _attempt in 0..5 {
            let port = free_port();
            let conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\n\
                 AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PidFile none\nPermitRootLogin yes\nAllowTcpForwarding yes\n\
                 AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n\
                 PrintMotd no\nPrintLastLog no\nLogLevel VERBOSE\n\
                 AcceptEnv ROSH_*\nMaxStartups 100:30:200\nMaxSessions 100\n{extra}\n{penalties}",
                d = d.display()
            );
            fs::write(d.join("sshd_config"), conf).unwrap();
            let sshd = Command::new(sshd_bin)
                .arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(d.join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            let mut sshd = sshd;
            if wait_ready(&mut sshd, port) {
                let lab = Lab {
                    dir,
                    port,
                    user,
                    sshd,
                };
                lab.write_client_config();
                return lab;
            }
            // Lost the port race, or sshd refused its config: try again.
            let _ = sshd.kill();
            let _ = sshd.wait();
            let log = fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            eprintln!("sshd did not come up on port {port}: {log}");
        }
        panic!("sshd did not start");
    }

    fn write_client_config(&self) {
        let d = self.dir.path();
        let conf = format!(
            "Host lab\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/id\n\
             \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
             \x20 BatchMode yes\n  LogLevel ERROR\n",
            port = self.port,
            user = self.user,
            d = d.display()
        );
        fs::write(d.join("config"), conf).unwrap();
    }

    /// The lab's private directory (keys, configs, logs).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The client config with `Host lab`, for `-F`.
    pub fn config(&self) -> PathBuf {
        self.path().join("config")
    }

    /// The client private key.
    pub fn key(&self) -> PathBuf {
        self.path().join("id")
    }

    /// `-F <config> lab`: the arguments that reach the lab with plain ssh.
    pub fn args(&self) -> Vec<OsString> {
        vec!["-F".into(), self.config().into(), "lab".into()]
    }

    /// Writes an extra client config file in the lab dir: the lab's `Host lab`
    /// block follows `extra`, so `extra` may hold Host blocks of its own.
    pub fn config_with(&self, name: &str, extra: &str) -> PathBuf {
        let base = fs::read_to_string(self.config()).unwrap();
        let p = self.path().join(name);
        let mut f = fs::File::create(&p).unwrap();
        write!(f, "{extra}\n{base}").unwrap();
        p
    }

    /// sshd's log so far (for assertion messages).
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(self.path().join("sshd.log")).unwrap_or_default()
    }

    /// How many logins sshd has accepted so far (sshd logs at VERBOSE).
    pub fn logins(&self) -> usize {
        self.sshd_log().matches("Accepted publickey for ").count()
    }

    /// Reads sshd's banner through `port` on 127.0.0.1: a forward to the lab
    /// carries a connection. Bounded: 5 s.
    pub fn banner_through(&self, port: u16) -> Result<String, String> {
        use std::io::Read;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let t = std::time::Duration::from_secs(5);
        let mut s = std::net::TcpStream::connect_timeout(&addr, t).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        if got.starts_with("SSH-2.0-") {
            Ok(got)
        } else {
            Err(format!("no banner: {got:?}"))
        }
    }

    /// Runs the real ssh with the lab's arguments followed by `rest`.
    pub fn ssh(&self, rest: &[&str]) -> Output {
        Command::new(ssh())
            .args(self.args())
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

/// Runs `cmd` with `input` on its stdin, written from a thread so that a
/// full pipe never deadlocks, and collects its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().expect("feeder");
    out
}

/// The first line a child writes on its piped stdout (which it takes).
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    let out = child.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read");
    line
}

/// ssh -G's memo directory (memo.rs), made in `XDG_RUNTIME_DIR` and kept
/// there on purpose: not a leftover of a run.
pub const MEMO_DIR: &str = "rosh-ssh";

/// The rosh-ssh binary cargo built for these tests.
pub fn rosh_ssh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rosh-ssh"))
}

/// Holds a TCP port on 127.0.0.1 (and ::1 when `both`) with a listening socket.
pub struct PortHolder {
    pub port: u16,
    _v4: TcpListener,
    _v6: Option<TcpListener>,
}

impl PortHolder {
    pub fn v4() -> PortHolder {
        let l = fresh_listener();
        PortHolder {
            port: l.local_addr().unwrap().port(),
            _v4: l,
            _v6: None,
        }
    }
    /// A port held on 127.0.0.1 and on ::1 (where there is IPv6): what a
    /// stale ssh holds, and what sshd can bind for no remote forward.
    pub fn both() -> PortHolder {
        loop {
            let v4 = fresh_listener();
            let port = v4.local_addr().unwrap().port();
            match TcpListener::bind(("::1", port)) {
                Ok(v6) => {
                    return PortHolder {
                        port,
                        _v4: v4,
                        _v6: Some(v6),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(_) => {
                    return PortHolder {
                        port,
                        _v4: v4,
                        _v6: None,
                    };
                }
            }
        }
    }
    pub fn at(port: u16) -> std::io::Result<PortHolder> {
        let l = TcpListener::bind(("127.0.0.1", port))?;
        Ok(PortHolder {
            port,
            _v4: l,
            _v6: None,
        })
    }
}

/// A private tmux server (its own socket, no user config) running one
/// command in a real terminal; ended by its pid on drop.
pub struct Tmux {
    pub socket: PathBuf,
}

impl Tmux {
    /// Starts `command` (run by sh) in a 200x50 window.
    pub fn start(dir: &Path, command: &str) -> Tmux {
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let out = t.cmd(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("ROSH_SSH")
            .output()
            .expect("tmux")
    }

    /// What the pane shows, with its history.
    pub fn pane(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-S", "-200"]).stdout)
            .into_owned()
    }

    /// Waits (bounded by `limit`) until the pane shows `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.pane().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let out = self.cmd(&["display-message", "-p", "#{pid}"]);
        if let Ok(pid) = String::from_utf8_lossy(&out.stdout).trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// Whether the tests run under CI, where nothing may skip in silence.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A skip outside CI (printed), a failure under CI: `.ci/run` must provide
/// what `why` names.
pub fn skip_or_fail(why: &str) {
    if ci() {
        panic!("{why}, and CI is set: .ci/run must provide it");
    }
    eprintln!("skipping: {why}");
}

/// Set by `.ci/run` when it could not enable IPv6 on loopback (it says so):
/// the ::1 tests then skip with a note, under CI too.
pub const NO_IPV6_VAR: &str = "ROSH_TEST_NO_IPV6";

/// Whether ::1 can be bound here; under CI its absence fails the test
/// unless `.ci/run` declared it (see [`NO_IPV6_VAR`]).
pub fn ipv6_loopback() -> bool {
    if TcpListener::bind("[::1]:0").is_ok() {
        return true;
    }
    if std::env::var_os(NO_IPV6_VAR).is_some_and(|v| v == "1") {
        eprintln!("skipping: no IPv6 on loopback ({NO_IPV6_VAR}=1)");
    } else {
        skip_or_fail("no IPv6 on loopback");
    }
    false
}
