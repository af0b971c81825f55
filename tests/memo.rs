//! ssh -G's memo (memo.rs): a later call with the same words reuses ssh's
//! answer, and any change to what that answer is made from (a config file,
//! an included one, a new file an `Include` glob matches, a variable the
//! config reads) is seen at once. What the answer depends on beyond that
//! (`Match exec`, canonicalization) is never kept; a directory that is not
//! private, or an entry that does not read, only means asking ssh.
//! With the machine's ssh (Debian's: its system config is
//! /etc/ssh/ssh_config); `--dry-run --verbose` says where each answer came
//! from, and its keep/drop lines show which answer was used.
mod lab;

use lab::{PortHolder, TempDir, rosh_ssh};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SSH: &str = "/usr/bin/ssh";

/// A test's own memo directory (its `XDG_RUNTIME_DIR`) and config.
struct Setup {
    dir: TempDir,
    run: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(tag: &str, extra: &str) -> Option<Setup> {
        if !lab::require(SSH) {
            return None;
        }
        let dir = TempDir::new(tag);
        let run = lab::runtime_dir(dir.path());
        let config = dir.path().join("config");
        fs::write(&config, config_text(dir.path(), extra)).unwrap();
        Some(Setup { dir, run, config })
    }

    /// `rosh-ssh --verbose --dry-run -F CONFIG lab true` with `env`: the
    /// memo's line, and the keep/drop lines.
    fn dry(&self, env: &[(&str, &str)]) -> (String, Vec<String>) {
        self.dry_with(Path::new(SSH), env)
    }

    /// [`Setup::dry`] through the ssh `ssh`.
    fn dry_with(&self, ssh: &Path, env: &[(&str, &str)]) -> (String, Vec<String>) {
        let out = Command::new(rosh_ssh())
            .args(["--verbose", "--dry-run", "--ssh"])
            .arg(ssh)
            .arg("-F")
            .arg(&self.config)
            .args(["lab", "true"])
            .env("XDG_RUNTIME_DIR", &self.run)
            .env_remove("ROSH_SSH")
            .env_remove("ROSH_VERBOSE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        let memo: Vec<&str> = err.lines().filter(|l| l.contains("ssh -G")).collect();
        assert_eq!(memo.len(), 1, "{err}");
        let verdicts = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("keep ") || l.starts_with("drop "))
            .map(|l| l.split(" (").next().unwrap_or(l).to_string())
            .collect();
        (memo[0].to_string(), verdicts)
    }

    /// The answers kept (`g-` and a hash).
    fn entries(&self) -> Vec<PathBuf> {
        self.files().into_iter().filter(|p| !is_marker(p)).collect()
    }

    /// The ssh binaries found to read /etc/ssh/ssh_config (`g-ssh-`).
    fn markers(&self) -> Vec<PathBuf> {
        self.files().into_iter().filter(|p| is_marker(p)).collect()
    }

    fn files(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.run.join("rosh-ssh")) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn is_marker(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("g-ssh-"))
}

/// `Host lab` riding a control path in `dir`, with `extra` lines.
fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        "Host lab\n  HostName 127.0.0.1\n  ControlPath {}/cm-%C\n{extra}",
        dir.display()
    )
}

fn kept(line: &str) -> bool {
    line.contains("ssh -G: answer kept in ")
}

fn remembered(line: &str) -> bool {
    line.contains("ssh -G: the answer remembered in ")
}

#[test]
fn a_second_call_reuses_the_answer_and_a_changed_config_is_seen_at_once() {
    let held = PortHolder::v4();
    let free = lab::free_port();
    let Some(s) = Setup::new(
        "memo-config",
        &format!("  LocalForward 127.0.0.1:{} localhost:22\n", held.port),
    ) else {
        return;
    };
    let drop_held = vec![format!(
        "drop LocalForward 127.0.0.1:{} localhost:22",
        held.port
    )];
    let (m, v) = s.dry(&[]);
    assert!(kept(&m), "{m}");
    assert_eq!(v, drop_held);
    let (m, v) = s.dry(&[]);
    assert!(remembered(&m), "{m}");
    assert_eq!(v, drop_held);
    assert_eq!(s.entries().len(), 1, "{:?}", s.entries());
    // The binary was looked at once, and that is kept too.
    assert_eq!(s.markers().len(), 1, "{:?}", s.markers());

    // The file's bytes changed: ssh is asked again, and its new answer used.
    let text = config_text(
        s.dir.path(),
        &format!("  LocalForward 127.0.0.1:{free} localhost:22\n"),
    );
    fs::write(&s.config, text).unwrap();
    let (m, v) = s.dry(&[]);
    assert!(kept(&m), "{m}");
    assert_eq!(
        v,
        [format!("keep LocalForward 127.0.0.1:{free} localhost:22")]
    );
    let (m, _) = s.dry(&[]);
    assert!(remembered(&m), "{m}");

    // Only its mode changed: asked again (ssh checks owners and modes).
    fs::set_permissions(&s.config, fs::Permissions::from_mode(0o640)).unwrap();
    let (m, _) = s.dry(&[]);
    assert!(kept(&m), "{m}");
}

