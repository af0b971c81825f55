//! install.sh into a temporary prefix: what it installs works, it edits no
//! rc file, it is idempotent, it fails early, and --uninstall leaves nothing.
mod lab;

use lab::TempDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FILES: [&str; 4] = [
    "bin/rosh-ssh",
    "share/rosh/rosh.sh",
    "share/rosh/rosh.fish",
    "lib/rosh/bin/ssh",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs install.sh with HOME in `home` (to see that no rc file is touched)
/// and its own cargo target dir (no fight over the lock of `cargo test`).
fn install(home: &Path, path: &str, args: &[&str]) -> Output {
    Command::new(repo().join("install.sh"))
        .args(args)
        .env("HOME", home)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", repo().join("target/install-test"))
        .stdin(Stdio::null())
        .output()
        .expect("run install.sh")
}

fn path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            all.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    all.sort();
    all
}

fn find(prog: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

#[test]
fn install_then_uninstall_leaves_nothing() {
    let dir = TempDir::new("install");
    let home = dir.path().join("home");
    let prefix = dir.path().join("prefix");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&prefix).unwrap();
    let p = prefix.to_str().unwrap();

    let out = install(&home, &path(), &["--prefix", p]);
    assert!(out.status.success(), "{}", text(&out));
    for f in FILES {
        assert!(prefix.join(f).exists(), "{f} missing: {}", text(&out));
    }
    let shim = fs::read_link(prefix.join("lib/rosh/bin/ssh")).unwrap();
    assert_eq!(shim, Path::new("../../../bin/rosh-ssh"));

    // It prints the lines to add, and adds none itself.
    let said = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!(". '{p}/share/rosh/rosh.sh'"),
        format!("source '{p}/share/rosh/rosh.fish'"),
        "alias ssh=rosh-ssh".to_string(),
        format!("PATH='{p}/lib/rosh/bin':$PATH"),
        format!("ProxyCommand '{p}/bin/rosh-ssh' --proxy %h %p"),
    ] {
        assert!(said.contains(&line), "no {line:?} in {}", text(&out));
    }
    assert!(
        tree(&home).is_empty(),
        "install.sh wrote into HOME: {:?}",
        tree(&home)
    );

    // Idempotent: a second run succeeds and installs the same files.
    let first = tree(&prefix);
    let again = install(&home, &path(), &["--prefix", p]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(tree(&prefix), first);

    // The function loads in each shell (rosh without arguments: usage, 2).
    for (shell, script) in [
        ("sh", format!(". '{p}/share/rosh/rosh.sh'; rosh")),
        ("bash", format!(". '{p}/share/rosh/rosh.sh'; rosh")),
        ("dash", format!(". '{p}/share/rosh/rosh.sh'; rosh")),
        ("zsh", format!(". '{p}/share/rosh/rosh.sh'; rosh")),
        ("ksh", format!(". '{p}/share/rosh/rosh.sh'; rosh")),
        ("fish", format!("source '{p}/share/rosh/rosh.fish'; rosh")),
    ] {
        if find(shell).is_none() && !lab::require(&format!("/usr/bin/{shell}")) {
            continue;
        }
        let out = Command::new(shell)
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{shell}: {}", text(&out));
        assert!(
            text(&out).contains("usage: rosh"),
            "{shell}: {}",
            text(&out)
        );
    }

    // The binary runs, and the shim reaches the real ssh. (Needs the real
    // rosh-ssh: `-V` is one of ssh's modes it hands over unchanged.)
    let v = Command::new(prefix.join("bin/rosh-ssh"))
        .arg("-V")
        .output()
        .unwrap();
    assert!(v.status.success(), "rosh-ssh -V: {}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("OpenSSH"),
        "{}",
        text(&v)
    );
    let shim_path = format!("{p}/lib/rosh/bin:{}", path());
    let v = Command::new("ssh")
        .arg("-V")
        .env("PATH", &shim_path)
        .output()
        .unwrap();
    assert!(v.status.success(), "ssh -V through the shim: {}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("OpenSSH"),
        "{}",
        text(&v)
    );

    let out = install(&home, &path(), &["--prefix", p, "--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree(&prefix).is_empty(), "left behind: {:?}", tree(&prefix));
    assert!(
        prefix.is_dir(),
        "the prefix itself existed before: it stays"
    );
}

#[test]
fn uninstall_keeps_what_others_put_there() {
    let dir = TempDir::new("install-keep");
    let prefix = dir.path().join("prefix");
    fs::create_dir_all(prefix.join("bin")).unwrap();
    fs::write(prefix.join("bin/other"), "x").unwrap();
    let p = prefix.to_str().unwrap();
    let out = install(dir.path(), &path(), &["--prefix", p]);
    assert!(out.status.success(), "{}", text(&out));
    let out = install(dir.path(), &path(), &["--prefix", p, "--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tree(&prefix), ["bin", "bin/other"]);
}

#[test]
fn fails_early_without_cargo_or_a_writable_prefix() {
    let dir = TempDir::new("install-fail");
    let prefix = dir.path().join("prefix");
    // PATH with the basic tools only: no cargo.
    let out = install(
        dir.path(),
        "/usr/bin:/bin",
        &["--prefix", prefix.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("need 'cargo'"), "{}", text(&out));
    assert!(
        !prefix.exists(),
        "created {} before failing",
        prefix.display()
    );

    // A prefix under a regular file cannot be created (root ignores modes).
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let bad = file.join("prefix");
    let out = install(dir.path(), &path(), &["--prefix", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cannot create"), "{}", text(&out));
}
