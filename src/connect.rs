//! The ssh mode, in order: the fast path, what ssh will forward (`ssh -G`, or
//! its answer remembered: memo.rs), the probe, the policy, what to drop,
//! ssh's words, and the supervised run.

use crate::argv::Args;
use crate::blame::Refusal;
use crate::blame::{self, When};
use crate::child::{self, End};
use crate::cli::Cli;
use crate::config::{self, Config, Sources};
use crate::effective::{self, Effective};
use crate::error::Error;
use crate::events::Signals;
use crate::forward::Kind;
use crate::launch::{self, Dirs};
use crate::plan::{Plan, argv_forwards};
use crate::policy::{Inputs, Policy, Restore};
use crate::say::{Level, Say};
use crate::supervise::log::{Dest, Failed, LogReader, Watch};
use crate::supervise::restore::{Item, Restorer};
use crate::supervise::{self, Parts, Report};
use crate::{describe, memo, ownmaster, quote, release};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs ssh with `cli.words` through the real ssh `ssh`.
pub fn run(cli: &Cli, ssh: &Path) -> Result<End, Error> {
    let mut say = Say::new(cli.verbose);
    say.verbose(format_args!("real ssh: {}", ssh.display()));
    // ssh's grammar is its release's, unknown before ssh -G: the words are
    // read with each (one reading unless -P or -Z is among the options),
    // and ssh is exec'd unasked only when every reading says so.
    let readings = release::Readings::new(&cli.words);
    let mut trees = Trees::default();
    let fast: Vec<Option<FastPath>> = readings
        .all()
        .iter()
        .map(|a| fast_path(a, || trees.get(&config::sources(a.last_arg(b'F')))))
        .collect();
    if fast.iter().all(Option::is_some) {
        let why = fast[0].unwrap_or(FastPath::NoForwards);
        if !cli.dry_run {
            say.verbose(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(ssh, &cli.words));
        }
        if fast
            .iter()
            .all(|w| matches!(w, Some(FastPath::Mode | FastPath::ClearAllForwardings)))
        {
            // ssh -G has nothing to say. (A usage error is shown below, in
            // ssh's words.)
            print_command(ssh, &cli.words);
            return Ok(End::Exited(0));
        }
    }
    // Every reading's files, for the memo's key (one tree, as a rule).
    for a in readings.all() {
        trees.get(&config::sources(a.last_arg(b'F')));
    }
    let mut note = |line: String| say.verbose(format_args!("{line}"));
    let mut eff = match memo::query(ssh, &cli.words, &trees.0, &mut note) {
        Err(e) => return Err(Error::Spawn(ssh.to_path_buf(), e)),
        Ok(Ok(eff)) => eff,
        Ok(Err(rejected)) => {
            if cli.dry_run {
                let _ = std::io::stderr().write_all(&rejected.stderr);
                return Ok(End::Exited(255));
            }
            // ssh rejects these arguments: let it say so in its own words.
            say.verbose(format_args!(
                "ssh -G rejected the arguments: exec ssh for its error"
            ));
            return Err(child::exec(ssh, &cli.words));
        }
    };
    // The reading of this release; with -P or -Z it may be a fast one.
    let pick = readings.pick(&eff);
    let args = readings.take(pick);
    release::fill_in(&mut eff, &args);
    say.verbose(format_args!("OpenSSH {} or later", eff.caps.at_least()));
    if let Some(why) = fast.get(pick).copied().flatten() {
        if !cli.dry_run {
            say.verbose(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(ssh, &cli.words));
        }
        if why != FastPath::NoForwards {
            print_command(ssh, &cli.words);
            return Ok(End::Exited(0));
        }
    }
    say.level = Level::of(&eff.log_level);
    // Read with this release's line grammar (again only before 8.7).
    let mut sources = config::sources(args.last_arg(b'F'));
    sources.argv_split = eff.caps.argv_split_config();
    let config = trees.take(&sources);
    let run = Decided::new(cli, ssh, args, eff, config, say);
    if cli.dry_run {
        run.dry_run()
    } else {
        run.live()
    }
}

/// The config trees a run has read, by what they were read from: the fast
/// path's look and the plan share one read (two only when the readings of
/// the words differ in `-F`, or when the release splits lines the old way).
#[derive(Default)]
struct Trees(Vec<(Sources, Config)>);

