//! rosh-ssh's modes: its own options read, then one of help, version,
//! proxy, check, or ssh (connect.rs).

use crate::child::End;
use crate::cli::{self, Mode};
use crate::error::Error;
use crate::{check, connect, locate};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Runs rosh-ssh; the caller ends the process the way the result says.
pub fn run() -> Result<End, Error> {
    let cli = cli::parse(std::env::args_os().skip(1).collect(), |k| {
        std::env::var_os(k)
    })?;
    let path = std::env::var_os("PATH");
    match &cli.mode {
        Mode::Help => {
            print!("{}", cli::USAGE);
            Ok(End::Exited(0))
        }
        Mode::Version => {
            println!("rosh-ssh {}", env!("CARGO_PKG_VERSION"));
            Ok(End::Exited(0))
        }
        Mode::Proxy(words) => {
            let parent = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), None)
                .ok()
                .and_then(|ssh| {
                    let words = parent_ssh_words(&ssh)?;
                    connect::warn_parent_forwards(&ssh, words)
                })
                .unwrap_or_default();
            crate::proxy::run(words, parent)
                .map(End::Exited)
                .map_err(|e| Error::Proxy(e.to_string()))
        }
        Mode::Check { remote } => {
            let ssh = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), None)?;
            check::run(&ssh, &cli.words, *remote, cli.dry_run)
        }
        Mode::Ssh => {
            let depth = locate::depth(std::env::var_os(locate::DEPTH_VAR).as_deref());
            if depth >= locate::MAX_DEPTH {
                return Err(Error::Loop(depth));
            }
            // Run as the ssh of another rosh-ssh (a second copy installed
            // elsewhere): that one reads the log and restores; this one
            // becomes the real ssh, skipping both copies.
            let outer = locate::Outer::running_me(std::env::var_os(locate::OUTER_VAR).as_deref());
            let ssh = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), outer)?;
            if outer.is_some() {
                return Err(crate::child::exec(&ssh, &cli.words, depth));
            }
            connect::run(&cli, &ssh, depth)
        }
    }
}

/// The arguments of the ssh that runs this ProxyCommand: the parent, or the
/// grandparent when a shell sits between (`sh -c` without `exec`).
fn parent_ssh_words(ssh: &Path) -> Option<Vec<OsString>> {
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let want = id(ssh)?;
    let mut pid = nix::unistd::getppid().as_raw();
    for _ in 0..2 {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if id(&proc.join("exe")) == Some(want) {
            let raw = std::fs::read(proc.join("cmdline")).ok()?;
            let mut words: Vec<OsString> = raw
                .split(|&b| b == 0)
                .map(|w| OsString::from_vec(w.to_vec()))
                .collect();
            if raw.ends_with(&[0]) {
                words.pop();
            }
            words.remove(0);
            return Some(words);
        }
        let stat = std::fs::read_to_string(proc.join("stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        pid = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
    }
    None
}
