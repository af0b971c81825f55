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
    // This level counted for whatever runs below (ssh -G, ssh, the -O
    // helpers, a ProxyCommand's rosh-ssh), in this process's own
    // environment: nothing is copied per spawn, and the fast path's exec
    // hands `environ` on as it is. No thread exists yet.
    let chain = locate::Chain::inherited(std::env::var_os(locate::DEPTH_VAR).as_deref()).with_me();
    // SAFETY: rosh-ssh starts no thread, so nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var(locate::DEPTH_VAR, chain.value()) };
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
            let parent = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), &chain.seen)
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
        Mode::Rosh(words) => Ok(End::Exited(crate::rosh::run(
            words.clone(),
            cli.ssh.as_deref(),
        ))),
        Mode::Check { remote } => {
            let ssh = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), &chain.seen)?;
            check::run(&ssh, &cli.words, *remote, cli.dry_run)
        }
        Mode::Ssh => {
            if chain.depth > locate::MAX_DEPTH {
                return Err(Error::Loop(chain.depth - 1));
            }
            let ssh = locate::real_ssh(cli.ssh.as_deref(), path.as_deref(), &chain.seen)?;
            // Run as the session ssh of another rosh-ssh (a second copy
            // installed elsewhere): that one reads the log and restores;
            // this one becomes the real ssh.
            if locate::under_supervisor(std::env::var_os(locate::OUTER_VAR).as_deref()) {
                return Err(crate::child::exec(&ssh, &cli.words));
            }
            connect::run(&cli, &ssh)
        }
    }
}