impl Trees {
    fn get(&mut self, src: &Sources) -> &Config {
        let at = match self.0.iter().position(|(s, _)| s == src) {
            Some(at) => at,
            None => {
                self.0.push((src.clone(), Config::load(src)));
                self.0.len() - 1
            }
        };
        &self.0[at].1
    }

    fn take(&mut self, src: &Sources) -> Config {
        match self.0.iter().position(|(s, _)| s == src) {
            Some(at) => self.0.swap_remove(at).1,
            None => Config::load(src),
        }
    }
}

/// A run once `ssh -G` has spoken: the plan, each forward's name as the
/// user wrote it, and the policy.
struct Decided<'a> {
    ssh: &'a Path,
    args: Args,
    eff: Effective,
    config: Config,
    plan: Plan,
    names: Vec<String>,
    policy: Policy,
    say: Say,
}

impl<'a> Decided<'a> {
    fn new(
        cli: &Cli,
        ssh: &'a Path,
        args: Args,
        mut eff: Effective,
        config: Config,
        say: Say,
    ) -> Decided<'a> {
        // The live master on the ControlPath, asked once: a port the
        // master this ssh rides holds is no conflict (its fds are looked at
        // first), and the policy knows where a restore can go.
        let master = ownmaster::master(&eff);
        let rides = ownmaster::rides(&eff);
        if rides {
            eff.probe.look_first = master;
        }
        let mut plan = Plan::make(&args, &eff, &config, ssh);
        if let Some(pid) = master.filter(|_| rides) {
            plan.keep_held_by(pid);
        }
        let names: Vec<String> = plan
            .decisions
            .iter()
            .map(|d| describe::forward(d, &args))
            .collect();
        for (d, name) in plan.decisions.iter().zip(&names) {
            say.verbose(format_args!("forward {name}: {}", describe::state(d)));
        }
        let kept = || plan.decisions.iter().filter(|d| !d.verdict.drops());
        let policy = Policy::decide(&Inputs {
            require: cli.require_forward,
            restore: !cli.no_restore,
            eff: &eff,
            dash_s: args.has(b'S'),
            master,
            dropped: plan.decisions.iter().any(|d| d.verdict.drops()),
            kept: kept().count(),
            kept_remote: kept().filter(|d| d.forward.kind == Kind::Remote).count(),
        });
        if let Restore::No(why) = &policy.restore {
            say.verbose(format_args!("restore: no ({why:?})"));
        }
        Decided {
            ssh,
            args,
            eff,
            config,
            plan,
            names,
            policy,
            say,
        }
    }

    /// `--dry-run`: the command line, then each forward's fate.
    fn dry_run(&self) -> Result<End, Error> {
        let mut dirs = Dirs::default();
        let plan = &self.plan;
        let w = launch::words(
            &self.args,
            plan,
            &self.config,
            &self.policy,
            &mut dirs,
            false,
            false,
        )?;
        print_command(self.ssh, &w.words);
        let mut out = std::io::stdout().lock();
        for (d, name) in plan.decisions.iter().zip(&self.names) {
            let fate: &[u8] = if d.verdict.drops() {
                b"drop "
            } else {
                b"keep "
            };
            let _ = out.write_all(fate);
            let _ = out.write_all(name.as_bytes());
            if let Some(r) = describe::reason(&d.verdict) {
                let _ = write!(out, " # {r}");
            }
            let _ = out.write_all(b"\n");
        }
        if let Some(top) = &w.config {
            print_copy(&mut out, top, dirs.main.as_ref().map(|d| d.path()));
        }
        Ok(End::Exited(0))
    }

    /// One line per dropped forward; whether the run is refused for it
    /// (`--require-forward`).
    fn refused(&self) -> bool {
        let mut dropped = false;
        for (d, name) in self.plan.decisions.iter().zip(&self.names) {
            if !d.verdict.drops() {
                continue;
            }
            dropped = true;
            let reason = describe::reason(&d.verdict).unwrap_or_default();
            let require = self.policy.refuse_if_dropped;
            let line = blame::warning(name, &reason, require, When::Probe);
            if require {
                self.say.fatal(&line);
            } else {
                self.say.forward(&line);
            }
        }
        dropped && self.policy.refuse_if_dropped
    }

    /// The run: ssh supervised, one connection and one login, whatever
    /// fails from here on costing that forward and one line.
    fn live(&self) -> Result<End, Error> {
        if self.refused() {
            return Ok(End::Exited(255));
        }
        // Signals first: no SIGCHLD of the children below goes missing.
        let signals =
            Signals::install().map_err(|e| Error::Io("cannot handle signals".into(), e))?;
        let dest = if self.policy.read_log {
            match self.args.last_arg(b'E') {
                None => Some(Dest::Stderr),
                // If it can't be opened, ssh says so itself: leave -E alone.
                Some(p) => Dest::file(Path::new(p)).ok(),
            }
        } else {
            None
        };
        let mut dirs = Dirs::default();
        let w = launch::words(
            &self.args,
            &self.plan,
            &self.config,
            &self.policy,
            &mut dirs,
            true,
            dest.is_some(),
        )?;
        let log = match (w.fifo.as_deref(), dest) {
            (Some(fifo), Some(dest)) => Some(
                LogReader::open(fifo, dest, self.watch())
                    .map_err(|e| Error::Io("cannot read the log FIFO".into(), e))?,
            ),
            _ => None,
        };
        let restorer = w.ctl.clone().map(|ctl| self.restorer(ctl));
        let answers_wanted = match self.policy.wait_answers {
            true => self
                .plan
                .decisions
                .iter()
                .filter(|d| !d.verdict.drops() && d.forward.kind == Kind::Remote)
                .count(),
            false => 0,
        };
        if self.say.verbose {
            let line = quote::line(
                std::iter::once(self.ssh.as_os_str()).chain(w.words.iter().map(|w| w.as_os_str())),
            );
            self.say
                .verbose(format_args!("running: {}", String::from_utf8_lossy(&line)));
        }
        let mut lines = Lines {
            say: &self.say,
            names: &self.names,
            require: self.policy.refuse_if_dropped,
            restoring: restorer.is_some(),
        };
        let parts = Parts {
            log,
            restorer,
            answers_wanted,
        };
        let outcome = supervise::run(
            child::command(self.ssh, &w.words),
            signals,
            parts,
            &mut lines,
        )
        .map_err(|e| Error::Spawn(self.ssh.to_path_buf(), e))?;
        self.say
            .verbose(format_args!("ssh ended: {}", outcome.end.describe()));
        for &i in &outcome.failed {
            if !self.plan.decisions[i].verdict.drops() {
                let name = &self.names[i];
                self.say
                    .verbose(format_args!("failed after connecting: {name}"));
            }
        }
        drop(dirs);
        Ok(outcome.end)
    }

    /// What the log reader watches for.
    fn watch(&self) -> Watch {
        let plan = &self.plan;
        Watch {
            forwards: plan.decisions.iter().map(|d| d.forward.clone()).collect(),
            reported: (0..plan.decisions.len())
                .filter(|&i| plan.decisions[i].verdict.drops())
                .collect(),
            probe: self.eff.probe,
            hide_forced: self.policy.hide_forced,
        }
    }

    /// The restorer on control socket `ctl`, with the dropped forwards.
    fn restorer(&self, ctl: PathBuf) -> Restorer {
        let mut r = Restorer::new(self.ssh.to_path_buf(), ctl, self.eff.probe);
        for (index, d) in self.plan.decisions.iter().enumerate() {
            if d.verdict.drops() {
                r.add(Item {
                    index,
                    forward: d.forward.clone(),
                    cancel: false,
                    holder: d.verdict.holder_pid(),
                    addrs: None,
                });
            }
        }
        r
    }
}

