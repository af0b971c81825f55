//! The decisions, in order: rosh-ssh's options, the real ssh, the fast
//! path, what ssh will forward, the probe, what to drop, and the run.

use crate::argv::Args;
use crate::child::{self, End};
use crate::cli::{self, Mode};
use crate::config::{self, Sources};
use crate::effective::{self, Effective};
use crate::error::Error;
use crate::forward::{Endpoint, Forward, Kind};
use crate::logpipe::{self, Dest, LogPipe};
use crate::matcher::Failure;
use crate::plan::{Decision, Plan, argv_forwards, probe_forward};
use crate::tmpdir::PrivateDir;
use crate::{check, locate, quote};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs rosh-ssh; the caller ends the process the way the result says.
pub fn run() -> Result<End, Error> {
    let cli = cli::parse(std::env::args_os().skip(1).collect(), |k| {
        std::env::var_os(k)
    })?;
    match &cli.mode {
        Mode::Help => {
            print!("{}", cli::USAGE);
            return Ok(End::Exited(0));
        }
        Mode::Version => {
            println!("rosh-ssh {}", env!("CARGO_PKG_VERSION"));
            return Ok(End::Exited(0));
        }
        Mode::Proxy(words) => {
            let parent = warn_parent_forwards(cli.ssh.as_deref()).unwrap_or_default();
            return crate::proxy::run(words, parent)
                .map(End::Exited)
                .map_err(|e| Error::Proxy(e.to_string()));
        }
        Mode::Check { .. } | Mode::Ssh => {}
    }
    let depth = locate::depth(std::env::var_os(locate::DEPTH_VAR).as_deref());
    if depth >= locate::MAX_DEPTH {
        return Err(Error::Loop(depth));
    }
    let ssh = locate::real_ssh(cli.ssh.as_deref(), std::env::var_os("PATH").as_deref())?;
    if let Mode::Check { remote } = cli.mode {
        return check::run(&ssh, &cli.words, remote);
    }
    let say = Say(cli.verbose);
    say.line(format_args!("real ssh: {}", ssh.display()));
    let args = Args::parse(cli.words.clone());

    if let Some(why) = fast_path(&args) {
        if !cli.dry_run {
            say.line(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(&ssh, &cli.words, depth));
        }
        if why != "no forward options" && !args.error {
            // A mode, or ClearAllForwardings: ssh -G has nothing to say.
            print_command(&ssh, &cli.words);
            return Ok(End::Exited(0));
        }
    }

    let eff = match effective::query(&ssh, &cli.words) {
        Err(e) => return Err(Error::Spawn(ssh, e)),
        Ok(Ok(eff)) => eff,
        Ok(Err(rejected)) => {
            if cli.dry_run {
                let _ = std::io::stderr().write_all(&rejected.stderr);
                return Ok(End::Exited(255));
            }
            // ssh rejects these arguments: let it say so in its own words.
            say.line(format_args!(
                "ssh -G rejected the arguments: exec ssh for its error"
            ));
            return Err(child::exec(&ssh, &cli.words, depth));
        }
    };
    let sources = config::sources(last_arg(&args, b'F'));
    let mut session = Session {
        args: &args,
        eff: &eff,
        sources: &sources,
        dir: None,
        decisions: Plan::make(&args, &eff, &sources).decisions,
        attempt: 0,
    };
    for d in &session.decisions {
        say.line(format_args!(
            "forward {} ({}): {}",
            String::from_utf8_lossy(&d.forward.ssh_g()),
            d.origin(&args),
            d.reason.as_deref().unwrap_or("free")
        ));
    }

    if cli.dry_run {
        let run = session.prepare(false)?;
        print_command(&ssh, &run.words);
        let mut out = std::io::stdout().lock();
        for d in &session.decisions {
            let _ = out.write_all(if d.drop { b"drop " } else { b"keep " });
            let _ = out.write_all(&d.forward.ssh_g());
            let from = d.from_config.as_deref();
            match (&d.reason, from) {
                (Some(r), Some(f)) => {
                    let _ = write!(out, " # {r}; from {f}");
                }
                (Some(r), None) => {
                    let _ = write!(out, " # {r}");
                }
                (None, Some(f)) => {
                    let _ = write!(out, " # from {f}");
                }
                (None, None) => {}
            }
            let _ = out.write_all(b"\n");
        }
        if let Some(top) = &run.config {
            print_copy(&mut out, top, session.dir.as_ref().map(|d| d.path()));
        }
        return Ok(End::Exited(0));
    }

    for d in session.decisions.iter().filter(|d| d.drop) {
        warn(&cli, d);
    }
    if cli.require_forward && session.decisions.iter().any(|d| d.drop) {
        return Ok(End::Exited(255));
    }

    // Every retry drops at least one more forward: at most N+1 runs.
    loop {
        let run = session.prepare(true)?;
        if say.0 {
            let line = quote::line(
                std::iter::once(ssh.as_os_str()).chain(run.words.iter().map(|w| w.as_os_str())),
            );
            say.line(format_args!("running: {}", String::from_utf8_lossy(&line)));
        }
        let end = child::run(child::command(&ssh, &run.words, depth), &ssh)?;
        let outcome = run.log.and_then(LogPipe::finish);
        say.line(format_args!("ssh ended: {}", end.describe()));
        let Some(outcome) = outcome else {
            return Ok(end);
        };
        let fatal = end == End::Exited(255) && outcome.failures.iter().any(logpipe::is_fatal);
        let failed = if fatal {
            session.failed(&outcome.failures)
        } else {
            Vec::new()
        };
        if failed.is_empty() || cli.require_forward {
            outcome.release();
        }
        if failed.is_empty() {
            if fatal {
                say.line(format_args!(
                    "a forward failed but none can be named: not retrying"
                ));
            }
            return Ok(end);
        }
        for &i in &failed {
            let d = &session.decisions[i];
            if cli.require_forward {
                eprintln!(
                    "rosh-ssh: {}: {}; not retrying (--require-forward)",
                    String::from_utf8_lossy(&d.forward.ssh_g()),
                    d.reason.as_deref().unwrap_or("failed")
                );
            } else {
                warn(&cli, d);
            }
        }
        if cli.require_forward {
            return Ok(end);
        }
    }
}

