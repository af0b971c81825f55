//! Completion for rosh-ssh and rosh, driven through each shell's own
//! completion machinery: bash (bash-completion, `complete -p`, the function
//! called with COMP_WORDS), zsh (compinit on a pty, the candidates its
//! compadd receives) and fish (`complete -C`). rosh-ssh must complete as ssh
//! does; rosh completes its options, then a host from ~/.ssh/config, then
//! nothing.
mod lab;

use lab::TempDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BASH_COMPLETION: &str = "/usr/share/bash-completion/bash_completion";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A HOME whose ~/.ssh/config names two hosts no other source knows.
fn home() -> TempDir {
    let dir = TempDir::new("complete");
    fs::create_dir_all(dir.path().join(".ssh")).unwrap();
    fs::write(
        dir.path().join(".ssh/config"),
        "Host alpha-one\n  HostName 127.0.0.1\nHost beta-two\n  HostName 127.0.0.1\n",
    )
    .unwrap();
    dir
}

fn lines(out: std::process::Output, what: &str) -> Vec<String> {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The words readline gives a completion function for `line`: split at
/// blanks, and `=` and `:` (in bash's COMP_WORDBREAKS) words of their own.
/// A trailing blank starts an empty word.
fn comp_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    for w in line.split_whitespace() {
        let mut cur = String::new();
        for c in w.chars() {
            if c == '=' || c == ':' {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                words.push(c.to_string());
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() {
            words.push(cur);
        }
    }
    if line.ends_with(' ') {
        words.push(String::new());
    }
    words
}

/// The candidates bash offers for `line` (cursor at its end; a trailing
/// space starts a new empty word): the function `complete -p` names for the
/// command, called with COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT.
fn bash(home: &Path, setup: &str, line: &str) -> Vec<String> {
    let script = format!(
        r#". {BASH_COMPLETION}
{setup}
line=$1
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMP_LINE=$line COMP_POINT=${{#line}}
spec=$(complete -p "${{COMP_WORDS[0]}}" 2>/dev/null) || __load_completion "${{COMP_WORDS[0]}}"
spec=$(complete -p "${{COMP_WORDS[0]}}") || exit 3
fn=${{spec#*-F }}; fn=${{fn%% *}}
COMPREPLY=()
"$fn" "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}" 2>/dev/null
printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script, "bash", line])
        .args(comp_words(line))
        .env("HOME", home)
        .env_remove("BASH_COMPLETION_USER_DIR")
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    lines(out, &format!("bash {line:?}"))
}

/// The candidates zsh's completion system offers for `line`, with `fpath_dir`
/// first on fpath and `setup` run first.
fn zsh(home: &Path, fpath_dir: &Path, setup: &str, line: &str) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["30", "zsh", "-f"])
        .arg(repo().join("tests/complete/zsh-complete.zsh"))
        .arg(fpath_dir)
        .args([setup, line])
        .env("HOME", home)
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    lines(out, &format!("zsh {line:?}"))
}

/// The candidates fish offers for `line`, with `setup` run first.
fn fish(home: &Path, setup: &str, line: &str) -> Vec<String> {
    let script = format!("{setup}\ncomplete -C -- $argv[1]");
    let out = Command::new("fish")
        .args(["-c", &script, line])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_RUNTIME_DIR", lab::runtime_dir(home))
        .env_remove("XDG_DATA_DIRS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    lines(out, &format!("fish {line:?}"))
}

fn has(v: &[String], want: &str) -> bool {
    v.iter().any(|c| c == want)
}

fn need(tool: &str) -> bool {
    lab::require(tool)
}

#[test]
fn bash_completes_rosh_ssh_as_ssh_and_rosh_hosts() {
    if !need("/usr/bin/bash") || !need(BASH_COMPLETION) {
        return;
    }
    let h = home();
    let ours = format!(". '{}'", repo().join("completions/rosh.bash").display());
    let b = |line: &str| bash(h.path(), &ours, line);

    assert_eq!(b("rosh-ssh --ver"), ["--verbose", "--version"]);
    assert!(
        has(&b("rosh-ssh --"), "--no-restore"),
        "{:?}",
        b("rosh-ssh --")
    );
    // As ssh does, for ssh's own grammar, also after rosh-ssh's options.
    let ssh = bash(h.path(), "", "ssh -o Compres");
    assert!(has(&ssh, "Compression="), "ssh itself: {ssh:?}");
    assert_eq!(b("rosh-ssh -o Compres"), ssh);
    assert_eq!(b("rosh-ssh --verbose --ssh /usr/bin/ssh -o Compres"), ssh);
    assert_eq!(b("rosh-ssh --ssh=/usr/bin/ssh -o Compres"), ssh);
    assert_eq!(b("rosh-ssh alp"), bash(h.path(), "", "ssh alp"));
    assert_eq!(b("rosh-ssh --dry-run alp"), ["alpha-one"]);
    assert_eq!(b("rosh-ssh --proxy bet"), ["beta-two"]);
    // ssh's own single-dash options come along with rosh-ssh's.
    let dash = b("rosh-ssh -");
    assert!(has(&dash, "-L") && has(&dash, "--dry-run"), "{dash:?}");

    assert_eq!(b("rosh al"), ["alpha-one"]);
    assert_eq!(b("rosh -V -I 3 -o ServerAliveCountMax=2 al"), ["alpha-one"]);
    assert!(
        b("rosh alpha-one ").is_empty(),
        "{:?}",
        b("rosh alpha-one ")
    );
    assert!(b("rosh alpha-one work ").is_empty());
    // -o takes ssh's options, completed as ssh completes them.
    assert_eq!(b("rosh -o Compres"), ssh);
    assert_eq!(
        b("rosh -o Compression=y"),
        bash(h.path(), "", "ssh -o Compression=y")
    );
    assert_eq!(b("rosh -o Compression=y"), ["yes"]);
    assert_eq!(b("rosh-ssh -o Compression=y"), ["yes"]);
    let opts = b("rosh -");
    for o in ["-V", "-S", "-L", "-I", "-a", "-F", "-o", "--keep-sshd"] {
        assert!(has(&opts, o), "{o} not in {opts:?}");
    }
    // rosh's long option (issue 26, 5): offered, and a word of its own.
    assert_eq!(b("rosh --k"), ["--keep-sshd"]);
    assert_eq!(b("rosh -V --keep-sshd -p 22 al"), ["alpha-one"]);
}

#[test]
fn zsh_completes_rosh_ssh_as_ssh_even_through_an_alias() {
    if !need("/usr/bin/zsh") || !need("/usr/bin/timeout") {
        return;
    }
    let h = home();
    let ours = repo().join("completions");
    let empty = h.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let z = |setup: &str, line: &str| zsh(h.path(), &ours, setup, line);

    assert_eq!(z(":", "rosh-ssh --ver"), ["--verbose", "--version"]);
    let ssh = z(":", "ssh -o Compres");
    assert!(has(&ssh, "Compression"), "ssh itself: {ssh:?}");
    assert_eq!(z(":", "rosh-ssh -o Compres"), ssh);
    assert_eq!(z(":", "rosh-ssh --verbose -o Compres"), ssh);
    assert_eq!(z(":", "rosh-ssh alp"), ["alpha-one"]);

    // The README's alias: zsh expands it before completing, so what
    // completes `ssh` is rosh-ssh's completion. Without it, nothing.
    assert_eq!(z("alias ssh=rosh-ssh", "ssh -o Compres"), ssh);
    assert_eq!(z("alias ssh=rosh-ssh", "ssh alp"), ["alpha-one"]);
    let bare = zsh(h.path(), &empty, "alias ssh=rosh-ssh", "ssh -o Compres");
    assert!(bare.is_empty(), "the alias alone completed: {bare:?}");

    assert_eq!(z(":", "rosh al"), ["alpha-one"]);
    assert_eq!(z(":", "rosh -V -I 3 al"), ["alpha-one"]);
    assert_eq!(z(":", "rosh --k"), ["--keep-sshd"]);
    assert_eq!(z(":", "rosh --keep-sshd -p 22 al"), ["alpha-one"]);
    let after = z(":", "rosh alpha-one ");
    assert!(!has(&after, "alpha-one"), "{after:?}");
}

#[test]
fn fish_completes_rosh_ssh_as_ssh_and_rosh_hosts() {
    if !need("/usr/bin/fish") {
        return;
    }
    let h = home();
    let ours = format!(
        "source '{}'; source '{}'",
        repo().join("completions/rosh-ssh.fish").display(),
        repo().join("completions/rosh.fish").display()
    );
    let f = |line: &str| fish(h.path(), &ours, line);

    assert_eq!(f("rosh-ssh --ver"), ["--verbose", "--version"]);
    let ssh = fish(h.path(), "", "ssh -o Compres");
    assert!(has(&ssh, "Compression"), "ssh itself: {ssh:?}");
    assert_eq!(f("rosh-ssh -o Compres"), ssh);
    assert_eq!(f("rosh-ssh --verbose -o Compres"), ssh);
    assert_eq!(f("rosh-ssh alp"), fish(h.path(), "", "ssh alp"));
    assert!(has(&f("rosh-ssh alp"), "alpha-one"));
    assert_eq!(f("rosh-ssh --proxy h 22 --fd"), ["--fdpass"]);

    assert_eq!(f("rosh al"), ["alpha-one"]);
    assert_eq!(f("rosh -V -I 3 al"), ["alpha-one"]);
    assert!(
        f("rosh alpha-one ").is_empty(),
        "{:?}",
        f("rosh alpha-one ")
    );
    let opts = f("rosh -");
    for o in ["-V", "-S", "-L", "-I", "-a", "-F", "-o"] {
        assert!(has(&opts, o), "{o} not in {opts:?}");
    }
    assert_eq!(f("rosh --k"), ["--keep-sshd"]);
    assert_eq!(f("rosh -V --keep-sshd -p 22 al"), ["alpha-one"]);
}

/// The scripts that ship parse in their shells and pass shellcheck.
#[test]
fn shipped_scripts_parse_and_pass_shellcheck() {
    for (shell, files) in [
        ("/usr/bin/bash", &["completions/rosh.bash"][..]),
        (
            "/usr/bin/zsh",
            &["completions/_rosh-ssh", "completions/_rosh"][..],
        ),
        (
            "/usr/bin/fish",
            &["completions/rosh-ssh.fish", "completions/rosh.fish"][..],
        ),
        ("/usr/bin/dash", &["install.sh", "pkg/build-deb.sh"][..]),
    ] {
        if !need(shell) {
            continue;
        }
        for f in files {
            let out = Command::new(shell)
                .arg("-n")
                .arg(repo().join(f))
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{shell} -n {f}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if !need("/usr/bin/shellcheck") {
        return;
    }
    for (dialect, f) in [
        ("bash", "completions/rosh.bash"),
        ("sh", "install.sh"),
        ("sh", "pkg/build-deb.sh"),
    ] {
        let out = Command::new("shellcheck")
            .args(["-s", dialect])
            .arg(repo().join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {f}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Issue 23, 4: the host after `rosh -F FILE` comes from FILE, as ssh would
/// read it; and ssh's options rosh never listed (`-X`, `-t`) are read with
/// ssh's grammar: the host still completes after them.
#[test]
fn rosh_completes_hosts_from_the_file_dash_f_names() {
    let h = home();
    let file = h.path().join("other.conf");
    fs::write(
        &file,
        "Host gamma-three\n  HostName 127.0.0.1\nHost *.wild\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let lines = [
        format!("rosh -F {f} gam"),
        format!("rosh -V -F {f} -o ServerAliveCountMax=2 gam"),
        format!("rosh -XtF {f} gam"),
    ];
    if need("/usr/bin/bash") && need(BASH_COMPLETION) {
        let ours = format!(". '{}'", repo().join("completions/rosh.bash").display());
        let b = |line: &str| bash(h.path(), &ours, line);
        for line in &lines {
            assert_eq!(b(line), ["gamma-three"], "bash: {line}");
        }
        assert_eq!(b(&format!("rosh -F{f} gam")), ["gamma-three"]);
        assert_eq!(b("rosh -X -e none al"), ["alpha-one"]);
        assert!(b(&format!("rosh -F {f} gamma-three ")).is_empty());
    }
    if need("/usr/bin/zsh") && need("/usr/bin/timeout") {
        let ours = repo().join("completions");
        for line in &lines[..2] {
            assert_eq!(
                zsh(h.path(), &ours, ":", line),
                ["gamma-three"],
                "zsh: {line}"
            );
        }
        assert_eq!(
            zsh(h.path(), &ours, ":", "rosh -X -e none al"),
            ["alpha-one"]
        );
    }
    if need("/usr/bin/fish") {
        let ours = format!(
            "source '{}'",
            repo().join("completions/rosh.fish").display()
        );
        for line in &lines {
            assert_eq!(fish(h.path(), &ours, line), ["gamma-three"], "fish: {line}");
        }
        assert_eq!(fish(h.path(), &ours, "rosh -X -e none al"), ["alpha-one"]);
    }
}
