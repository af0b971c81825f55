//! install.sh into a temporary prefix: what it installs works, it edits no
//! rc file, it is idempotent, it fails early, and --uninstall leaves nothing.
mod lab;

use lab::TempDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FILES: [&str; 14] = [
    "bin/rosh-ssh",
    "share/rosh/rosh.sh",
    "share/rosh/rosh.fish",
    "lib/rosh/bin/ssh",
    "share/man/man1/rosh-ssh.1",
    "share/man/man1/rosh.1",
    "share/bash-completion/completions/rosh-ssh",
    "share/bash-completion/completions/rosh",
    "share/zsh/site-functions/_rosh-ssh",
    "share/zsh/site-functions/_rosh",
    "share/fish/vendor_completions.d/rosh-ssh.fish",
    "share/fish/vendor_completions.d/rosh.fish",
    "share/doc/rosh-ssh/LICENSE-MIT",
    "share/doc/rosh-ssh/LICENSE-APACHE",
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
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert_eq!(
            fs::read(prefix.join("share/doc/rosh-ssh").join(f)).unwrap(),
            fs::read(repo().join(f)).unwrap(),
            "share/doc/rosh-ssh/{f} is not the licence text of the source"
        );
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
        // Where each shell's completion went, and the line it needs when
        // the prefix is not where that shell looks.
        format!("{p}/share/man/man1"),
        format!(". '{p}/share/bash-completion/completions/rosh-ssh'"),
        format!("fpath=('{p}/share/zsh/site-functions' $fpath)"),
        format!("set -p fish_complete_path '{p}/share/fish/vendor_completions.d'"),
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

    // The function loads in each shell (rosh without arguments: usage, 2),
    // with DIR/bin on PATH as the install's words say (it runs rosh-ssh).
    let with_bin = format!("{p}/bin:{}", path());
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
            .env("PATH", &with_bin)
            .env("XDG_RUNTIME_DIR", lab::runtime_dir(&home))
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

    installed_where_shells_look(&prefix, &home);

    let out = install(&home, &path(), &["--prefix", p, "--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree(&prefix).is_empty(), "left behind: {:?}", tree(&prefix));
    assert!(
        prefix.is_dir(),
        "the prefix itself existed before: it stays"
    );
}

/// Each shell finds the installed completion by its own lookup (given the
/// line install.sh prints), and man finds the pages from PATH.
fn installed_where_shells_look(prefix: &Path, home: &Path) {
    let p = prefix.display().to_string();
    let share = format!("{p}/share");
    let run = |cmd: &mut Command, what: &str| -> String {
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bc = "/usr/share/bash-completion/bash_completion";
    if lab::require("/usr/bin/bash") && lab::require(bc) {
        // bash-completion's lazy loader, looking in XDG_DATA_DIRS.
        let script = format!(
            ". {bc}; __load_completion rosh-ssh && __load_completion rosh; complete -p rosh-ssh rosh"
        );
        let out = run(
            Command::new("bash")
                .args(["--norc", "-c", &script])
                .env("XDG_DATA_DIRS", &share),
            "bash",
        );
        assert!(out.contains("-F _rosh_ssh rosh-ssh"), "{out}");
        assert!(out.contains("-F _rosh rosh"), "{out}");
    }
    if lab::require("/usr/bin/zsh") {
        let script = format!(
            "fpath=('{p}/share/zsh/site-functions' $fpath); autoload -Uz compinit; compinit -u -D; print -r -- $_comps[rosh-ssh] $_comps[rosh]"
        );
        let out = run(Command::new("zsh").args(["-f", "-c", &script]), "zsh");
        assert_eq!(out.trim(), "_rosh-ssh _rosh");
    }
    if lab::require("/usr/bin/fish") {
        let out = run(
            Command::new("fish")
                // fish loads a completion only for a command that exists.
                .args([
                    "-c",
                    &format!("source '{p}/share/rosh/rosh.fish'; complete -C 'rosh-ssh --dry'; complete -C 'rosh -'"),
                ])
                .env("PATH", format!("{p}/bin:{}", path()))
                .env("HOME", home)
                .env("XDG_RUNTIME_DIR", lab::runtime_dir(home))
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("XDG_DATA_HOME")
                .env("XDG_DATA_DIRS", &share),
            "fish",
        );
        assert!(out.contains("--dry-run"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("-V\t")), "{out}");
    }
    if lab::require("/usr/bin/man") {
        for page in ["rosh-ssh", "rosh"] {
            let out = run(
                Command::new("man")
                    .args(["-w", page])
                    .env("PATH", format!("{p}/bin:/usr/bin:/bin"))
                    .env_remove("MANPATH"),
                "man -w",
            );
            assert_eq!(out.trim(), format!("{p}/share/man/man1/{page}.1"));
        }
    }
}

#[test]
fn help_exits_0_and_a_bad_option_2() {
    let dir = TempDir::new("install-help");
    let out = install(dir.path(), &path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    for w in [
        "usage: ./install.sh",
        "--prefix DIR",
        "--uninstall",
        "--help",
    ] {
        assert!(said.contains(w), "no {w:?} in {}", text(&out));
    }
    let out = install(dir.path(), &path(), &["--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown option: --bogus"),
        "{}",
        text(&out)
    );
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
}

#[test]
fn uninstall_removes_a_prefix_it_created() {
    let dir = TempDir::new("install-new");
    let prefix = dir.path().join("new/prefix");
    fs::create_dir_all(dir.path().join("new")).unwrap();
    let p = prefix.to_str().unwrap();
    let out = install(dir.path(), &path(), &["--prefix", p]);
    assert!(out.status.success(), "{}", text(&out));
    let out = install(dir.path(), &path(), &["--prefix", p, "--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!prefix.exists(), "left {:?}", tree(&prefix));
    assert!(dir.path().join("new").is_dir(), "removed more than it made");
}

#[test]
fn default_prefix_is_where_bash_and_fish_look() {
    let dir = TempDir::new("install-default");
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let out = Command::new(repo().join("install.sh"))
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_DATA_DIRS")
        .env("CARGO_TARGET_DIR", repo().join("target/install-test"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    let local = home.join(".local");
    for line in [
        format!(
            "bash: {}/share/bash-completion/completions (bash-completion loads it by itself)",
            local.display()
        ),
        format!(
            "fish: {}/share/fish/vendor_completions.d (fish loads it by itself)",
            local.display()
        ),
        format!(
            "fpath=('{}/share/zsh/site-functions' $fpath)",
            local.display()
        ),
    ] {
        assert!(said.contains(&line), "no {line:?} in {}", text(&out));
    }
    // bash-completion's loader finds it in its user directory, unaided.
    let bc = "/usr/share/bash-completion/bash_completion";
    if lab::require("/usr/bin/bash") && lab::require(bc) {
        let out = Command::new("bash")
            .args([
                "--norc",
                "-c",
                &format!(". {bc}; __load_completion rosh-ssh; complete -p rosh-ssh"),
            ])
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("BASH_COMPLETION_USER_DIR")
            .output()
            .unwrap();
        assert!(
            text(&out).contains("-F _rosh_ssh rosh-ssh"),
            "{}",
            text(&out)
        );
    }
    let out = Command::new(repo().join("install.sh"))
        .arg("--uninstall")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree(&home).is_empty(), "left {:?}", tree(&home));
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
    // PATH with the basic tools only: no cargo. Not /usr/bin itself:
    // Debian's cargo-web (which the cross-check in .ci/run installs) puts a
    // cargo there.
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let tools = [
        "dirname", "cat", "mkdir", "rm", "cp", "chmod", "mv", "ln", "sort", "rmdir",
    ];
    for tool in tools {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {tool} in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let out = install(
        dir.path(),
        bin.to_str().unwrap(),
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