fn warn(cli: &cli::Cli, d: &Decision) {
    let name = String::from_utf8_lossy(&d.forward.ssh_g()).into_owned();
    let reason = d.reason.as_deref().unwrap_or("failed");
    if cli.require_forward {
        eprintln!("rosh-ssh: {name}: {reason}; not connecting (--require-forward)");
    } else {
        eprintln!("rosh-ssh: {name}: {reason}; forward dropped");
    }
}

/// The last value of an option letter (ssh keeps the last -F and -E).
fn last_arg(args: &Args, letter: u8) -> Option<&OsStr> {
    args.opts
        .iter()
        .rev()
        .find(|o| o.letter == letter)
        .and_then(|o| o.arg.as_deref())
}

/// Prints the private config copy for --dry-run, as comments.
fn print_copy(out: &mut impl Write, top: &Path, dir: Option<&Path>) {
    let _ = writeln!(
        out,
        "# -F {} (a private copy, removed on exit):",
        top.display()
    );
    let Some(dir) = dir else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir)
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

/// The state carried across runs of ssh: what was decided, and the private
/// directory the config copies and the log FIFO live in (it lives as long
/// as the ssh child: ProxyJump re-invokes ssh with the same -F).
struct Session<'a> {
    args: &'a Args,
    eff: &'a Effective,
    sources: &'a Sources,
    dir: Option<PrivateDir>,
    decisions: Vec<Decision>,
    attempt: u32,
}

/// One run of ssh, ready to go.
struct Run {
    words: Vec<OsString>,
    config: Option<PathBuf>,
    log: Option<LogPipe>,
}

/// readconf.c: the functions whose messages name a failed forward, forced
/// out with LogVerbose when the user's LogLevel would hide them all.
const FORCED: &str = "ssh.c:ssh_confirm_remote_forward():*,ssh.c:ssh_init_forwarding():*,\
channels.c:channel_setup_fwd_listener_tcpip():*,misc.c:unix_listener():*";

