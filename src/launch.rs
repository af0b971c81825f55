//! ssh's words for a run: dropped forwards cut out of argv and out of a
//! private config copy, and, when forwards are kept, the plumbing that lets
//! a forward fail without ending the connection: `-o
//! ExitOnForwardFailure=no` first (ssh keeps the first value it obtains,
//! over every config file), ssh's log through a FIFO, and the failure
//! messages forced out with LogVerbose where the user's LogLevel hides them.

use crate::argv::Args;
use crate::config::{self, Sources};
use crate::effective::Effective;
use crate::error::Error;
use crate::forward::{Forward, Kind};
use crate::plan::{Decision, Plan};
use crate::supervise::log::{Dest, LogPipe, Watch};
use crate::supervise::restore::{self, Item, Restorer};
use crate::tmpdir::PrivateDir;
use crate::{blame, describe, release};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The state a run needs: what was decided, and the private directory the
/// config copy and the log FIFO live in (it lives as long as the ssh
/// child: ProxyJump re-invokes ssh with the same -F).
pub struct Session<'a> {
    pub args: &'a Args,
    pub eff: &'a Effective,
    pub sources: &'a Sources,
    pub dir: Option<PrivateDir>,
    /// A short private directory under /tmp for the control socket, when
    /// `dir`'s path is too long for a unix socket address.
    pub ctl_dir: Option<PrivateDir>,
    pub decisions: Vec<Decision>,
    /// `--require-forward`: a failed forward ends ssh (ExitOnForwardFailure=yes).
    pub require: bool,
    /// Put dropped forwards back once their port is free (not `--no-restore`).
    pub restore: bool,
    /// The real ssh, for the restorer's `-O` runs.
    pub ssh: &'a Path,
}

/// One run of ssh, ready to go.
pub struct Run {
    pub words: Vec<OsString>,
    pub config: Option<PathBuf>,
    pub log: Option<LogPipe>,
    pub restorer: Option<Restorer>,
}

/// The last value of an option letter (ssh keeps the last -F and -E).
pub fn last_arg(args: &Args, letter: u8) -> Option<&OsStr> {
    args.opts
        .iter()
        .rev()
        .find(|o| o.letter == letter)
        .and_then(|o| o.arg.as_deref())
}