#[test]
fn an_included_file_and_a_new_match_of_an_include_glob_are_seen() {
    let held = PortHolder::v4();
    let Some(s) = Setup::new("memo-include", "") else {
        return;
    };
    let inc = s.dir.path().join("inc");
    fs::create_dir(&inc).unwrap();
    let text = config_text(
        s.dir.path(),
        &format!("  Include {}/*.conf\n", inc.display()),
    );
    fs::write(&s.config, text).unwrap();
    let (m, v) = s.dry(&[]);
    assert!(kept(&m), "{m}");
    assert!(v.is_empty(), "{v:?}");
    assert!(remembered(&s.dry(&[]).0));

    // A file appears where the glob looks.
    let forward = format!("LocalForward 127.0.0.1:{} localhost:22\n", held.port);
    fs::write(inc.join("a.conf"), &forward).unwrap();
    let (m, v) = s.dry(&[]);
    assert!(kept(&m), "{m}");
    let drop_held = format!("drop LocalForward 127.0.0.1:{} localhost:22", held.port);
    assert_eq!(v, [drop_held]);
    assert!(remembered(&s.dry(&[]).0));

    // The included file changes (same length: a comment of one byte).
    fs::write(inc.join("a.conf"), format!("#{}", &forward[1..])).unwrap();
    let (m, v) = s.dry(&[]);
    assert!(kept(&m), "{m}");
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn a_variable_the_config_reads_is_part_of_the_key() {
    // readconf.c parse_forward expands ${VAR} (8.4 on): the port comes from
    // the environment, so the same words mean another forward.
    let held = PortHolder::v4();
    let free = lab::free_port();
    let Some(s) = Setup::new(
        "memo-env",
        "  LocalForward 127.0.0.1:${ROSH_MEMO_TEST_PORT} localhost:22\n",
    ) else {
        return;
    };
    let spelled = "LocalForward 127.0.0.1:${ROSH_MEMO_TEST_PORT} localhost:22";
    let (h, f) = (held.port.to_string(), free.to_string());
    for (port, verdict, first) in [
        (&h, "drop", true),
        (&f, "keep", true),
        (&h, "drop", false),
        (&f, "keep", false),
    ] {
        let (m, v) = s.dry(&[("ROSH_MEMO_TEST_PORT", port)]);
        assert!(if first { kept(&m) } else { remembered(&m) }, "{port}: {m}");
        assert_eq!(v, [format!("{verdict} {spelled}")], "{port}");
    }
    assert_eq!(s.entries().len(), 2, "{:?}", s.entries());
}

#[test]
fn what_depends_on_more_than_the_key_is_never_kept() {
    let held = PortHolder::v4();
    let forward = format!("  LocalForward 127.0.0.1:{} localhost:22\n", held.port);
    for (extra, why) in [
        (
            "Match exec \"true\"\n  User someone\n",
            "a Match line has exec or localnetwork",
        ),
        (
            "  CanonicalizeHostname yes\n  CanonicalDomains invalid\n",
            "host name canonicalization asks the DNS",
        ),
        (
            "  ControlPath none\n",
            "no control path (a call that rides no master)",
        ),
    ] {
        // ssh takes the first ControlPath: the `none` goes first.
        let Some(s) = Setup::new("memo-never", "") else {
            return;
        };
        let text = if extra.contains("ControlPath") {
            format!("Host lab\n  HostName 127.0.0.1\n{extra}{forward}")
        } else {
            config_text(s.dir.path(), &format!("{forward}{extra}"))
        };
        fs::write(&s.config, text).unwrap();
        for _ in 0..2 {
            let (m, v) = s.dry(&[]);
            assert!(m.ends_with(&format!("answer not kept: {why}")), "{m}");
            assert_eq!(v.len(), 1, "{v:?}");
        }
        assert!(s.entries().is_empty(), "{why}: {:?}", s.entries());
    }
}

#[test]
fn a_directory_not_private_or_an_entry_that_does_not_read_means_asking_ssh() {
    let Some(s) = Setup::new("memo-trouble", "  LocalForward 127.0.0.1:1 localhost:22\n") else {
        return;
    };
    assert!(kept(&s.dry(&[]).0));
    let entry = s.entries().pop().unwrap();
    for bad in [
        &b""[..],
        b"rosh-ssh ssh -G memo 1\n",
        b"garbage\nhostname x\n",
    ] {
        fs::write(&entry, bad).unwrap();
        let (m, v) = s.dry(&[]);
        assert!(kept(&m), "{m}");
        assert_eq!(v, ["keep LocalForward 127.0.0.1:1 localhost:22"]);
    }
    assert!(remembered(&s.dry(&[]).0));
    // An entry of another user's (only root can put one there) is not read.
    if nix::unistd::geteuid().is_root() {
        let entry = s.entries().pop().unwrap();
        std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
        assert!(kept(&s.dry(&[]).0));
        assert!(remembered(&s.dry(&[]).0));
    }
    // Others may enter the directory: not used, and nothing fails.
    let d = s.run.join("rosh-ssh");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..2 {
        let (m, v) = s.dry(&[]);
        assert!(
            m.ends_with("answer not kept: no private directory for it"),
            "{m}"
        );
        assert_eq!(v, ["keep LocalForward 127.0.0.1:1 localhost:22"]);
    }
    // A symlink to a private directory is not one either.
    fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    fs::rename(&d, s.dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(s.dir.path().join("elsewhere"), &d).unwrap();
    let (m, _) = s.dry(&[]);
    assert!(
        m.ends_with("answer not kept: no private directory for it"),
        "{m}"
    );
}

#[test]
fn an_ssh_that_may_read_another_system_config_is_not_remembered() {
    // A script in front of ssh (or another build): its binary does not
    // name /etc/ssh/ssh_config alone, so what it reads is not known here.
    let Some(s) = Setup::new("memo-script", "  LocalForward 127.0.0.1:1 localhost:22\n") else {
        return;
    };
    let script = s.dir.path().join("ssh");
    fs::write(&script, format!("#!/bin/sh\nexec {SSH} \"$@\"\n")).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..2 {
        let (m, v) = s.dry_with(&script, &[]);
        assert!(
            m.ends_with(
                "answer not kept: this ssh reads a system config other than /etc/ssh/ssh_config"
            ),
            "{m}"
        );
        assert_eq!(v, ["keep LocalForward 127.0.0.1:1 localhost:22"]);
    }
    assert!(s.entries().is_empty(), "{:?}", s.entries());
    assert!(s.markers().is_empty(), "{:?}", s.markers());
    // The same config through the machine's ssh is remembered; through the
    // script, still not (another ssh: not its answer, nor its trust).
    assert!(kept(&s.dry(&[]).0));
    assert!(remembered(&s.dry(&[]).0));
    let (m, _) = s.dry_with(&script, &[]);
    assert!(m.contains("answer not kept: this ssh reads"), "{m}");
}

#[test]
fn the_memo_directory_is_made_only_where_it_is_ours() {
    let Some(s) = Setup::new("memo-where", "  LocalForward 127.0.0.1:1 localhost:22\n") else {
        return;
    };
    let at =
        |p: &Path| -> (String, Vec<String>) { s.dry(&[("XDG_RUNTIME_DIR", p.to_str().unwrap())]) };
    // A base that is missing (a fresh ~/.cache) is made, 0700, in a
    // directory of ours.
    let fresh = s.dir.path().join("fresh");
    assert!(kept(&at(&fresh).0));
    let mode = fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(remembered(&at(&fresh).0));
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    // Someone else's base, even one anybody may write to: nothing of ours
    // goes in it, and nothing is made below a parent of theirs.
    let theirs = s.dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let below = theirs.join("missing");
    for base in [&theirs, &below] {
        let (m, v) = at(base);
        assert!(
            m.ends_with("answer not kept: no private directory for it"),
            "{m}"
        );
        assert_eq!(v, ["keep LocalForward 127.0.0.1:1 localhost:22"]);
    }
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 0);
}