impl Session<'_> {
    fn dir(&mut self) -> Result<&PrivateDir, Error> {
        let d = match self.dir.take() {
            Some(d) => d,
            None => PrivateDir::new()
                .map_err(|e| Error::Io("cannot create a private directory".into(), e))?,
        };
        Ok(self.dir.insert(d))
    }

    /// The words for the next run: dropped forwards cut out of argv, a
    /// config copy without the dropped config lines, and (when ssh would exit
    /// on a forward failure, so a retry can help) ssh's log through a FIFO.
    fn prepare(&mut self, live: bool) -> Result<Run, Error> {
        self.attempt += 1;
        let mut cut: Vec<usize> = Vec::new();
        let mut config_drops: Vec<Forward> = Vec::new();
        for d in self.decisions.iter().filter(|d| d.drop) {
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
        if live && self.watch_log() {
            let dest = match last_arg(self.args, b'E') {
                None => Some(Dest::Stderr),
                // If it can't be opened, ssh says so itself: leave -E alone.
                Some(p) => Dest::file(Path::new(p)).ok(),
            };
            if let Some(dest) = dest {
                let name = format!("log{}", self.attempt);
                let dir = self.dir()?;
                let fifo = dir
                    .fifo(&name)
                    .map_err(|e| Error::Io("cannot make the log FIFO".into(), e))?;
                let quiet = matches!(self.eff.log_level.as_str(), "QUIET" | "SILENT")
                    && self.eff.log_verbose == "none";
                log = Some(
                    LogPipe::start(&fifo, dest, quiet)
                        .map_err(|e| Error::Io("cannot read the log FIFO".into(), e))?,
                );
                cut.extend(self.opts_with(b'E'));
                front.push("-E".into());
                front.push(fifo.into());
                if quiet {
                    front.push("-o".into());
                    front.push(format!("LogVerbose={FORCED}").into());
                }
            }
        }
        let mut words = front;
        words.extend(self.args.without(&cut));
        Ok(Run { words, config, log })
    }

    /// Whether reading ssh's log can lead to a retry: only when ssh exits on
    /// a forward failure, and not when ssh leaves a process behind that
    /// would outlive the FIFO (-f, a ControlPersist master).
    fn watch_log(&self) -> bool {
        self.eff.exit_on_forward_failure
            && !self.eff.fork_after_authentication
            && self.eff.control_persist == "no"
            && self.decisions.iter().any(|d| !d.drop)
    }

    fn opts_with(&self, letter: u8) -> Vec<usize> {
        (0..self.args.opts.len())
            .filter(|&n| self.args.opts[n].letter == letter)
            .collect()
    }

    /// Marks the forwards that ssh's log names as failed; returns their
    /// indexes. A local failure that names no port (LogLevel FATAL) is
    /// found by probing again.
    fn failed(&mut self, failures: &[Failure]) -> Vec<usize> {
        let failures: Vec<Failure> = failures.iter().map(through_master).collect();
        let mut hit: Vec<(usize, String)> = Vec::new();
        let mut local_named = false;
        for f in &failures {
            for (i, d) in self.decisions.iter().enumerate() {
                if d.drop {
                    continue;
                }
                let reason = match (f, &d.forward.kind, &d.forward.listen) {
                    (
                        Failure::RemotePort { port, .. },
                        Kind::Remote,
                        Endpoint::Tcp { port: p, .. },
                    ) if p == port && *p != 0 => {
                        format!("the server refused listen port {port}")
                    }
                    (Failure::RemotePath { path, .. }, Kind::Remote, Endpoint::Path(p))
                        if p == path =>
                    {
                        format!(
                            "the server refused listen path {}",
                            String::from_utf8_lossy(path)
                        )
                    }
                    (
                        Failure::LocalBind { addr, port, reason },
                        Kind::Local | Kind::Dynamic,
                        Endpoint::Tcp { port: p, .. },
                    ) if p == port => {
                        format!(
                            "bind [{}]:{port}: {}",
                            String::from_utf8_lossy(addr),
                            String::from_utf8_lossy(reason)
                        )
                    }
                    (
                        Failure::LocalCannotListen { port },
                        Kind::Local | Kind::Dynamic,
                        Endpoint::Tcp { port: p, .. },
                    ) if p == port => {
                        format!("cannot listen to port {port}")
                    }
                    (
                        Failure::LocalPath { path },
                        Kind::Local | Kind::Dynamic,
                        Endpoint::Path(p),
                    ) if p == path => {
                        format!("cannot bind to path {}", String::from_utf8_lossy(path))
                    }
                    _ => continue,
                };
                if matches!(
                    f,
                    Failure::LocalBind { .. }
                        | Failure::LocalCannotListen { .. }
                        | Failure::LocalPath { .. }
                ) {
                    local_named = true;
                }
                if !hit.iter().any(|(j, _)| *j == i) {
                    hit.push((i, reason));
                }
            }
        }
        if failures.contains(&Failure::LocalNoneSucceeded) && !local_named {
            for (i, d) in self.decisions.iter().enumerate() {
                if d.drop || hit.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                if let Some(reason) = probe_forward(&d.forward, self.eff) {
                    hit.push((i, reason));
                }
            }
        }
        for (i, reason) in &hit {
            let d = &mut self.decisions[*i];
            d.drop = true;
            d.reason = Some(reason.clone());
        }
        hit.into_iter().map(|(i, _)| i).collect()
    }
}

