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
    let mut opts = short_options(&usage);
    opts.extend(long_options(&usage));
    assert!(opts.contains("--keep-sshd"), "{opts:?}");
    for o in ["-V", "-S", "-L", "-I", "-a", "-F", "-o"] {
        assert!(opts.contains(o), "{o} not read from rosh's usage: {opts:?}");
    }
    let (man_opts, man_vars) = man_items(&read("man/rosh.1"));
    same("rosh(1) options", &opts, &man_opts);
    // rosh's own switches (ROSH_END_SSHD): rosh(1), rosh-ssh(1), the README.
    let vars = rosh_vars(&usage);
    assert!(vars.contains("ROSH_END_SSHD"), "{vars:?}");
    for v in &vars {
        assert!(man_vars.contains(v), "rosh(1) lacks {v}");
    }
    let (_, ssh_man_vars) = man_items(&read("man/rosh-ssh.1"));
    assert!(vars.is_subset(&ssh_man_vars), "rosh-ssh(1) lacks {vars:?}");

    let readme = read("README.md");
    let synopsis = readme
        .lines()
        .find(|l| l.trim_start().starts_with("rosh [-"))
        .expect("rosh synopsis in the README");
    let mut in_synopsis = short_options(synopsis);
    in_synopsis.extend(long_options(synopsis));
    same("README rosh synopsis", &opts, &in_synopsis);
    for v in &vars {
        assert!(readme.contains(v.as_str()), "README lacks {v}");
    }

    for (file, form) in [
        ("completions/rosh.bash", " {o} "),
        ("completions/_rosh", "{o}["),
        ("completions/rosh.fish", "-s {c} "),
    ] {
        let form = |o: &str| {
            if o.starts_with("--") && file.ends_with(".fish") {
                format!("-l {} ", &o[2..])
            } else {
                form.replace("{o}", o).replace("{c}", &o[1..])
            }
        };
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
            let want = form(o);
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

/// The releases of CHANGELOG.md, newest first: (version, date) of each
/// `## [X] - YYYY-MM-DD` heading (`## [Unreleased]` has neither).
fn releases(changelog: &str) -> Vec<(String, String)> {
    changelog
        .lines()
        .filter_map(|l| l.strip_prefix("## ["))
        .filter_map(|l| l.split_once("] - "))
        .map(|(v, d)| (v.to_string(), d.to_string()))
        .collect()
}

/// "0.10.2" -> [0, 10, 2], for ordering releases.
fn numbers(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("version {version:?}")))
        .collect()
}

#[test]
fn one_version_in_cargo_toml_help_man_pages_and_changelog() {
    let v = env!("CARGO_PKG_VERSION");
    let out = Command::new(lab::rosh_ssh())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "rosh-ssh --version: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("rosh-ssh {v}\n")
    );
    // mdoc's .Os names the package and version in each page's footer.
    for page in ["man/rosh-ssh.1", "man/rosh.1"] {
        let os: Vec<String> = read(page)
            .lines()
            .filter(|l| l.starts_with(".Os"))
            .map(str::to_string)
            .collect();
        assert_eq!(os, [format!(".Os rosh-ssh {v}")], "{page}");
    }

    // Keep a Changelog: the newest release first, and it is this version.
    let changelog = read("CHANGELOG.md");
    assert!(changelog.starts_with("# Changelog\n"), "CHANGELOG.md title");
    let all = releases(&changelog);
    assert_eq!(
        all.first().map(|r| r.0.as_str()),
        Some(v),
        "CHANGELOG.md's top release is not Cargo.toml's version: {all:?}"
    );
    for pair in all.windows(2) {
        let ((new, new_day), (old, old_day)) = (&pair[0], &pair[1]);
        assert!(
            numbers(new) > numbers(old) && new_day >= old_day,
            "CHANGELOG.md: {new} ({new_day}) above {old} ({old_day})"
        );
    }
    for (version, day) in &all {
        let ok = day.len() == 10
            && day.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        assert!(
            ok,
            "CHANGELOG.md: {version}: date {day:?} is not YYYY-MM-DD"
        );
    }
}

