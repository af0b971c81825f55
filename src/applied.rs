//! Which config line ssh applied for a forward whose text is on several
//! lines (the same `LocalForward` under two Host blocks), asked of ssh.
//!
//! Warnings, `--dry-run` and `--check` name a config forward by its line.
//! Reading the files finds every line with that text, in blocks that apply
//! or not; which one ssh applied is decided by Host patterns, Match blocks
//! (`exec`, `user`, `canonical`, `final`, ... and the Hostname set so far),
//! CanonicalizeHostname's second pass and Includes inside blocks
//! (readconf.c `process_config_line_depth`, `match_cfg_line`, ssh.c's
//! re-parse). Three ways were weighed:
//! - evaluating Host and Match in rosh-ssh: exact for Host only (Match
//!   needs the options parsed so far and runs commands), and a second copy
//!   of readconf.c's rules to keep in step with every release;
//! - `ssh -G -vvv` and reading readconf.c's debug lines (`FILE line N:
//!   Applying options for ...`, Match's per-criterion lines): exact, but it
//!   leans on the wording of debug messages across 8.0 to 10.5, and
//!   knowing which block governs a line (an Include in a Host block) is
//!   still ours to reconstruct;
//! - the way taken: a private copy of the config (config.rs `mark`, the
//!   rewriter that keeps meaning) in which each candidate line is replaced
//!   by a forward of its own, `LocalForward /rosh-ssh-origin/K ...`, and one
//!   `ssh -G` with the user's arguments: the markers it prints are the
//!   lines that apply, in the order ssh applied them (readconf.c
//!   `add_local_forward` keeps the first of equal forwards, so the first
//!   marker is the line that took effect). ssh's own rules decide, in every
//!   release, with nothing to parse but `ssh -G`'s forward lines.
//!
//! The price, paid only when a forward has two or more candidate lines (or
//! is on the command line too, where its one config line may not apply):
//! one more `ssh -G` spawn, so `Match exec` commands run once more (the
//! README says so under Limits). Everywhere else the one candidate is the
//! line. If the copy or the spawn fails, the first candidate is named, as
//! before.

use crate::argv::Args;
use crate::config::{Config, Origin};
use crate::forward::Forward;
use std::ffi::OsString;
use std::path::Path;

/// The listen path of marker `K`: absolute, short, and no one's forward.
const MARK: &str = "/rosh-ssh-origin/";

/// The config line ssh applied for each forward (`None`: no config line
/// applies, the forward comes from the command line alone). `on_argv[i]`:
/// forward `i` is also asked for on the command line.
pub fn origins(
    ssh: &Path,
    args: &Args,
    config: &Config,
    forwards: &[Forward],
    on_argv: &[bool],
) -> Vec<Option<Origin>> {
    let candidates = config.origins_of(forwards);
    let unsure = unsure(&candidates, on_argv);
    if unsure.is_empty() {
        return candidates
            .into_iter()
            .map(|c| c.into_iter().next())
            .collect();
    }
    let marks = marks(&candidates, &unsure);
    match shown(ssh, args, config, &marks) {
        Some(shown) => pick(candidates, &unsure, &marks, &shown),
        None => candidates
            .into_iter()
            .map(|c| c.into_iter().next())
            .collect(),
    }
}

/// The forwards whose line ssh must be asked about.
fn unsure(candidates: &[Vec<Origin>], on_argv: &[bool]) -> Vec<usize> {
    (0..candidates.len())
        .filter(|&i| {
            let n = candidates[i].len();
            n >= 2 || (n == 1 && on_argv.get(i).copied().unwrap_or(false))
        })
        .collect()
}

/// Every candidate line of the unsure forwards, once each, in order: marker
/// `K` stands for `marks[K]`.
fn marks(candidates: &[Vec<Origin>], unsure: &[usize]) -> Vec<Origin> {
    let mut out: Vec<Origin> = Vec::new();
    for &i in unsure {
        for o in &candidates[i] {
            if !out.contains(o) {
                out.push(o.clone());
            }
        }
    }
    out
}

/// The marker line for `K`. A local forward from one unix socket path to
/// another: accepted by every release rosh-ssh knows, never deduplicated
/// against another line, printed by `ssh -G` as written.
fn marker(k: usize) -> Vec<u8> {
    format!("LocalForward {MARK}{k} {MARK}{k}").into_bytes()
}

