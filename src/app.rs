//! The decisions, in order: rosh-ssh's options, the real ssh, the fast
//! path, what ssh will forward, the probe, what to drop, and the run.

use crate::argv::Args;
use crate::child::{self, End};
use crate::cli::{self, Mode};
use crate::effective::{self, Effective};
use crate::error::Error;
use crate::forward::{self, Forward, Kind};
use crate::probe::{self, Busy};
use crate::{locate, quote};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
        Mode::Proxy(_) | Mode::Check { .. } => {
            return Err(Error::Usage("this mode is not available yet".into()));
        }
        Mode::Ssh => {}
    }
    let depth = locate::depth(std::env::var_os(locate::DEPTH_VAR).as_deref());
    if depth >= locate::MAX_DEPTH {
        return Err(Error::Loop(depth));
    }
    let ssh = locate::real_ssh(cli.ssh.as_deref(), std::env::var_os("PATH").as_deref())?;
    let say = Say(cli.verbose);
    say.line(format_args!("real ssh: {}", ssh.display()));
    let args = Args::parse(cli.words.clone());

    if let Some(why) = fast_path(&args) {
        if !cli.dry_run {
            say.line(format_args!("fast path ({why}): exec {}", ssh.display()));
            return Err(child::exec(child::command(&ssh, &cli.words, depth), &ssh));
        }
        if why != "no forward options" {
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
            return Err(child::exec(child::command(&ssh, &cli.words, depth), &ssh));
        }
    };

    let plan = Plan::make(&args, &eff);
    for d in &plan.decisions {
        say.line(format_args!(
            "forward {} ({}): {}",
            String::from_utf8_lossy(&d.forward.ssh_g()),
            d.origin(&args),
            d.busy
                .as_ref()
                .map_or("free".to_string(), |b| b.to_string())
        ));
    }
    let words = args.without(&plan.dropped_opts());

    if cli.dry_run {
        print_command(&ssh, &words);
        let mut out = std::io::stdout().lock();
        for d in &plan.decisions {
            let _ = out.write_all(if d.drop { b"drop " } else { b"keep " });
            let _ = out.write_all(&d.forward.ssh_g());
            if let Some(b) = &d.busy {
                let _ = write!(out, " # {b}");
                if !d.drop {
                    let _ = write!(out, " (from ssh_config: kept)");
                }
            }
            let _ = out.write_all(b"\n");
        }
        return Ok(End::Exited(0));
    }

    for d in plan.decisions.iter().filter(|d| d.busy.is_some()) {
        let busy = d.busy.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let name = String::from_utf8_lossy(&d.forward.ssh_g()).into_owned();
        if cli.require_forward {
            eprintln!("rosh-ssh: {name}: {busy}; not connecting (--require-forward)");
        } else if d.drop {
            eprintln!("rosh-ssh: {name}: {busy}; forward dropped");
        } else {
            eprintln!("rosh-ssh: {name}: {busy}; it comes from ssh_config and is kept");
        }
    }
    if cli.require_forward && plan.decisions.iter().any(|d| d.busy.is_some()) {
        return Ok(End::Exited(255));
    }

    if say.0 {
        let line = quote::line(
            std::iter::once(ssh.as_os_str()).chain(words.iter().map(|w| w.as_os_str())),
        );
        say.line(format_args!("running: {}", String::from_utf8_lossy(&line)));
    }
    let end = child::run(child::command(&ssh, &words, depth), &ssh)?;
    say.line(format_args!("ssh ended: {}", end.describe()));
    Ok(end)
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
    if argv_forwards(args).is_empty() {
        return Some("no forward options");
    }
    None
}

/// The forwards written on the command line: (index into `args.opts`, forward).
/// What does not parse is left out: ssh -G has already accepted the words,
/// so such an option is ssh's business.
pub fn argv_forwards(args: &Args) -> Vec<(usize, Forward)> {
    let mut out = Vec::new();
    for (n, o) in args.opts.iter().enumerate() {
        let f = match (o.letter, &o.arg) {
            (b'L' | b'R' | b'D', Some(a)) => forward::parse_arg(o.letter, a.as_bytes()),
            _ => None,
        };
        if let Some(f) = f {
            out.push((n, f));
        }
    }
    for (n, line) in args.config_options() {
        let kind = match line.keyword.as_slice() {
            b"localforward" => Kind::Local,
            b"remoteforward" => Kind::Remote,
            b"dynamicforward" => Kind::Dynamic,
            _ => continue,
        };
        let a: Vec<&[u8]> = line.args.iter().map(|a| a.as_slice()).collect();
        if let Some(f) = forward::parse_keyword(kind, &a) {
            out.push((n, f));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out
}

/// One forward ssh will set up, and what rosh-ssh makes of it.
struct Decision {
    forward: Forward,
    /// The command-line options that ask for it (indexes into `args.opts`).
    opts: Vec<usize>,
    busy: Option<Busy>,
    drop: bool,
}

impl Decision {
    fn origin(&self, args: &Args) -> String {
        if self.opts.is_empty() {
            return "ssh_config".into();
        }
        let spelled: Vec<String> = self
            .opts
            .iter()
            .map(|&n| {
                let o = &args.opts[n];
                let a = o.arg.as_deref().unwrap_or(OsStr::new(""));
                format!("-{} {}", o.letter as char, a.to_string_lossy())
            })
            .collect();
        format!("command line {}", spelled.join(", "))
    }
}

struct Plan {
    decisions: Vec<Decision>,
}

impl Plan {
    fn make(args: &Args, eff: &Effective) -> Plan {
        let from_argv = argv_forwards(args);
        let decisions = eff
            .forwards
            .iter()
            .map(|f| {
                let opts: Vec<usize> = from_argv
                    .iter()
                    .filter(|(_, g)| g.ssh_equals(f))
                    .map(|(n, _)| *n)
                    .collect();
                let busy = probe_forward(f, eff);
                let drop = busy.is_some() && !opts.is_empty();
                Decision {
                    forward: f.clone(),
                    opts,
                    busy,
                    drop,
                }
            })
            .collect();
        Plan { decisions }
    }

    fn dropped_opts(&self) -> Vec<usize> {
        self.decisions
            .iter()
            .filter(|d| d.drop)
            .flat_map(|d| d.opts.iter().copied())
            .collect()
    }
}

/// The probe for one forward's local listen side; remote forwards listen on
/// the server and can only fail after connecting.
fn probe_forward(f: &Forward, eff: &Effective) -> Option<Busy> {
    if let Some((host, port)) = f.local_tcp_listen() {
        return probe::tcp(host, port, &eff.probe).err();
    }
    if let Some(p) = f.local_path_listen() {
        return probe::path(p, &eff.probe).err();
    }
    None
}