impl<'a> Session<'a> {
    /// A session for `args`, with the plan made from what ssh -G said and
    /// the config files it reads.
    pub fn new(
        args: &'a Args,
        eff: &'a Effective,
        sources: &'a Sources,
        ssh: &'a Path,
        require: bool,
        restore: bool,
    ) -> Session<'a> {
        Session {
            args,
            eff,
            sources,
            dir: None,
            ctl_dir: None,
            decisions: Plan::make(args, eff, sources).decisions,
            require,
            restore,
            ssh,
        }
    }

    pub fn dir(&mut self) -> Result<&PrivateDir, Error> {
        let d = match self.dir.take() {
            Some(d) => d,
            None => PrivateDir::new()
                .map_err(|e| Error::Io("cannot create a private directory".into(), e))?,
        };
        Ok(self.dir.insert(d))
    }

    /// The words for the run. `live` adds the run-time plumbing (for
    /// `--dry-run` the command line shows only what the user's words become).
    pub fn prepare(&mut self, live: bool) -> Result<Run, Error> {
        let mut cut: Vec<usize> = Vec::new();
        let mut config_drops: Vec<Forward> = Vec::new();
        for d in self.decisions.iter().filter(|d| d.verdict.drops()) {
            cut.extend(d.opts.iter().copied());
            if d.from_config.is_some() {
                config_drops.push(d.forward.clone());
            }
        }
        let mut front: Vec<OsString> = Vec::new();
        let mut config = None;
        if !config_drops.is_empty() {
            let dir = self.dir()?.path().to_path_buf();
            let top = config::rewrite(self.sources, &config_drops, &dir)
                .map_err(|e| Error::Io("cannot write the private ssh_config copy".into(), e))?;
            cut.extend(self.opts_with(b'F'));
            front.push("-F".into());
            front.push(top.clone().into());
            config = Some(top);
        }
        let mut log = None;
        let kept: Vec<(usize, Forward)> = self
            .decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.verdict.drops())
            .map(|(i, d)| (i, d.forward.clone()))
            .collect();
        let mut restorer = None;
        let mut plumbing: Vec<OsString> = Vec::new();
        if live {
            restorer = self.restorer(&mut plumbing)?;
        }
        // With a restore pending the log is read too: a restore that loses
        // a race makes the master log a failure, which is rosh-ssh's to hide.
        // What the log can show depends on the release (release::Watch).
        let remote = kept.iter().filter(|(_, f)| f.kind == Kind::Remote).count();
        let seen = release::Watch::plan(
            &self.eff.caps,
            &self.eff.log_level,
            self.eff.fork_after_authentication,
            remote > 0,
            self.require,
        );
        if live && (!kept.is_empty() || restorer.is_some()) {
            // ssh.c: a tunnel's failure is ExitOnForwardFailure's business
            // too, and rosh-ssh does not manage tun devices: leave it be.
            if self.eff.tunnel == "false" {
                let eoff = if self.require { "yes" } else { "no" };
                plumbing.push("-o".into());
                plumbing.push(format!("ExitOnForwardFailure={eoff}").into());
            }
            let dest = match last_arg(self.args, b'E') {
                _ if !seen.take_log => None,
                None => Some(Dest::Stderr),
                // If it can't be opened, ssh says so itself: leave -E alone.
                Some(p) => Dest::file(Path::new(p)).ok(),
            };
            if let Some(dest) = dest {
                let dir = self.dir()?;
                let fifo = dir
                    .fifo("log")
                    .map_err(|e| Error::Io("cannot make the log FIFO".into(), e))?;
                let force = seen.force;
                let own = self.eff.log_verbose != "none";
                let watch = Watch {
                    forwards: self
                        .decisions
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (i, d.forward.clone()))
                        .collect(),
                    names: self
                        .decisions
                        .iter()
                        .map(|d| describe::forward(d, self.args))
                        .collect(),
                    dropped: self
                        .decisions
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.verdict.drops())
                        .map(|(i, _)| i)
                        .collect(),
                    probe: self.eff.probe,
                    require: self.require,
                    hide_forced: force && !own,
                    // ssh -f with ExitOnForwardFailure=no goes to the
                    // background before the server answers its remote
                    // forwards: rosh-ssh waits for the answers instead.
                    answers_wanted: if self.eff.fork_after_authentication
                        && !self.require
                        && seen.answers
                    {
                        remote
                    } else {
                        0
                    },
                    notify: restorer.as_ref().map(Restorer::notify),
                };
                log = Some(
                    LogPipe::start(&fifo, dest, watch)
                        .map_err(|e| Error::Io("cannot read the log FIFO".into(), e))?,
                );
                cut.extend(self.opts_with(b'E'));
                plumbing.push("-E".into());
                plumbing.push(fifo.into());
                if force {
                    let list = if own {
                        format!("{},{}", self.eff.log_verbose, blame::FORCED)
                    } else {
                        blame::FORCED.to_string()
                    };
                    plumbing.push("-o".into());
                    plumbing.push(format!("LogVerbose={list}").into());
                }
            }
        }
        plumbing.append(&mut front);
        let mut words = plumbing;
        words.extend(self.args.without(&cut));
        Ok(Run {
            words,
            config,
            log,
            restorer,
        })
    }

    /// A restorer and the control socket it talks through, when a forward
    /// is dropped now or may be refused later (a remote one). The user's
    /// own ControlPath when there is one; otherwise a private master
    /// (ControlPersist=no: a ControlPersist in the config must not make it
    /// linger). Not for `-f`: the connection outlives rosh-ssh.
    fn restorer(&mut self, plumbing: &mut Vec<OsString>) -> Result<Option<Restorer>, Error> {
        let dropped: Vec<Item> = self
            .decisions
            .iter()
            .filter(|d| d.verdict.drops())
            .map(|d| Item {
                forward: d.forward.clone(),
                name: describe::forward(d, self.args),
                cancel: false,
                holder: d.verdict.holder_pid(),
            })
            .collect();
        let remote = self
            .decisions
            .iter()
            .any(|d| !d.verdict.drops() && d.forward.kind == Kind::Remote);
        if !self.restore
            || self.require
            || self.eff.fork_after_authentication
            || (dropped.is_empty() && !remote)
        {
            return Ok(None);
        }
        // The user's ControlPath serves when this ssh will be a master there
        // (ControlMaster yes/ask/auto) or rides a live one; with
        // ControlMaster no and no master, nothing would listen on it.
        let theirs = self.eff.control_path != "none"
            && (self.eff.control_master != "false"
                || crate::ownmaster::master_pid(self.ssh, &self.eff.control_path).is_some());
        let ctl = if theirs {
            PathBuf::from(&self.eff.control_path)
        } else {
            let mut ctl = self.dir()?.path().join("ctl");
            if !restore::fits(&ctl) {
                let Ok(short) = PrivateDir::new_in(Path::new("/tmp")) else {
                    return Ok(None);
                };
                ctl = self.ctl_dir.insert(short).path().join("ctl");
                if !restore::fits(&ctl) {
                    return Ok(None);
                }
            }
            for o in [
                "ControlMaster=yes".to_string(),
                format!("ControlPath={}", ctl.display()),
                "ControlPersist=no".to_string(),
            ] {
                plumbing.push("-o".into());
                plumbing.push(o.into());
            }
            ctl
        };
        let r = Restorer::start(self.ssh.to_path_buf(), ctl, self.eff.probe, dropped)
            .map_err(|e| Error::Io("cannot start the restorer".into(), e))?;
        Ok(Some(r))
    }

    fn opts_with(&self, letter: u8) -> Vec<usize> {
        (0..self.args.opts.len())
            .filter(|&n| self.args.opts[n].letter == letter)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words `prepare(live)` gives ssh for `words`, read with the real
    /// ssh -G as a run reads them; whether a log reader was started. On a
    /// thread of its own: a prepare or an end that blocks (the FIFO's open,
    /// the log reader's or the restorer's end) fails the test, not hangs it.
    fn prepared(words: &[&str], live: bool) -> (Vec<String>, bool) {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(prepare_and_end(words, live)));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("prepare, the log reader or the restorer did not end")
    }

    fn prepare_and_end(words: Vec<OsString>, live: bool) -> (Vec<String>, bool) {
        let ssh = &release::ssh_under_test();
        let mut eff = crate::effective::query(ssh, &words).unwrap().unwrap();
        let args = release::Readings::new(&words).pick_for(&eff);
        release::fill_in(&mut eff, &args);
        let mut sources = config::sources(last_arg(&args, b'F'));
        sources.argv_split = eff.caps.argv_split_config();
        let mut s = Session::new(&args, &eff, &sources, ssh, false, true);
        let run = s.prepare(live).unwrap();
        let logged = run.log.is_some();
        if let Some(log) = run.log {
            // Without -f nothing waits for the server's answers: the
            // reader ends at once.
            assert!(log.finish(true).is_some());
        }
        if let Some(r) = run.restorer {
            r.stop();
        }
        let words = run
            .words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        (words, logged)
    }

    #[test]
    fn without_forwards_ssh_gets_the_users_words_alone() {
        let w = ["-F", "/dev/null", "h", "true"];
        assert_eq!(prepared(&w, true), (w.map(String::from).to_vec(), false));
    }

    #[test]
    fn a_dry_run_shows_the_users_words_without_the_plumbing() {
        // A listen side surely free: a socket path nobody binds.
        let dir = crate::tmpdir::PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let fwd = format!("{}:localhost:22", dir.path().join("l.sock").display());
        let w = [
            "-F",
            "/dev/null",
            "-L",
            &fwd,
            "-R",
            "8082:localhost:80",
            "h",
        ];
        assert_eq!(prepared(&w, false), (w.map(String::from).to_vec(), false));
        // A live run with kept forwards reads ssh's log through the FIFO.
        let (live, logged) = prepared(&w, true);
        assert!(logged, "{live:?}");
        assert!(
            live.iter().any(|x| x == "ExitOnForwardFailure=no"),
            "{live:?}"
        );
        assert!(live.iter().any(|x| x == "-E"), "{live:?}");
        assert!(live.ends_with(&w.map(String::from)), "{live:?}");
        // LogVerbose only where the release knows it (8.5 on): an older
        // ssh refuses the whole command line for it.
        let words: Vec<OsString> = w.iter().map(OsString::from).collect();
        let eff = crate::effective::query(&release::ssh_under_test(), &words);
        let knows = eff.unwrap().unwrap().caps.log_verbose;
        let forced = live.iter().any(|x| x.starts_with("LogVerbose="));
        assert_eq!(forced, knows, "{live:?}");
    }
}