/// The marker numbers `ssh -G` printed for the marked copy, in its order;
/// `None` when the copy can't be made or ssh rejects it.
fn shown(ssh: &Path, args: &Args, config: &Config, marks: &[Origin]) -> Option<Vec<usize>> {
    let dir = crate::tmpdir::PrivateDir::new().ok()?;
    let lines: Vec<(Origin, Vec<u8>)> = marks
        .iter()
        .enumerate()
        .map(|(k, o)| (o.clone(), marker(k)))
        .collect();
    let top = config.mark(&lines, dir.path()).ok()?;
    // The user's -F is read through the copy's top file, as launch.rs does.
    let cut: Vec<usize> = (0..args.opts.len())
        .filter(|&n| args.opts[n].letter == b'F')
        .collect();
    let mut words: Vec<OsString> = vec!["-F".into(), top.into()];
    words.extend(args.without(&cut));
    let eff = crate::effective::query(ssh, &words).ok()?.ok()?;
    Some(read_markers(&eff.forward_lines))
}

/// `localforward /rosh-ssh-origin/K /rosh-ssh-origin/K` lines, read back.
fn read_markers(lines: &[Vec<u8>]) -> Vec<usize> {
    let head = format!("localforward {MARK}");
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix(head.as_bytes())?;
            let end = rest.iter().position(|&b| b == b' ')?;
            std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
        })
        .collect()
}

/// Each forward's line: for an unsure one, its first candidate that ssh
/// printed (the one that took effect), else none applies.
fn pick(
    candidates: Vec<Vec<Origin>>,
    unsure: &[usize],
    marks: &[Origin],
    shown: &[usize],
) -> Vec<Option<Origin>> {
    candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if !unsure.contains(&i) {
                return c.into_iter().next();
            }
            shown
                .iter()
                .filter_map(|&k| marks.get(k))
                .find(|o| c.contains(o))
                .cloned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn o(file: &str, line: usize) -> Origin {
        Origin {
            file: PathBuf::from(file),
            line,
            text: Vec::new(),
        }
    }

    #[test]
    fn only_forwards_with_a_choice_are_asked_about() {
        let table: Vec<(Vec<Vec<Origin>>, Vec<bool>, Vec<usize>)> = vec![
            (vec![], vec![], vec![]),
            (vec![vec![o("/c", 2)]], vec![false], vec![]),
            (vec![vec![]], vec![true], vec![]),
            // On the command line too: the one line may not apply.
            (vec![vec![o("/c", 2)]], vec![true], vec![0]),
            (
                vec![vec![o("/c", 2)], vec![o("/c", 4), o("/c", 6)]],
                vec![false, false],
                vec![1],
            ),
        ];
        for (c, argv, want) in table {
            assert_eq!(unsure(&c, &argv), want, "{c:?} {argv:?}");
        }
    }

    #[test]
    fn the_first_line_ssh_printed_is_the_one_named() {
        let c = vec![
            vec![o("/c", 2)],
            vec![o("/c", 4), o("/c", 8)],
            vec![o("/i", 1), o("/c", 8)],
            vec![o("/c", 9), o("/c", 10)],
        ];
        let unsure = [1, 2, 3];
        let m = marks(&c, &unsure);
        assert_eq!(
            m,
            [o("/c", 4), o("/c", 8), o("/i", 1), o("/c", 9), o("/c", 10)]
        );
        let table: Vec<(Vec<usize>, Vec<Option<Origin>>)> = vec![
            // Only the second Host block applies.
            (
                vec![1],
                vec![Some(o("/c", 2)), Some(o("/c", 8)), Some(o("/c", 8)), None],
            ),
            // Both apply: ssh keeps the first (add_local_forward).
            (
                vec![0, 1, 2, 4],
                vec![
                    Some(o("/c", 2)),
                    Some(o("/c", 4)),
                    // ssh printed /c:8 first: it applied that one first.
                    Some(o("/c", 8)),
                    Some(o("/c", 10)),
                ],
            ),
            // A second pass (CanonicalizeHostname, Match final) prints later.
            (
                vec![2, 0],
                vec![Some(o("/c", 2)), Some(o("/c", 4)), Some(o("/i", 1)), None],
            ),
            (vec![], vec![Some(o("/c", 2)), None, None, None]),
        ];
        for (shown, want) in table {
            assert_eq!(pick(c.clone(), &unsure, &m, &shown), want, "{shown:?}");
        }
    }

    #[test]
    fn markers_read_back() {
        let lines: Vec<Vec<u8>> = [
            "localforward 3131 [localhost]:22",
            "dynamicforward /rosh-ssh-origin/3",
            "localforward /rosh-ssh-origin/3 /rosh-ssh-origin/3",
            "localforward /rosh-ssh-origin/0 /rosh-ssh-origin/0",
            "localforward /rosh-ssh-origin/x /rosh-ssh-origin/x",
            "remoteforward 8082 [localhost]:22",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        assert_eq!(read_markers(&lines), [3, 0]);
        assert_eq!(
            String::from_utf8(marker(12)).unwrap(),
            "LocalForward /rosh-ssh-origin/12 /rosh-ssh-origin/12"
        );
    }
}
