//! The loopback sshd the benchmarks run against (examples/bench.rs and
//! examples/proxy_bench.rs).

use std::ffi::OsString;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
pub const SSH: &str = "/usr/bin/ssh";

/// A port the kernel picked on 127.0.0.1, free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A loopback sshd like tests/lab (which examples cannot include: it names
/// the test-only `CARGO_BIN_EXE_rosh-ssh`), cut to what the benches need:
/// killed and its directory removed on drop.
pub struct Lab {
    pub dir: PathBuf,
    pub port: u16,
    /// The client config: `Host lab` with the port, user and key.
    pub config: PathBuf,
    sshd: Child,
}

impl Lab {
    /// `tag` names its temp directory (`rosh-TAG-PID`).
    pub fn start(tag: &str) -> Result<Lab, String> {
        for tool in [SSHD, SSH] {
            if !Path::new(tool).exists() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let dir = std::env::temp_dir().join(format!("rosh-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for key in ["hostkey", "id"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !st.success() {
                return Err("ssh-keygen failed".into());
            }
        }
        fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
        let _ = fs::create_dir_all("/run/sshd");
        let user = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .map_err(|e| e.to_string())?;
        let d = dir.display();
        for _ in 0..5 {
            let port = free_port()?;
            // SHLVL=1: Debian's bash sources ~/.bashrc for a command run by
            // sshd only at shell level 1 (SSH_SOURCE_BASHRC); a user's rc
            // (pyenv init on the dev box: ~100 ms of its own, noisy) is
            // remote work both sides pay, and only widens the spread.
            fs::write(
                dir.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\n\
                     AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                     PidFile none\nPermitRootLogin yes\nAllowTcpForwarding yes\n\
                     PrintMotd no\nPrintLastLog no\nMaxStartups 100:30:200\nSetEnv SHLVL=1\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut sshd = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(dir.join("sshd_config"))
                .arg("-E")
                .arg(dir.join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{SSHD}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = sshd.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !up {
                let _ = sshd.kill();
                let _ = sshd.wait();
                continue;
            }
            let config = dir.join("config");
            fs::write(
                &config,
                format!(
                    "Host lab\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/id\n\
                     \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
                     \x20 BatchMode yes\n  LogLevel ERROR\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            return Ok(Lab {
                dir,
                port,
                config,
                sshd,
            });
        }
        Err("sshd did not come up".into())
    }

    /// `-F CONFIG lab`.
    pub fn args(&self, config: &Path) -> Vec<OsString> {
        vec!["-F".into(), config.into(), "lab".into()]
    }

    /// The lab config with `extra` in front of its `Host lab` block.
    pub fn config_with(&self, name: &str, extra: &str) -> Result<PathBuf, String> {
        let base = fs::read_to_string(&self.config).map_err(|e| e.to_string())?;
        let p = self.dir.join(name);
        fs::write(&p, format!("{extra}\n{base}")).map_err(|e| e.to_string())?;
        Ok(p)
    }
}

impl Lab {
    /// How many logins sshd has accepted so far (sshd logs them at INFO).
    #[allow(dead_code)]
    pub fn logins(&self) -> usize {
        fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey for ")
            .count()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
