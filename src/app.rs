//! rosh-ssh's modes: its own options read, then one of help, version,
//! proxy, check, or ssh (connect.rs).

use crate::child::End;
use crate::cli::{self, Mode};
use crate::error::Error;
use crate::{check, connect, locate};

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
                    let words = crate::parent::ssh_words(&ssh)?;
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