/// rosh-ssh's lines about what the supervisor saw.
struct Lines<'a> {
    say: &'a Say,
    names: &'a [String],
    require: bool,
    /// Dropped forwards are restored: a partly bound one is completed.
    restoring: bool,
}

impl Report for Lines<'_> {
    fn failed(&mut self, f: &Failed) {
        let line = blame::after_connecting(
            self.names,
            f.index,
            &f.refusal,
            self.require,
            self.restoring,
        );
        // A partly bound forward is no failure to ssh, whatever
        // ExitOnForwardFailure says; any other ends the run when required.
        if self.require && !matches!(f.refusal, Refusal::Partial { .. }) {
            self.say.fatal(&line);
        } else {
            self.say.forward(&line);
        }
    }

    fn restored(&mut self, index: usize) {
        let name = self.names.get(index).map_or("", String::as_str);
        self.say.forward(&blame::restored(name));
    }
}

/// Why nothing can set up a forward, if so: then the real ssh is exec'd
/// directly, with no child, no pipe and no extra process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPath {
    /// ssh will print its usage.
    Usage,
    /// `-G`, `-V`, `-Q`, `-O`, `-Z`: a mode that sets up no forward.
    Mode,
    ClearAllForwardings,
    /// Neither the words nor any config file ssh reads asks for a forward.
    NoForwards,
}

