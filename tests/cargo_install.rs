//! `cargo install --path .`, the README's third way in: into a temporary
//! root, reusing the release build that install.rs and deb.rs make (one
//! cargo target dir, so nothing is built twice), with the dependencies
//! cargo already has (`--offline`). It installs the binary and nothing
//! else, and the binary runs.
mod lab;

use lab::TempDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A cold release build takes about a minute on the 2-core CI machine; a
/// warm one, a second or two. Past this, the install is ended and fails.
const LIMIT: Duration = Duration::from_secs(900);

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                all.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    all.sort();
    all
}

#[test]
fn cargo_install_path_installs_a_binary_that_runs() {
    let dir = TempDir::new("cargo-install");
    let root = dir.path().join("root");
    let log = dir.path().join("cargo.log");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // One open file for both streams: each write lands at its end.
    let out = fs::File::create(&log).unwrap();
    let mut child = Command::new(cargo)
        .args(["install", "--offline", "--locked", "--path"])
        .arg(repo())
        .arg("--root")
        .arg(&root)
        .env("CARGO_TARGET_DIR", repo().join("target/install-test"))
        // The root given is the only place it writes to (cargo would add
        // CARGO_INSTALL_ROOT's or ~/.cargo/bin's otherwise).
        .env_remove("CARGO_INSTALL_ROOT")
        .stdin(Stdio::null())
        .stderr(out.try_clone().unwrap())
        .stdout(out)
        .spawn()
        .expect("run cargo install");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cargo install still running after {LIMIT:?}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "cargo install: {status}\n{said}");

    // The binary only: cargo's two records of what it installed beside it.
    assert_eq!(
        files(&root),
        [".crates.toml", ".crates2.json", "bin/rosh-ssh"],
        "{said}"
    );
    let out = Command::new(root.join("bin/rosh-ssh"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "rosh-ssh --version: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("rosh-ssh {}\n", env!("CARGO_PKG_VERSION"))
    );
}
