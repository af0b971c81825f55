//! A link that really dies: two network namespaces joined by a veth pair
//! (10.231.7.1 for the client, 10.231.7.2 for the server, in a /29 that
//! exists only inside them, so the client can come back on another address
//! as a roaming laptop does), a real sshd in the server's namespace, and an
//! nftables blackhole there that drops every packet of the link until
//! lifted. Plus the terminals the `rosh` tests and the reattach bench drive:
//! private tmux servers, ended by pid.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Namespace names carry
//! the process id and a counter; everything is deleted on drop, in an order
//! that leaves no process inside a namespace.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CLIENT_ADDR: &str = "10.231.7.1";
pub const SERVER_ADDR: &str = "10.231.7.2";
/// The client's address after [`Net::readdress`].
pub const ROAMED_ADDR: &str = "10.231.7.3";
/// The link's prefix length: room for [`ROAMED_ADDR`].
const PREFIX: u8 = 29;
pub const IP: &str = "/usr/sbin/ip";
pub const NFT: &str = "/usr/sbin/nft";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A name no other test of this process, nor another process, uses.
pub fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("rosh-{tag}-{}-{n}", std::process::id())
}

/// Polls `f` every 20 ms until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

fn run(args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut c = Command::new(args[0]);
    c.args(&args[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("{}: {e}", args[0]))?;
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why the namespace lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces need it; CI runs as root)".into());
    }
    for tool in [IP, NFT, "/usr/sbin/sshd"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

/// The two namespaces, the link, and sshd on the server's side.
pub struct Net {
    pub client_ns: String,
    pub server_ns: String,
    dir: PathBuf,
    sshd: Option<Child>,
    blocked: bool,
}

impl Net {
    /// Builds it all under `dir` (keys, configs, logs); `remote_env` is the
    /// `SetEnv` line's content for sessions (HOME=... TMUX_TMPDIR=...).
    pub fn start(dir: &Path, remote_env: &str) -> Result<Net, String> {
        Net::start_sshd(dir, remote_env, Path::new("/usr/sbin/sshd"))
    }

    /// `start`, with the sshd binary `sshd` (another OpenSSH release).
    pub fn start_sshd(dir: &Path, remote_env: &str, sshd: &Path) -> Result<Net, String> {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let mut net = Net {
            client_ns: unique("c"),
            server_ns: unique("s"),
            dir: dir.to_path_buf(),
            sshd: None,
            blocked: false,
        };
        let (c, s) = (net.client_ns.clone(), net.server_ns.clone());
        run(&[IP, "netns", "add", &c], None)?;
        run(&[IP, "netns", "add", &s], None)?;
        // The veth ends are made inside the namespaces: their names never
        // meet another test's.
        run(
            &[
                IP, "link", "add", "vc", "netns", &c, "type", "veth", "peer", "name", "vs",
                "netns", &s,
            ],
            None,
        )?;
        for (ns, dev, addr) in [(&c, "vc", CLIENT_ADDR), (&s, "vs", SERVER_ADDR)] {
            run(
                &[
                    IP,
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/{PREFIX}"),
                    "dev",
                    dev,
                ],
                None,
            )?;
            run(&[IP, "-n", ns, "link", "set", dev, "up"], None)?;
            run(&[IP, "-n", ns, "link", "set", "lo", "up"], None)?;
        }
        net.run_sshd(remote_env, sshd)?;
        Ok(net)
    }

    fn run_sshd(&mut self, remote_env: &str, bin: &Path) -> Result<(), String> {
        let d = self.dir.clone();
        for key in ["hostkey", "id"] {
            let _ = fs::remove_file(d.join(key));
            run(
                &[
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    d.join(key).to_str().unwrap(),
                ],
                None,
            )?;
        }
        fs::copy(d.join("id.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        let _ = fs::create_dir_all("/run/sshd");
        let conf = format!(
            "Port 22\nListenAddress {SERVER_ADDR}\nHostKey {d}/hostkey\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
             PidFile none\nPermitRootLogin yes\nPrintMotd no\nPrintLastLog no\n\
             LogLevel VERBOSE\nMaxStartups 100:30:200\nSetEnv {remote_env} SHLVL=1\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), conf).map_err(|e| e.to_string())?;
        let sshd = Command::new(IP)
            .args(["netns", "exec", &self.server_ns])
            .arg(bin)
            .args(["-D", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
        self.sshd = Some(sshd);
        let up = wait_for(10, || {
            self.sshd_log()
                .contains("Server listening on")
                .then_some(())
        });
        up.ok_or_else(|| format!("sshd did not start: {}", self.sshd_log()))?;
        let user = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .trim()
        .to_string();
        let client = format!(
            "Host lab\n  HostName {SERVER_ADDR}\n  User {user}\n  IdentityFile {d}/id\n\
             \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
             \x20 BatchMode yes\n  LogLevel ERROR\n",
            d = d.display()
        );
        fs::write(d.join("config"), client).map_err(|e| e.to_string())
    }

    /// The client config with `Host lab` (the server across the link).
    pub fn config(&self) -> PathBuf {
        self.dir.join("config")
    }

    pub fn sshd_log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// `ip netns exec CLIENT`: the words that run a command on the client's side.
    pub fn in_client(&self) -> Vec<String> {
        vec![
            IP.into(),
            "netns".into(),
            "exec".into(),
            self.client_ns.clone(),
        ]
    }

    /// Every packet of the link dropped in the server's namespace, both
    /// ways: nothing answers, no error comes back (a closed laptop lid).
    pub fn block(&mut self) {
        let rules = "table inet rosh {\n\
                     chain in { type filter hook input priority 0; iifname \"vs\" drop; }\n\
                     chain out { type filter hook output priority 0; oifname \"vs\" drop; }\n}\n";
        run(
            &[IP, "netns", "exec", &self.server_ns, NFT, "-f", "-"],
            Some(rules),
        )
        .expect("nft blackhole");
        self.blocked = true;
    }

    /// The client's ports of the TCP connections now open to sshd.
    pub fn client_ports(&self) -> Vec<u16> {
        let out = Command::new(IP)
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "ss",
                "-Htn",
                "state",
                "established",
            ])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter(|l| l.contains(&format!("{SERVER_ADDR}:22")))
            .filter_map(|l| {
                let local = l.split_whitespace().find(|w| w.starts_with(CLIENT_ADDR))?;
                local.rsplit_once(':')?.1.parse().ok()
            })
            .collect()
    }

    /// The connection from the client's `port` stays dead for good, as
    /// when a laptop comes back on another address: its FIN or RST never
    /// reaches the server, which keeps its sshd and tmux client.
    pub fn bury(&mut self, port: u16) {
        let rules = format!(
            "table inet rosh-old-{port} {{\n\
             chain in {{ type filter hook input priority 0; iifname \"vs\" tcp sport {port} drop; }}\n\
             chain out {{ type filter hook output priority 0; oifname \"vs\" tcp dport {port} drop; }}\n}}\n"
        );
        run(
            &[IP, "netns", "exec", &self.server_ns, NFT, "-f", "-"],
            Some(&rules),
        )
        .expect("nft bury");
    }

    /// The client comes back on [`ROAMED_ADDR`], as a laptop after sleep or
    /// on a new Wi-Fi: nothing answers the server at the old address any
    /// more, not even with an RST.
    pub fn readdress(&mut self) {
        for (verb, addr) in [("del", CLIENT_ADDR), ("add", ROAMED_ADDR)] {
            run(
                &[
                    IP,
                    "-n",
                    &self.client_ns,
                    "addr",
                    verb,
                    &format!("{addr}/{PREFIX}"),
                    "dev",
                    "vc",
                ],
                None,
            )
            .expect("ip addr");
        }
    }

    /// The pids of the processes listening on TCP `port` in the server's
    /// namespace (as root: every user's).
    pub fn listeners(&self, port: u16) -> Vec<i32> {
        let out = Command::new(IP)
            .args(["netns", "exec", &self.server_ns, "ss", "-Htlnp"])
            .arg(format!("sport = :{port}"))
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut pids: Vec<i32> = out
            .split("pid=")
            .skip(1)
            .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The first bytes a connection to 127.0.0.1:`port` on the server reads
    /// within `secs` (bounded by timeout(1)); empty when nothing came.
    pub fn read_on_server(&self, port: u16, secs: u64) -> String {
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && head -c 7 <&3");
        Command::new(IP)
            .args(["netns", "exec", &self.server_ns, "timeout"])
            .arg(secs.to_string())
            .args(["bash", "-c", &script])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn unblock(&mut self) {
        run(
            &[
                IP,
                "netns",
                "exec",
                &self.server_ns,
                NFT,
                "delete",
                "table",
                "inet",
                "rosh",
            ],
            None,
        )
        .expect("nft lift");
        self.blocked = false;
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.blocked {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.unblock()));
        }
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        // A session sshd whose connection was buried never sees it close,
        // and outlives its listener: whatever still runs inside the
        // namespaces this test made is its own, ended by pid.
        for ns in [&self.server_ns, &self.client_ns] {
            if let Ok(out) = Command::new(IP).args(["netns", "pids", ns]).output() {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .for_each(kill9);
            }
        }
        let _ = run(&[IP, "netns", "del", &self.client_ns], None);
        let _ = run(&[IP, "netns", "del", &self.server_ns], None);
    }
}

/// A tmux server of our own: `-S <dir>/sock` locally, or `-L <name>` for the
/// "remote" one (with TMUX_TMPDIR pointing into the test's dir). Dropping it
/// kills its server by pid.
pub struct Tmux {
    pub args: Vec<OsString>,
    pub tmpdir: PathBuf,
}

impl Tmux {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(&self.args)
            .env("TMUX_TMPDIR", &self.tmpdir)
            .env_remove("TMUX")
            .stdin(Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> Option<String> {
        let out = self.cmd().args(args).stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
    pub fn server_pid(&self) -> Option<i32> {
        self.run(&["list-sessions", "-F", "#{pid}"])?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
    pub fn clients(&self) -> Vec<i32> {
        self.run(&["list-clients", "-F", "#{client_pid}"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if let Some(pid) = self.server_pid() {
            kill9(pid);
        }
    }
}

/// A local terminal: a private tmux server whose one pane runs `shell`.
pub struct Term {
    pub tmux: Tmux,
}

impl Term {
    /// `sock` names the server's socket file inside `dir`.
    pub fn start(dir: &Path, sock: &str, env: &[(&str, OsString)], shell: &[&str]) -> Term {
        let tmux = Tmux {
            args: vec![
                "-S".into(),
                dir.join(sock).into(),
                "-f".into(),
                "/dev/null".into(),
            ],
            tmpdir: dir.to_path_buf(),
        };
        let mut c = tmux.cmd();
        c.args(["new-session", "-d", "-x", "160", "-y", "40", "--"])
            .args(shell);
        for (k, v) in env {
            c.env(k, v);
        }
        let st = c.env_remove("ENV").status().expect("run tmux");
        assert!(st.success(), "local tmux did not start");
        Term { tmux }
    }
    pub fn keys(&self, keys: &[&str]) {
        let st = self
            .tmux
            .cmd()
            .arg("send-keys")
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }
    /// Types `line` literally, then Enter.
    pub fn line(&self, line: &str) {
        let st = self
            .tmux
            .cmd()
            .args(["send-keys", "-l", line])
            .status()
            .unwrap();
        assert!(st.success());
        self.keys(&["Enter"]);
    }
    pub fn screen(&self) -> String {
        self.tmux
            .run(&["capture-pane", "-p", "-J"])
            .unwrap_or_default()
    }
}
