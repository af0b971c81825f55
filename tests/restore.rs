//! Forwards that come back by themselves: a dropped forward is put back into
//! the live connection once its port is free, through the connection's
//! control socket, with one `rosh-ssh: ...: restored` line.
mod lab;

use lab::{Lab, TempDir, rosh_ssh};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A holder process: python3 listening on 127.0.0.1:`port` (or a unix
/// socket path) until killed. Returns once it listens.
fn holder(dir: &Path, what: &str) -> Child {
    let ready = dir.join(format!("ready-{}", what.replace('/', "_")));
    let code = if what.starts_with('/') {
        format!(
            "import socket,time; s=socket.socket(socket.AF_UNIX); s.bind({what:?}); s.listen(); open({r:?},'w').close(); time.sleep(120)",
            r = ready.to_str().unwrap()
        )
    } else {
        format!(
            "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{what})); s.listen(); open({r:?},'w').close(); time.sleep(120)",
            r = ready.to_str().unwrap()
        )
    };
    let child = Command::new("python3")
        .args(["-c", &code])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    let start = Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "holder did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn end(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// rosh-ssh running `sleep 60` on the lab with `args`, stderr in a file.
struct Session {
    child: Child,
    err: std::path::PathBuf,
}

impl Session {
    fn start(lab: &Lab, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Session {
        let err = dir.join("stderr");
        let mut c = Command::new(rosh_ssh());
        c.args(lab.args())
            .args(args)
            .args(["sleep", "60"])
            .env_remove("ROSH_SSH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        Session {
            child: c.spawn().unwrap(),
            err,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits (bounded) until stderr holds `needle`.
    fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn end(mut self) -> String {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        self.stderr()
    }
}

/// Reads sshd's banner through the forward, trying until `limit`.
fn banner_within(lab: &Lab, port: u16, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        match lab.banner_through(port) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last)
}

#[test]
fn held_local_forward_comes_back_when_its_holder_exits() {
    let Some(lab) = Lab::start() else { return };
    let tmp = TempDir::new("restore-l");
    let port = lab::free_port();
    let h = holder(tmp.path(), &port.to_string());
    let l = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    let before = lab.logins();
    let s = Session::start(&lab, tmp.path(), &["-L", &l], &[]);
    assert!(
        s.wait_for("forward dropped", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    // Connected: the session is up before the holder goes.
    std::thread::sleep(Duration::from_millis(500));
    end(h);
    let through = banner_within(&lab, port, Duration::from_secs(10));
    let restored = s.wait_for("restored", Duration::from_secs(5));
    let err = s.end();
    assert!(through.is_ok(), "{through:?} {err}");
    assert!(restored, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("rosh-ssh:")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[1].ends_with(": restored"), "{err}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}

#[test]
fn no_restore_leaves_the_forward_dropped() {
    let Some(lab) = Lab::start() else { return };
    let tmp = TempDir::new("restore-off");
    let port = lab::free_port();
    let h = holder(tmp.path(), &port.to_string());
    let l = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    let s = Session::start(&lab, tmp.path(), &["-L", &l], &[("ROSH_RESTORE", "0")]);
    assert!(
        s.wait_for("forward dropped", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    end(h);
    // Free now, and nobody puts a listener there.
    std::thread::sleep(Duration::from_secs(2));
    let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let err = s.end();
    assert!(free, "{err}");
    assert!(!err.contains("restored"), "{err}");
}

#[test]
fn held_remote_forward_comes_back_when_the_server_side_frees() {
    let Some(lab) = Lab::start() else { return };
    let tmp = TempDir::new("restore-r");
    let port = lab::free_port();
    let h = holder(tmp.path(), &port.to_string());
    // The remote side is this machine: sshd can't bind 127.0.0.1:port.
    let r = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port);
    let before = lab.logins();
    let s = Session::start(&lab, tmp.path(), &["-o", "GatewayPorts=no", "-R", &r], &[]);
    assert!(
        s.wait_for("refused", Duration::from_secs(20)),
        "{}",
        s.stderr()
    );
    end(h);
    let through = banner_within(&lab, port, Duration::from_secs(40));
    let restored = s.wait_for("restored", Duration::from_secs(5));
    let err = s.end();
    assert!(through.is_ok(), "{through:?} {err}");
    assert!(restored, "{err}");
    assert_eq!(lab.logins() - before, 1, "{}", lab.sshd_log());
}