#[test]
fn licence_files_cargo_toml_and_debian_copyright_agree() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT OR Apache-2.0");
    let mit = read("LICENSE-MIT");
    let apache = read("LICENSE-APACHE");
    assert!(
        mit.starts_with(
            "Copyright (c) 2025-2026 The rosh-ssh developers\n\nPermission is hereby granted"
        ),
        "LICENSE-MIT: {mit}"
    );
    for w in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(apache.contains(w), "LICENSE-APACHE lacks {w:?}");
    }

    // pkg/copyright (DEP-5): the MIT text is LICENSE-MIT's, word for word
    // (a continuation line is " " + the line, "." for a blank one).
    let copyright = read("pkg/copyright");
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(copyright.contains(
        "Files: *\nCopyright: 2025-2026 The rosh-ssh developers\nLicense: MIT or Apache-2.0\n"
    ));
    let body: String = mit
        .lines()
        .skip(2)
        .map(|l| {
            if l.is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    assert!(
        copyright.contains(&format!("License: MIT\n{body}\n")),
        "pkg/copyright's MIT text is not LICENSE-MIT's"
    );
    assert!(copyright.contains("License: Apache-2.0\n"));
    assert!(copyright.contains("/usr/share/common-licenses/Apache-2.0"));
}

/// The README's `<!-- figures: NAME -->` ... `<!-- end figures: NAME -->`
/// blocks: (NAME, their lines), in order.
fn figure_blocks(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in readme.lines() {
        if let Some(name) = line
            .strip_prefix("<!-- figures: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            assert!(
                open.is_none(),
                "README: figures block {name} inside another"
            );
            open = Some((name.to_string(), Vec::new()));
        } else if let Some(name) = line
            .strip_prefix("<!-- end figures: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            let block = open
                .take()
                .expect("README: end of a figures block never begun");
            assert_eq!(
                block.0, name,
                "README: figures block ends under another name"
            );
            blocks.push(block);
        } else if let Some((_, lines)) = open.as_mut() {
            lines.push(line.to_string());
        }
    }
    assert!(open.is_none(), "README: a figures block is not ended");
    blocks
}

/// The output of the run whose `Run:` line is `run`, as bench/record.sh
/// files it in bench/RESULTS.md: a fenced block starting with that line,
/// under the heading `### NAME, DATE TIME UTC` taken from it.
fn recorded<'a>(results: &'a str, run: &str) -> Option<Vec<&'a str>> {
    let lines: Vec<&str> = results.lines().collect();
    let heading = format!("### {}", run.strip_prefix("Run: ")?.split(';').next()?);
    let at = (1..lines.len()).find(|&i| lines[i] == run && lines[i - 1] == "```text")?;
    let above = lines[..at].iter().rev().find(|l| l.starts_with('#'))?;
    if **above != heading {
        return None;
    }
    let end = lines[at..].iter().position(|l| *l == "```")?;
    Some(lines[at..at + end].to_vec())
}

#[test]
fn readme_benchmark_figures_are_lines_of_recorded_runs() {
    let readme = read("README.md");
    let results = read("bench/RESULTS.md");
    let blocks = figure_blocks(&readme);
    let names: Vec<&str> = blocks.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(
        names,
        ["bench", "restore_bench", "proxy_bench", "reattach_bench"],
        "README: the figures blocks"
    );
    for (name, lines) in &blocks {
        let lines: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        let run = lines.first().copied().unwrap_or_default();
        // "Run: NAME, YYYY-MM-DD HH:MM UTC; ...": when, then where.
        let when = run
            .strip_prefix(&format!("Run: {name}, "))
            .and_then(|r| r.get(..20))
            .unwrap_or_default();
        let ok = when.len() == 20
            && when.ends_with(" UTC")
            && when.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == ' ',
                13 => c == ':',
                16.. => true,
                _ => c.is_ascii_digit(),
            });
        assert!(
            ok,
            "README figures {name}: no `Run: {name}, DATE TIME UTC` line first: {run:?}"
        );
        assert!(
            run.contains("rosh-ssh ") && run.contains(" CPUs"),
            "README figures {name}: the Run line does not say what ran where: {run:?}"
        );
        let rows = &lines[1..];
        assert!(
            rows.len() >= 3 && rows.iter().all(|l| l.starts_with('|')),
            "README figures {name}: not a table under the Run line: {rows:?}"
        );
        let Some(output) = recorded(&results, run) else {
            panic!(
                "README figures {name}: bench/RESULTS.md records no run {run:?} \
                 (under its ### heading): run bench/record.sh {name}"
            );
        };
        for l in &lines {
            assert!(
                output.contains(l),
                "README figures {name}: {l:?} is not a line of the run recorded in bench/RESULTS.md"
            );
        }
        // All of the run's table, in its order: no row left out.
        let printed: Vec<&str> = output.into_iter().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            rows,
            printed.as_slice(),
            "README figures {name}: not the whole table of the run recorded in bench/RESULTS.md"
        );
        if name == "bench" {
            assert!(
                rows.iter()
                    .any(|r| r.starts_with("| release binary size (stripped) |")),
                "README figures bench: no binary size row"
            );
        }
    }

    // No table row in the Benchmarks section outside those blocks.
    let mut section = false;
    let mut inside = false;
    for line in readme.lines() {
        if line.starts_with("## ") {
            section = line == "## Benchmarks";
        }
        if line.starts_with("<!-- figures: ") {
            inside = true;
        } else if line.starts_with("<!-- end figures: ") {
            inside = false;
        }
        assert!(
            !(section && !inside && line.starts_with('|')),
            "README's Benchmarks section: a table row no recorded run printed: {line:?}"
        );
    }
}
