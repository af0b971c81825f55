//! The documentation tells the same story as the programs: the man pages
//! pass Debian's linter with zero warnings and render, and the options and
//! environment variables of `rosh-ssh --help` and of the rosh function's
//! usage are exactly those of the man pages, all in the README, and offered
//! by every shell's completion.
mod lab;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

type Set = BTreeSet<String>;

/// Words made of letters, digits, `_` and `-`, mdoc's `\-` read as `-`.
fn words(text: &str) -> Vec<String> {
    text.replace("\\-", "-")
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn long_options(text: &str) -> Set {
    words(text)
        .into_iter()
        .filter(|w| w.len() > 2 && w.starts_with("--") && w.as_bytes()[2].is_ascii_alphabetic())
        .collect()
}

fn short_options(text: &str) -> Set {
    words(text)
        .into_iter()
        .filter(|w| w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphanumeric())
        .collect()
}

fn rosh_vars(text: &str) -> Set {
    words(text)
        .into_iter()
        .filter(|w| w.starts_with("ROSH_") && w.len() > 5)
        .collect()
}

/// What a man page's option list (`.It Fl ...` lines) and environment list
/// (`.It Ev ...`) document, read from the mdoc source.
fn man_items(page: &str) -> (Set, Set) {
    let mut opts = Set::new();
    let mut vars = Set::new();
    for line in page.lines() {
        let w = words(line);
        if line.starts_with(".It Fl") {
            for pair in w.windows(2).filter(|p| p[0] == "Fl") {
                // `Fl x` is -x, `Fl \-x` is --x.
                opts.insert(format!("-{}", pair[1]));
            }
        } else if line.starts_with(".It Ev") {
            vars.extend(w.into_iter().filter(|w| w.starts_with("ROSH_")));
        }
    }
    (opts, vars)
}

fn rosh_ssh_help() -> String {
    let out = Command::new(lab::rosh_ssh())
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "rosh-ssh --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The rosh function's usage, as `rosh --help` prints it (stdout or stderr),
/// with the rosh-ssh cargo built on PATH (the function runs it).
fn rosh_usage() -> String {
    let bin = lab::rosh_ssh().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("sh")
        .args(["-c", ". \"$1\"; rosh --help", "sh"])
        .arg(repo().join("shell/rosh.sh"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("usage: rosh"), "rosh --help: {text}");
    text
}

// Read by rosh-ssh but set by rosh-ssh itself for the ssh it runs (a loop
// guard): in the man page, not in --help.
const INTERNAL: &[&str] = &["ROSH_SSH_DEPTH"];

/// `help` and `doc` hold the same items.
fn same(what: &str, help: &Set, doc: &Set) {
    let missing: Vec<_> = help.difference(doc).collect();
    let extra: Vec<_> = doc
        .difference(help)
        .filter(|o| !INTERNAL.contains(&o.as_str()))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: in --help only: {missing:?}; in the documentation only: {extra:?}"
    );
}

#[test]
fn rosh_ssh_help_man_page_readme_and_completions_agree() {
    let help = rosh_ssh_help();
    let (opts, vars) = (long_options(&help), rosh_vars(&help));
    for o in [
        "--help",
        "--version",
        "--verbose",
        "--dry-run",
        "--check",
        "--proxy",
    ] {
        assert!(opts.contains(o), "{o} not read from --help: {opts:?}");
    }
    let (man_opts, man_vars) = man_items(&read("man/rosh-ssh.1"));
    same("rosh-ssh(1) options", &opts, &man_opts);
    same("rosh-ssh(1) environment", &vars, &man_vars);

    let readme = read("README.md");
    let (r_opts, r_vars) = (long_options(&readme), rosh_vars(&readme));
    for o in opts.iter().chain(&vars) {
        assert!(r_opts.contains(o) || r_vars.contains(o), "README lacks {o}");
    }
    // The README's synopsis names no option --help lacks.
    let synopsis: String = readme
        .lines()
        .filter(|l| l.starts_with("rosh-ssh [") || l.starts_with("rosh-ssh --"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!synopsis.is_empty(), "no rosh-ssh synopsis in the README");
    same("README synopsis", &opts, &long_options(&synopsis));

    for (file, form) in [
        ("completions/rosh.bash", "{o}"),
        ("completions/_rosh-ssh", "'{o}:"),
        ("completions/rosh-ssh.fish", "-l {l}"),
    ] {
        let text = read(file);
        for o in opts.iter().chain(man_opts.iter()) {
            let want = form.replace("{o}", o).replace("{l}", &o[2..]);
            assert!(text.contains(&want), "{file} does not offer {o} ({want:?})");
        }
    }
}

#[test]
fn rosh_usage_man_page_readme_and_completions_agree() {
    let usage = rosh_usage();
    let opts = short_options(&usage);
    for o in ["-V", "-S", "-L", "-I", "-a", "-F", "-o"] {
        assert!(opts.contains(o), "{o} not read from rosh's usage: {opts:?}");
    }
    let (man_opts, _) = man_items(&read("man/rosh.1"));
    same("rosh(1) options", &opts, &man_opts);

    let readme = read("README.md");
    let synopsis = readme
        .lines()
        .find(|l| l.trim_start().starts_with("rosh [-"))
        .expect("rosh synopsis in the README");
    same("README rosh synopsis", &opts, &short_options(synopsis));

    for (file, form) in [
        ("completions/rosh.bash", " {o} "),
        ("completions/_rosh", "{o}["),
        ("completions/rosh.fish", "-s {c} "),
    ] {
        let mut text = read(file);
        if file.ends_with(".bash") {
            // The word list rosh's options are completed from.
            let list = text
                .lines()
                .find(|l| l.contains("compgen -W '-V"))
                .expect("rosh's option list in rosh.bash");
            text = format!(" {} ", words(list).join(" "));
        }
        if file.ends_with("_rosh") {
            // _arguments specs: '-V[...]', '-L+[...]', '*-o+[...]', '(-6)-4[...]'.
            text = text.replace("+[", "[");
        }
        for o in opts.iter().chain(man_opts.iter()) {
            let want = form.replace("{o}", o).replace("{c}", &o[1..]);
            assert!(text.contains(&want), "{file} does not offer {o} ({want:?})");
        }
    }
}

/// The first number after `default ` in `text`.
fn default_in(text: &str) -> Option<u32> {
    let at = text.find("default ")? + "default ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Issue 23, 4: rosh(1) gives the defaults the code has (`-I` said 3, the
/// code 1), as `rosh --help` does.
#[test]
fn rosh_man_page_gives_the_defaults_of_the_code() {
    let usage = rosh_usage();
    let page = read("man/rosh.1");
    for letter in ["I", "a"] {
        let help_line = usage
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("-{letter} SECONDS")))
            .unwrap_or_else(|| panic!("-{letter} in rosh --help: {usage}"));
        let item = page
            .split(".It Fl ")
            .find(|i| i.starts_with(&format!("{letter} Ar seconds")))
            .unwrap_or_else(|| panic!("-{letter} in rosh(1)"));
        let (help, man) = (default_in(help_line), default_in(item));
        assert!(help.is_some(), "no default in {help_line:?}");
        assert_eq!(
            man, help,
            "-{letter}: rosh(1) says {man:?}, rosh --help {help:?}"
        );
    }
}

#[test]
fn man_pages_lint_clean_and_render() {
    if !lab::require("/usr/bin/mandoc") {
        return;
    }
    for page in ["man/rosh-ssh.1", "man/rosh.1"] {
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(repo().join(page))
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.is_empty(),
            "mandoc -T lint {page}:\n{said}"
        );

        // groff, man-db's formatter, with all its warnings on.
        if lab::require("/usr/bin/groff") {
            let out = Command::new("groff")
                .args(["-mdoc", "-ww", "-z"])
                .arg(repo().join(page))
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "groff -ww {page}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // man-db's own renderer (groff) reads it without a complaint.
        if lab::require("/usr/bin/man") {
            let out = Command::new("man")
                .arg("-l")
                .arg(repo().join(page))
                .env("MANWIDTH", "80")
                .env_remove("MAN_KEEP_FORMATTING")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "man -l {page}");
            assert!(
                out.stderr.is_empty(),
                "man -l {page}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for section in [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "ENVIRONMENT",
                "EXIT STATUS",
                "EXAMPLES",
            ] {
                assert!(text.contains(section), "{page} renders without {section}");
            }
        }
    }
}

#[test]
fn rosh_ssh_man_page_names_the_three_ways_in() {
    let page = read("man/rosh-ssh.1");
    for w in [
        "alias ssh=rosh-ssh",
        "/usr/lib/rosh/bin",
        "ProxyCommand rosh-ssh --proxy %h %p",
    ] {
        assert!(page.contains(w), "rosh-ssh(1) lacks {w:?}");
    }
}
