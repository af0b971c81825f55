//! ssh's words for a run, built and nothing started: dropped forwards cut
//! out of argv and out of a private config copy, and, where the policy says
//! so, the plumbing (plumbing.rs) that lets a forward fail without ending
//! the connection:
//! `-o ExitOnForwardFailure=no` first (ssh keeps the first value it
//! obtains, over every config file), ssh's log through a FIFO, the failure
//! messages forced out with LogVerbose where the user's LogLevel hides
//! them, and a private control socket for restores.

use crate::argv::Args;
use crate::config::Config;
use crate::error::Error;
use crate::forward::Forward;
use crate::plan::Plan;
use crate::plumbing::{self, Plumbing};
use crate::policy::{Policy, Restore};
use crate::tmpdir::PrivateDir;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The private directories a run's files live in (the config copy, the
/// log FIFO, a private control socket). They live as long as the ssh
/// child: ProxyJump re-invokes ssh with the same -F.
#[derive(Default)]
pub struct Dirs {
    pub main: Option<PrivateDir>,
    /// A short private directory under /tmp for the control socket, when
    /// `main`'s path is too long for a unix socket address.
    pub ctl: Option<PrivateDir>,
}

impl Dirs {
    fn main(&mut self) -> Result<&PrivateDir, Error> {
        let d = match self.main.take() {
            Some(d) => d,
            None => PrivateDir::new()
                .map_err(|e| Error::Io("cannot create a private directory".into(), e))?,
        };
        Ok(self.main.insert(d))
    }

    /// A control socket path that fits a socket address, or `None`.
    fn ctl(&mut self) -> Result<Option<PathBuf>, Error> {
        let ctl = self.main()?.path().join(plumbing::CTL);
        if crate::supervise::restore::fits(&ctl) {
            return Ok(Some(ctl));
        }
        let Ok(short) = PrivateDir::new_in(Path::new("/tmp")) else {
            return Ok(None);
        };
        let ctl = self.ctl.insert(short).path().join(plumbing::CTL);
        Ok(crate::supervise::restore::fits(&ctl).then_some(ctl))
    }
}

/// What ssh is run with.
#[derive(Debug, Default)]
pub struct Words {
    /// ssh's arguments (after argv\[0\]).
    pub words: Vec<OsString>,
    /// The private config copy's top file, when a config forward was dropped.
    pub config: Option<PathBuf>,
    /// The FIFO ssh logs to (`-E`), when its log is read.
    pub fifo: Option<PathBuf>,
    /// The control socket restores go through.
    pub ctl: Option<PathBuf>,
}

/// The words for a run. `live` adds the run-time plumbing (for `--dry-run`
/// the command line shows only what the user's words become); `log` is
/// whether ssh's log can be read (the user's own `-E` file opened).
pub fn words(
    args: &Args,
    plan: &Plan,
    config: &Config,
    policy: &Policy,
    dirs: &mut Dirs,
    live: bool,
    log: bool,
) -> Result<Words, Error> {
    let mut cut: Vec<usize> = Vec::new();
    let mut config_drops: Vec<Forward> = Vec::new();
    for d in plan.decisions.iter().filter(|d| d.verdict.drops()) {
        cut.extend(d.opts.iter().copied());
        if d.from_config.is_some() {
            config_drops.push(d.forward.clone());
        }
    }
    let mut out = Words::default();
    let mut plumbing = Plumbing::default();
    if !config_drops.is_empty() {
        let dir = dirs.main()?.path().to_path_buf();
        let top = config
            .rewrite(&config_drops, &dir)
            .map_err(|e| Error::Io("cannot write the private ssh_config copy".into(), e))?;
        cut.extend(args.opts_with(b'F'));
        plumbing.config = Some(top.clone());
        out.config = Some(top);
    }
    if live {
        plumbing.exit_on_forward_failure = policy.exit_on_forward_failure;
        match &policy.restore {
            Restore::Private => {
                if let Some(ctl) = dirs.ctl()? {
                    plumbing.control = Some(ctl.clone());
                    out.ctl = Some(ctl);
                }
            }
            Restore::Theirs(path) => out.ctl = Some(path.clone()),
            Restore::No(_) => {}
        }
        if policy.read_log && log {
            plumbing.log_verbose = policy.log_verbose.clone();
            let fifo = dirs
                .main()?
                .fifo(plumbing::LOG)
                .map_err(|e| Error::Io("cannot make the log FIFO".into(), e))?;
            cut.extend(args.opts_with(b'E'));
            plumbing.log = Some(fifo.clone());
            out.fifo = Some(fifo);
        }
    }
    out.words = plumbing.words();
    out.words.extend(args.without(&cut));
    Ok(out)
}