/// mux.c: through a ControlMaster a failure comes back as the master's
/// reason: `remote port forwarding failed for listen port N` (or `listen
/// path P`) for a remote forward, `Port forwarding failed` for a local one.
fn through_master(f: &Failure) -> Failure {
    let Failure::Mux { reason } = f else {
        return f.clone();
    };
    let after =
        |needle: &[u8]| memchr::memmem::find(reason, needle).map(|i| &reason[i + needle.len()..]);
    if let Some(rest) = after(b"listen port ") {
        let digits: Vec<u8> = rest
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        if let Some(port) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
        {
            return Failure::RemotePort { port, fatal: true };
        }
    }
    if let Some(path) = after(b"listen path ") {
        return Failure::RemotePath {
            path: path.to_vec(),
            fatal: true,
        };
    }
    if after(b"Port forwarding failed").is_some() {
        return Failure::LocalNoneSucceeded;
    }
    f.clone()
}

/// `--verbose` lines on stderr.
struct Say(bool);

impl Say {
    fn line(&self, args: std::fmt::Arguments<'_>) {
        if self.0 {
            eprintln!("rosh-ssh: {args}");
        }
    }
}

fn print_command(ssh: &Path, words: &[OsString]) {
    let mut line =
        quote::line(std::iter::once(ssh.as_os_str()).chain(words.iter().map(|w| w.as_os_str())));
    line.push(b'\n');
    let _ = std::io::stdout().write_all(&line);
}

/// Why nothing can set up a forward, if so: then the real ssh is exec'd
/// directly, with no child, no pipe and no extra process.
fn fast_path(args: &Args) -> Option<&'static str> {
    if args.error {
        return Some("ssh will print its usage");
    }
    // ssh.c: -G prints the config, -V and -Q print and exit, -O talks to a
    // running master; none of them sets up a forward.
    if [b'G', b'V', b'Q', b'O'].iter().any(|&l| args.has(l)) {
        return Some("a mode that sets up no forward");
    }
    // The first value ssh obtains for an option is the one it keeps.
    let clear = args.first_option("clearallforwardings");
    if clear.is_some_and(|v| v.first().is_some_and(|v| v.eq_ignore_ascii_case(b"yes"))) {
        return Some("ClearAllForwardings=yes");
    }
    if argv_forwards(args).is_empty()
        && !config::mentions_forward(&config::sources(last_arg(args, b'F')))
    {
        return Some("no forward options");
    }
    None
}

/// Proxy mode can't rewrite the forwards of the ssh that started it, but it
/// can see them: the parent's arguments (/proc/PPID/cmdline) and effective
/// config (`ssh -G`). One line per local forward that will fail, naming the
/// holder, before ssh tries. Anything unclear is skipped in silence: the
/// connection matters more than the warning. Returns the parent's
/// ConnectTimeout, which ssh passes to no ProxyCommand token, and its
/// AddressFamily.
fn warn_parent_forwards(explicit: Option<&OsStr>) -> Option<crate::proxy::Parent> {
    let ssh = locate::real_ssh(explicit, std::env::var_os("PATH").as_deref()).ok()?;
    let words = parent_ssh_words(&ssh)?;
    let args = Args::parse(words.clone());
    if args.error {
        return None;
    }
    let Ok(Ok(eff)) = effective::query(&ssh, &words) else {
        return None;
    };
    let sources = config::sources(last_arg(&args, b'F'));
    for d in Plan::make(&args, &eff, &sources)
        .decisions
        .iter()
        .filter(|d| d.drop)
    {
        eprintln!(
            "rosh-ssh: {}: {}; ssh will fail to listen there",
            String::from_utf8_lossy(&d.forward.ssh_g()),
            d.reason.as_deref().unwrap_or("busy")
        );
    }
    Some(crate::proxy::Parent {
        connect_timeout: eff.connect_timeout,
        family: eff.probe.family,
    })
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
