//! The Debian package round trip: pkg/build-deb.sh builds it, `dpkg -i`
//! installs it, man, the completions, the rosh function and the PATH shim
//! work from the system directories, and `dpkg -r` leaves the file system
//! as it found it. dpkg's database is global: one run at a time (a lock
//! file), and never over a rosh-ssh package someone else installed.
mod lab;

use lab::TempDir;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Locked with flock(2) for the round trip: a directory every Debian system
/// has, so the lock leaves no file behind (dpkg's own locks are fcntl locks
/// on files inside it: no interference).
const LOCK: &str = "/var/lib/dpkg";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Skips with a reason on a developer's machine; fails under CI.
fn cannot(why: &str) {
    if ci() {
        panic!("{why}, and CI is set");
    }
    eprintln!("skipping: {why}");
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "rosh-ssh"]));
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("installed")
        && !String::from_utf8_lossy(&out.stdout).contains("not-installed")
}

/// Holds the lock for the whole round trip; waits for it at most 10 minutes.
/// The open file holds the flock; closing it (on drop) releases it.
struct Lock(#[allow(dead_code)] fs::File);

impl Lock {
    fn take() -> Lock {
        let f = fs::File::open(LOCK).expect("open the lock directory");
        let deadline = Instant::now() + Duration::from_secs(600);
        while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            assert!(Instant::now() < deadline, "{LOCK}: held for 10 minutes");
            std::thread::sleep(Duration::from_millis(200));
        }
        Lock(f)
    }
}

/// Removes the package on the way out, also when an assertion failed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = run(Command::new("dpkg").args(["-r", "rosh-ssh"]));
        }
    }
}

/// The paths the package holds, absolute ("/usr/bin/rosh-ssh", ...).
fn contents(deb: &Path) -> Vec<String> {
    let out = ok(Command::new("sh")
        .args(["-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -t", "sh"])
        .arg(deb));
    out.lines()
        .map(|l| l.trim_start_matches('.').trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn package_installs_works_and_removes_cleanly() {
    for tool in ["/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/man"] {
        if !lab::require(tool) {
            return;
        }
    }
    if unsafe { libc::geteuid() } != 0 {
        return cannot("dpkg -i needs root");
    }
    let _lock = Lock::take();
    if installed() {
        return cannot(
            "a rosh-ssh package is installed on this machine; the test would replace it",
        );
    }

    let dir = TempDir::new("deb");
    let out = run(Command::new(repo().join("pkg/build-deb.sh"))
        .arg(dir.path())
        // The release build install.rs makes too: built once.
        .env("CARGO_TARGET_DIR", repo().join("target/install-test")));
    assert!(out.status.success(), "build-deb.sh: {}", text(&out));
    let debs: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];

    let paths = contents(deb);
    for want in [
        "/usr/bin/rosh-ssh",
        "/usr/lib/rosh/bin/ssh",
        "/usr/share/rosh/rosh.sh",
        "/usr/share/rosh/rosh.fish",
        "/usr/share/man/man1/rosh-ssh.1.gz",
        "/usr/share/man/man1/rosh.1.gz",
        "/usr/share/bash-completion/completions/rosh-ssh",
        "/usr/share/bash-completion/completions/rosh",
        "/usr/share/zsh/vendor-completions/_rosh-ssh",
        "/usr/share/zsh/vendor-completions/_rosh",
        "/usr/share/fish/vendor_completions.d/rosh-ssh.fish",
        "/usr/share/fish/vendor_completions.d/rosh.fish",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} not in the package: {paths:?}"
        );
    }
    let before: Vec<bool> = paths
        .iter()
        .map(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();

    let _installed = Installed;
    // Container images exclude /usr/share/man from every package
    // (path-exclude in /etc/dpkg/dpkg.cfg.d); the last matching option wins.
    ok(Command::new("dpkg")
        .args(["-i", "--path-include=/usr/share/man/man1/rosh*"])
        .arg(deb));
    assert!(installed());

    // man finds and renders the pages from the system man path.
    assert_eq!(
        ok(Command::new("man").args(["-w", "rosh-ssh"])).trim(),
        "/usr/share/man/man1/rosh-ssh.1.gz"
    );
    let page = ok(Command::new("man")
        .arg("rosh-ssh")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80"));
    assert!(
        page.contains("ProxyCommand rosh-ssh --proxy %h %p"),
        "{page}"
    );
    let page = ok(Command::new("man").arg("rosh").env("MANPAGER", "cat"));
    assert!(page.contains("tmux"), "{page}");

    // The shim is rosh-ssh, and reaches the real ssh.
    let shim_path = format!(
        "/usr/lib/rosh/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let v = ok(Command::new("ssh").arg("--version").env("PATH", &shim_path));
    assert!(
        v.contains("rosh-ssh"),
        "ssh --version through the shim: {v}"
    );
    let out = run(Command::new("ssh").arg("-V").env("PATH", &shim_path));
    assert!(
        out.status.success() && text(&out).contains("OpenSSH"),
        "{}",
        text(&out)
    );

    // The function loads from where the package put it.
    let out = run(Command::new("sh").args(["-c", ". /usr/share/rosh/rosh.sh; rosh"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Each shell finds the completions in its system directory by itself.
    let home = TempDir::new("deb-home");
    let bc = "/usr/share/bash-completion/bash_completion";
    if Path::new("/usr/bin/bash").exists() && lab::require(bc) {
        let out = ok(Command::new("bash")
            .args([
                "--norc",
                "-c",
                &format!(". {bc}; __load_completion rosh-ssh; complete -p rosh-ssh rosh"),
            ])
            .env("HOME", home.path())
            .env_remove("XDG_DATA_DIRS")
            .env_remove("BASH_COMPLETION_USER_DIR"));
        assert!(
            out.contains("-F _rosh_ssh rosh-ssh") && out.contains("-F _rosh rosh"),
            "{out}"
        );
    }
    if lab::require("/usr/bin/zsh") {
        let out = ok(Command::new("zsh")
            .args(["-f", "-c", "autoload -Uz compinit; compinit -u -D; print -r -- $_comps[rosh-ssh] $_comps[rosh]"])
            .env("HOME", home.path()));
        assert_eq!(out.trim(), "_rosh-ssh _rosh");
    }
    if lab::require("/usr/bin/fish") {
        let out = ok(Command::new("fish")
            .args(["-c", "source /usr/share/rosh/rosh.fish; complete -C 'rosh-ssh --dry'; complete -C 'rosh -'"])
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", lab::runtime_dir(home.path()))
            .env_remove("XDG_DATA_DIRS")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME"));
        assert!(out.contains("--dry-run"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("-V\t")), "{out}");
    }

    ok(Command::new("dpkg").args(["-r", "rosh-ssh"]));
    assert!(!installed(), "still installed after dpkg -r");
    let after: Vec<bool> = paths
        .iter()
        .map(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    let left: Vec<&String> = paths
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| b != a)
        .map(|(p, _)| p)
        .collect();
    assert!(left.is_empty(), "dpkg -r left: {left:?}");
}