impl std::fmt::Display for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FastPath::Usage => "ssh will print its usage",
            FastPath::Mode => "a mode that sets up no forward",
            FastPath::ClearAllForwardings => "ClearAllForwardings=yes",
            FastPath::NoForwards => "no forward options",
        })
    }
}

/// The fast path's reason, if any; `config` reads the config files only
/// when the words alone can't tell.
fn fast_path<'a>(args: &Args, config: impl FnOnce() -> &'a Config) -> Option<FastPath> {
    if args.error {
        return Some(FastPath::Usage);
    }
    // ssh.c: -G prints the config, -V and -Q print and exit, -O talks to a
    // running master, -Z (10.5) prints the keys ssh would offer and exits;
    // none of them sets up a forward of its own. (-Z riding a live master
    // is a session through it, as plain ssh makes it: exec'd all the same.)
    if [b'G', b'V', b'Q', b'O', b'Z'].iter().any(|&l| args.has(l)) {
        return Some(FastPath::Mode);
    }
    // The first value ssh obtains for an option is the one it keeps.
    let clear = args.first_option("clearallforwardings");
    if clear.is_some_and(|v| v.first().is_some_and(|v| v.eq_ignore_ascii_case(b"yes"))) {
        return Some(FastPath::ClearAllForwardings);
    }
    if argv_forwards(args).is_empty() && !config().mentions_forward() {
        return Some(FastPath::NoForwards);
    }
    None
}

fn print_command(ssh: &Path, words: &[OsString]) {
    let mut line =
        quote::line(std::iter::once(ssh.as_os_str()).chain(words.iter().map(|w| w.as_os_str())));
    line.push(b'\n');
    let _ = std::io::stdout().write_all(&line);
}

/// Prints the private config copy for --dry-run, as comments.
fn print_copy(out: &mut impl Write, top: &Path, dir: Option<&Path>) {
    let _ = writeln!(
        out,
        "# -F {} (a private copy, removed on exit):",
        top.display()
    );
    let Some(dir) = dir else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let _ = writeln!(out, "# {}:", f.display());
        for line in std::fs::read(&f)
            .unwrap_or_default()
            .split_inclusive(|&b| b == b'\n')
        {
            let _ = out.write_all(b"#   ");
            let _ = out.write_all(line);
            if !line.ends_with(b"\n") {
                let _ = out.write_all(b"\n");
            }
        }
    }
}

/// Proxy mode can't rewrite the forwards of the ssh that started it, but it
/// can see them: the parent's arguments and effective config (`ssh -G`).
/// One line per local forward that will fail, naming the holder, before
/// ssh tries. Anything unclear is skipped in silence: the connection
/// matters more than the warning. Returns the parent's ConnectTimeout,
/// which ssh passes to no ProxyCommand token, and its AddressFamily.
pub fn warn_parent_forwards(ssh: &Path, words: Vec<OsString>) -> Option<crate::proxy::Parent> {
    let readings = release::Readings::new(&words);
    if readings.all().iter().all(|a| a.error) {
        return None;
    }
    let Ok(Ok(eff)) = effective::query(ssh, &words) else {
        return None;
    };
    let args = readings.pick_for(&eff);
    let mut sources = config::sources(args.last_arg(b'F'));
    sources.argv_split = eff.caps.argv_split_config();
    let config = Config::load(&sources);
    let say = Say {
        level: Level::of(&eff.log_level),
        verbose: false,
    };
    for d in Plan::make(&args, &eff, &config, ssh)
        .decisions
        .iter()
        .filter(|d| d.verdict.drops())
    {
        say.forward(&format!(
            "rosh-ssh: {}; ssh will fail to listen there",
            describe::with_reason(d, &args, "busy")
        ));
    }
    Some(crate::proxy::Parent {
        connect_timeout: eff.connect_timeout,
        family: eff.probe.family,
    })
}
