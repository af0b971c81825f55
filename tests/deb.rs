//! The Debian package round trip: pkg/build-deb.sh builds it, `dpkg -i`
//! installs it, man, the completions, the rosh function and the PATH shim
//! work from the system directories, and `dpkg -r` leaves the file system
//! as it found it. dpkg's database is global: one run at a time (a lock
//! file), and never over a rosh-ssh package someone else installed.
//!
//! And the package as a packager sees it (no root needed): lintian finds no
//! error but the project's missing mail address and no warning, every tag
//! it reports is explained in the README, and the package carries
//! Cargo.toml's version, its copyright and CHANGELOG.md as changelog.gz.
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

/// Builds the package into `dir` with `env` added; returns its path.
fn build(dir: &Path, env: &[(&str, &str)]) -> PathBuf {
    let out = run(Command::new(repo().join("pkg/build-deb.sh"))
        .arg(dir)
        // The release build install.rs makes too: built once.
        .env("CARGO_TARGET_DIR", repo().join("target/install-test"))
        .env_remove("DEBFULLNAME")
        .env_remove("DEBEMAIL")
        .envs(env.iter().copied()));
    assert!(out.status.success(), "build-deb.sh: {}", text(&out));
    let debs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

/// One file of the package's data, as bytes.
fn member(deb: &Path, path: &str) -> Vec<u8> {
    let out = run(Command::new("sh")
        .args([
            "-c",
            "dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - \"$2\"",
            "sh",
        ])
        .arg(deb)
        .arg(format!(".{path}")));
    assert!(out.status.success(), "{path}: {}", text(&out));
    out.stdout
}

/// lintian's tags for `deb`, every severity but experimental: (letter, tag)
/// `--no-cfg` and `--profile debian`: no user's or vendor's settings.
fn lintian(deb: &Path) -> Vec<(char, String)> {
    // lintian 2.116 leaves its mldbm-elf-* files in TMPDIR: a private one.
    let tmp = TempDir::new("lintian");
    let out = run(Command::new("lintian")
        .env("TMPDIR", tmp.path())
        .args([
            "--no-cfg",
            "--profile",
            "debian",
            "--display-info",
            "--pedantic",
            "--fail-on",
            "none",
            "--tag-display-limit",
            "0",
        ])
        .arg(deb));
    assert!(out.status.success(), "lintian: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "E: rosh-ssh: tag-name details..." ("rosh-ssh binary:" too)
            let (sev, rest) = l.split_once(": ")?;
            if !matches!(sev, "E" | "W" | "I" | "P" | "X" | "O") {
                return None;
            }
            let (_, rest) = rest.split_once(": ")?;
            let tag = rest.split_whitespace().next()?;
            Some((sev.chars().next()?, tag.to_string()))
        })
        .collect()
}

/// The tags lintian may report as errors: the Maintainer and the changelog
/// trailer name the project at localhost, having no mail address.
const NO_MAIL_ADDRESS: &[&str] = &["bogus-mail-host", "bogus-mail-host-in-debian-changelog"];

#[test]
fn package_is_lintian_clean_and_carries_version_copyright_and_changelog() {
    for tool in ["/usr/bin/dpkg-deb", "/usr/bin/lintian"] {
        if !lab::require(tool) {
            return;
        }
    }
    let v = env!("CARGO_PKG_VERSION");
    let dir = TempDir::new("deb-lint");
    let deb = build(dir.path(), &[]);
    assert_eq!(
        deb.file_name().unwrap().to_string_lossy(),
        format!(
            "rosh-ssh_{v}_{}.deb",
            ok(Command::new("dpkg").arg("--print-architecture")).trim()
        )
    );
    assert_eq!(field_of(&deb, "Package"), "rosh-ssh");
    assert_eq!(field_of(&deb, "Version"), v, "the package's version");
    // dpkg -V's sums, one line per file.
    let sums = ok(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("md5sums"));
    assert!(sums.contains("  usr/bin/rosh-ssh\n"), "md5sums: {sums}");

    let copyright = member(&deb, "/usr/share/doc/rosh-ssh/copyright");
    assert_eq!(copyright, fs::read(repo().join("pkg/copyright")).unwrap());
    let gz = member(&deb, "/usr/share/doc/rosh-ssh/changelog.gz");
    let mut gunzip = Command::new("gunzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A changelog is a few kilobytes: it fits the pipe before gunzip reads.
    std::io::Write::write_all(&mut gunzip.stdin.take().unwrap(), &gz).unwrap();
    let changelog = String::from_utf8(gunzip.wait_with_output().unwrap().stdout).unwrap();
    assert!(
        changelog.starts_with(&format!("rosh-ssh ({v}) unstable; urgency=medium\n")),
        "{changelog}"
    );
    // Every release of CHANGELOG.md is an entry, and every item in it.
    let md = fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    for line in md.lines() {
        if let Some(rest) = line.strip_prefix("## [").and_then(|l| l.split_once("] - ")) {
            let head = format!("rosh-ssh ({}) unstable; urgency=medium", rest.0);
            assert!(changelog.contains(&head), "no {head:?} in:\n{changelog}");
        } else if let Some(item) = line.strip_prefix("- ") {
            assert!(
                changelog.contains(&format!("  * {item}\n")),
                "no {item:?} in:\n{changelog}"
            );
        }
    }

    // lintian: no error but the address, no warning; each tag it reports
    // (infos too) is one the README explains.
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let tags = lintian(&deb);
    for (sev, tag) in &tags {
        assert!(
            !matches!(sev, 'E' | 'W') || NO_MAIL_ADDRESS.contains(&tag.as_str()),
            "lintian: {sev}: {tag} (all: {tags:?})"
        );
        assert!(
            readme.contains(&format!("`{tag}`")),
            "lintian reports {tag}, which the README does not explain"
        );
    }
    assert!(
        tags.iter().any(|(_, t)| t == "bogus-mail-host"),
        "no bogus-mail-host for rosh-ssh@localhost: is lintian's output read? {tags:?}"
    );
    // With a packager's address, not even those.
    let dir = TempDir::new("deb-lint-mail");
    let deb = build(
        dir.path(),
        &[
            ("DEBFULLNAME", "A Packager"),
            ("DEBEMAIL", "packager@example.org"),
        ],
    );
    assert_eq!(
        field_of(&deb, "Maintainer"),
        "A Packager <packager@example.org>"
    );
    let tags = lintian(&deb);
    let bad: Vec<_> = tags
        .iter()
        .filter(|(s, _)| matches!(s, 'E' | 'W'))
        .collect();
    assert!(bad.is_empty(), "lintian with a real address: {bad:?}");
}

fn field_of(deb: &Path, f: &str) -> String {
    ok(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(f))
        .trim()
        .to_string()
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
    let deb = &build(dir.path(), &[]);

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
        "/usr/share/doc/rosh-ssh/copyright",
        "/usr/share/doc/rosh-ssh/changelog.gz",
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
    // The md5sums file: dpkg -V finds every installed file as packaged (a
    // '5' in the third column is a checksum that differs; a file a
    // path-exclude left out would be "missing", which this does not judge).
    let out = run(Command::new("dpkg").args(["-V", "rosh-ssh"]));
    let verify = String::from_utf8_lossy(&out.stdout);
    assert!(
        !verify.lines().any(|l| l.as_bytes().get(2) == Some(&b'5')),
        "dpkg -V rosh-ssh: {}",
        text(&out)
    );

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
