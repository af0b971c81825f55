//! The decisions, in order: rosh-ssh's options, the real ssh, the fast
//! path, what ssh will forward, the probe, what to drop, and the run.

use crate::argv::Args;
use crate::child::{self, End};
use crate::cli::{self, Mode};
use crate::config;
use crate::effective;
use crate::error::Error;
use crate::launch::{Session, last_arg};
use crate::plan::{Plan, argv_forwards};
use crate::{blame, check, describe, locate, ownmaster, quote, release};
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
        return check::run(&ssh, &cli.words, remote, cli.dry_run);
    }
    let say = Say(cli.verbose);
    say.line(format_args!("real ssh: {}", ssh.display()));
    // ssh's grammar is its release's, unknown before ssh -G: the words are
    // read with each (one reading unless -P or -Z is among the options),
    // and ssh is exec'd unasked only when every reading says so.
    let readings = release::Readings::new(&cli.words);
    let fast: Vec<Option<&str>> = readings.all().iter().map(fast_path).collect();
    if fast.iter().all(Option::is_some) {
        let why = fast[0].unwrap_or_default();
        if !cli.dry_run {
            say.line(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(&ssh, &cli.words, depth));
        }
        let mut modes = readings.all().iter().zip(&fast);
        if modes.all(|(a, w)| *w != Some("no forward options") && !a.error) {
            // A mode, or ClearAllForwardings: ssh -G has nothing to say.
            print_command(&ssh, &cli.words);
            return Ok(End::Exited(0));
        }
    }

    let mut eff = match effective::query(&ssh, &cli.words) {
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
    // The reading of this release; with -P or -Z it may be a fast one.
    let pick = readings.pick(&eff);
    let args = readings.take(pick);
    release::fill_in(&mut eff, &args);
    say.line(format_args!("OpenSSH {} or later", eff.caps.at_least()));
    if let Some(why) = fast.get(pick).copied().flatten() {
        if !cli.dry_run {
            say.line(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(&ssh, &cli.words, depth));
        }
        if why != "no forward options" {
            print_command(&ssh, &cli.words);
            return Ok(End::Exited(0));
        }
    }
    let mut sources = config::sources(last_arg(&args, b'F'));
    sources.argv_split = eff.caps.argv_split_config();
    let mut session = Session::new(
        &args,
        &eff,
        &sources,
        &ssh,
        cli.require_forward,
        !cli.no_restore,
    );
    for i in ownmaster::keep_held(&ssh, &eff, &mut session.decisions) {
        say.line(format_args!(
            "forward {}: held by this host's ControlMaster",
            describe::forward(&session.decisions[i], &args)
        ));
    }
    for d in &session.decisions {
        say.line(format_args!(
            "forward {}",
            describe::with_reason(d, &args, describe::unprobed(d))
        ));
    }

    if cli.dry_run {
        let run = session.prepare(false)?;
        print_command(&ssh, &run.words);
        let mut out = std::io::stdout().lock();
        for d in &session.decisions {
            let _ = out.write_all(if d.verdict.drops() {
                b"drop "
            } else {
                b"keep "
            });
            let _ = out.write_all(describe::forward(d, &args).as_bytes());
            if let Some(r) = d.verdict.reason() {
                let _ = write!(out, " # {r}");
            }
            let _ = out.write_all(b"\n");
        }
        if let Some(top) = &run.config {
            print_copy(&mut out, top, session.dir.as_ref().map(|d| d.path()));
        }
        return Ok(End::Exited(0));
    }

    for d in session.decisions.iter().filter(|d| d.verdict.drops()) {
        let reason = d.verdict.reason().unwrap_or_default();
        let name = describe::forward(d, &args);
        eprintln!("{}", blame::warning(&name, &reason, cli.require_forward));
    }
    if cli.require_forward && session.decisions.iter().any(|d| d.verdict.drops()) {
        return Ok(End::Exited(255));
    }

    // One run, one login: a forward that fails from here on costs the
    // forward and one line, never the connection.
    let signals = child::Signals::block()?;
    let run = session.prepare(true)?;
    if say.0 {
        let line = quote::line(
            std::iter::once(ssh.as_os_str()).chain(run.words.iter().map(|w| w.as_os_str())),
        );
        say.line(format_args!("running: {}", String::from_utf8_lossy(&line)));
    }
    let end = child::run(child::command(&ssh, &run.words, depth), &ssh, &signals)?;
    let outcome = run.log.and_then(|l| l.finish(end == End::Exited(0)));
    if let Some(r) = run.restorer {
        r.stop();
    }
    say.line(format_args!("ssh ended: {}", end.describe()));
    let live = outcome.iter().flat_map(|o| &o.failed);
    for &i in live.filter(|&&i| !session.decisions[i].verdict.drops()) {
        say.line(format_args!(
            "failed after connecting: {}",
            describe::forward(&session.decisions[i], &args)
        ));
    }
    Ok(end)
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
    // running master, -Z (10.5) prints the keys ssh would offer and exits;
    // none of them sets up a forward of its own. (-Z riding a live master
    // is a session through it, as plain ssh makes it: exec'd all the same.)
    if [b'G', b'V', b'Q', b'O', b'Z'].iter().any(|&l| args.has(l)) {
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
    let readings = release::Readings::new(&words);
    if readings.all().iter().all(|a| a.error) {
        return None;
    }
    let Ok(Ok(eff)) = effective::query(&ssh, &words) else {
        return None;
    };
    let args = readings.pick_for(&eff);
    let mut sources = config::sources(last_arg(&args, b'F'));
    sources.argv_split = eff.caps.argv_split_config();
    for d in Plan::make(&args, &eff, &sources)
        .decisions
        .iter()
        .filter(|d| d.verdict.drops())
    {
        eprintln!(
            "rosh-ssh: {}; ssh will fail to listen there",
            describe::with_reason(d, &args, "busy")
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
