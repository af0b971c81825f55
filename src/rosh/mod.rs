//! The `rosh` function's engine, `rosh-ssh --rosh`: the function loops, and
//! each turn of its loop is one attempt made here, which exits [`AGAIN`]
//! when the loop should go on.
//!
//! ```text
//! rosh-ssh --rosh                          make a new loop's state directory, print its path
//! rosh-ssh --rosh STATE [rosh arguments]   one attempt; exit 75: run it again
//! rosh-ssh --rosh --up STATE               (ssh's LocalCommand: logged in)
//! ```
//!
//! One attempt: read rosh's options (options.rs), ask `ssh -G` which of
//! rosh's defaults the user left to rosh (defaults.rs), put the terminal's
//! mode back (tty.rs), run rosh-ssh with ssh's words and the remote script
//! (remote.rs; on reattach it ends the loop's previous connection's sshd
//! first, stale.rs), watch ssh's standard error on the way (watch.rs, run.rs),
//! judge the end (outcome.rs), and either end the loop (the terminal put
//! back, the state removed) or pause (backoff.rs) and ask for another.

mod backoff;
mod defaults;
mod options;
mod outcome;
mod remote;
mod run;
mod stale;
mod state;
mod tty;
mod watch;

use crate::argv::Args;
use crate::child::End;
use defaults::Defaults;
use options::{Options, Parsed, Usage};
use outcome::{Attempt, Next, Verdict, Words};
use remote::Tool;
use state::State;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Command;
use watch::Watch;

/// The exit status that asks the shell loop for another attempt
/// (sysexits.h EX_TEMPFAIL). The loop ends on any other, and when the state
/// directory is gone: a remote command that exits 75 ends it too.
pub const AGAIN: i32 = 75;

/// Forced out where the user's LogLevel hides ssh's `Connection to HOST
/// closed.`: the session channel freed at the end of a loop ended here
/// (watch.rs).
const FORCED: &str = "LogVerbose=channels.c:channel_free():*";

/// Runs the words after `--rosh`; returns the exit status.
pub fn run(words: Vec<OsString>, ssh: Option<&OsStr>) -> i32 {
    match words.split_first() {
        None => new_loop(),
        Some((w, rest)) if w == "--up" => logged_in(rest),
        Some((dir, args)) => attempt(Path::new(dir), args, ssh),
    }
}

fn say(what: impl std::fmt::Display) {
    eprintln!("rosh: {what}");
}

fn new_loop() -> i32 {
    match State::create() {
        Ok(p) => {
            let mut line = p.into_os_string().into_vec();
            line.push(b'\n');
            let _ = std::io::stdout().write_all(&line);
            0
        }
        Err(e) => {
            say(format_args!("cannot make the loop's state directory: {e}"));
            255
        }
    }
}

/// ssh's LocalCommand: logged in. The mark, and the keys typed while ssh
/// waited for the link dropped before the session reads the terminal.
fn logged_in(rest: &[OsString]) -> i32 {
    let [dir] = rest else { return 2 };
    let Ok(st) = State::open(Path::new(dir)) else {
        return 1;
    };
    let _ = std::fs::File::create(st.up_mark());
    if tty::is_terminal() {
        tty::flush_input();
    }
    0
}

fn attempt(dir: &Path, args: &[OsString], ssh: Option<&OsStr>) -> i32 {
    let mut st = match State::open(dir) {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return 255;
        }
    };
    let mut opts = match options::parse(args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{}", options::help());
            st.remove();
            return 0;
        }
        Err(Usage(lines)) => {
            lines.iter().for_each(say);
            st.remove();
            return 2;
        }
    };
    // ROSH_END_SSHD=0 is --keep-sshd (read as every ROSH_* switch is;
    // app.rs refused a bad value before this mode ran).
    match crate::switch::read(|k| std::env::var_os(k)) {
        Ok(s) => opts.keep_sshd |= !s.end_sshd,
        Err(e) => {
            say(e);
            st.remove();
            return 255;
        }
    }
    if st.attempts == 0 {
        st.tty = tty::save();
    }
    let next = one(&mut st, &opts, ssh).unwrap_or_else(|e| {
        say(e);
        Next::End(255)
    });
    match next {
        Next::Again(_) => AGAIN,
        Next::End(code) => {
            if let Some(t) = &st.tty {
                tty::restore(t);
            }
            st.remove();
            code
        }
    }
}

/// One attempt, and the pause after it when there is another.
fn one(st: &mut State, opts: &Options, ssh: Option<&OsStr>) -> Result<Next, String> {
    let mut signals = run::signals().map_err(|e| format!("cannot catch signals: {e}"))?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find rosh-ssh itself: {e}"))?;
    let (words, force) = prepare(st, opts, ssh, &me)?;
    if let Some(t) = &st.tty {
        tty::restore(t);
    }
    if st.attempts > 0 && tty::is_terminal() {
        tty::flush_input();
    }
    let _ = std::fs::remove_file(st.up_mark());
    let mut cmd = Command::new(&me);
    cmd.args(&words);
    let ran = run::attempt(cmd, Watch::new(force), &mut signals)
        .map_err(|e| format!("cannot run {}: {e}", me.display()))?;
    if let Some(t) = &st.tty {
        tty::restore(t);
    }
    let a = Attempt {
        end: ran.end,
        up: st.up_mark().exists(),
        connected_before: st.connected,
        quit: ran.watch.quit(),
        dropped: ran.watch.dropped(),
        interrupted: ran.interrupted,
    };
    let (next, sleep, wait) = judge(&a, st, opts);
    if let Next::Again(_) = next {
        st.attempts = st.attempts.saturating_add(1);
        st.connected |= a.up;
        st.wait = wait;
        st.save()
            .map_err(|e| format!("cannot keep the loop's state: {e}"))?;
        if !run::sleep(&mut signals, sleep) {
            return Ok(Next::End(130));
        }
    }
    Ok(next)
}

/// rosh-ssh's words for this attempt (printed with -V), and whether rosh
/// forces ssh's end out of it (watch.rs).
fn prepare(
    st: &State,
    opts: &Options,
    ssh: Option<&OsStr>,
    me: &Path,
) -> Result<(Vec<OsString>, bool), String> {
    // app.rs put this level (and the rosh-ssh files above) in the chain.
    let chain =
        crate::locate::Chain::inherited(std::env::var_os(crate::locate::DEPTH_VAR).as_deref());
    let real = crate::locate::real_ssh(ssh, std::env::var_os("PATH").as_deref(), &chain.seen)
        .map_err(|e| e.to_string())?;
    let d = defaults::query(&real, &opts.ssh, &opts.host, opts.alive);
    let force = d.as_ref().is_some_and(|d| d.quiet && d.log_verbose_free) && !logs_elsewhere(opts);
    let words = ssh_words(st, opts, d.as_ref(), me, force, tool(opts))?;
    if opts.verbose {
        let line: Vec<String> = words
            .iter()
            .map(|w| String::from_utf8_lossy(&remote::quote(w.as_bytes())).into_owned())
            .collect();
        say(format_args!("+ rosh-ssh {}", line.join(" ")));
    }
    Ok((words, force))
}

fn tool(opts: &Options) -> Tool {
    if opts.screen {
        Tool::Screen
    } else {
        Tool::Tmux
    }
}

/// The verdict on an attempt, said in one line; where the loop goes, the
/// pause before the next attempt and the pause to remember.
fn judge(a: &Attempt, st: &State, opts: &Options) -> (Next, u32, u32) {
    let verdict = Verdict::of(a);
    let next = verdict.next(a.dropped);
    let (sleep, wait) = match next {
        Next::Again(retry) => backoff::next(retry, opts.pause, st.wait),
        Next::End(_) => (0, st.wait),
    };
    let names = Words {
        tool: tool(opts).name(),
        host: &opts.host.to_string_lossy(),
        session: &opts.session.to_string_lossy(),
    };
    let what = verdict.words(&names, a.dropped, sleep);
    match (opts.verbose, a.end) {
        (true, End::Exited(c)) => say(format_args!("rosh-ssh exited {c}: {what}")),
        (true, End::Signaled(s)) => say(format_args!("rosh-ssh was killed by signal {s}: {what}")),
        (false, _) => say(what),
    }
    (next, sleep, wait)
}

/// The user sends ssh's log elsewhere (`-E`, `-y`): forced lines would land there.
fn logs_elsewhere(opts: &Options) -> bool {
    let mut words = opts.ssh.clone();
    words.extend(["--".into(), opts.host.clone()]);
    let args = Args::parse(words);
    args.has(b'E') || args.has(b'y')
}

/// A path for a command line ssh runs through the user's shell (LocalCommand,
/// ProxyCommand): quoted, `%` doubled for ssh's tokens. A quote or backslash
/// would read differently in fish, a newline anywhere: refused.
fn command_path(p: &Path) -> Result<String, String> {
    let b = p.as_os_str().as_bytes();
    if b.iter().any(|c| b"'\\\n".contains(c)) {
        return Err(format!(
            "{} has a quote, backslash or newline: rosh cannot pass it to ssh",
            p.display()
        ));
    }
    Ok(String::from_utf8_lossy(&remote::quote(b)).replace('%', "%%"))
}

/// rosh-ssh's arguments for this attempt: rosh's settings first (ssh keeps
/// the first value it obtains), then the user's, the host and the remote
/// command.
fn ssh_words(
    st: &State,
    opts: &Options,
    d: Option<&Defaults>,
    me: &Path,
    force: bool,
    tool: Tool,
) -> Result<Vec<OsString>, String> {
    let mut w: Vec<OsString> = vec!["-t".into()];
    let mut o = |v: String| {
        w.push("-o".into());
        w.push(v.into());
    };
    let me_q = command_path(me)?;
    if let Some(d) = d.filter(|d| st.attempts > 0 && d.direct) {
        // From the second attempt on, the host is waited for by rosh-ssh's
        // own connect loop (a fresh attempt every second), not by TCP's SYN
        // backoff.
        o(format!(
            "ProxyCommand={me_q} --proxy %h %p --fdpass --wait 86400 --connect-timeout {}",
            d.connect_timeout
        ));
        o("ProxyUseFdpass=yes".into());
    }
    o("PermitLocalCommand=yes".into());
    o(format!(
        "LocalCommand={me_q} --rosh --up {}",
        command_path(st.dir())?
    ));
    if force {
        o(FORCED.into());
    }
    for v in d.map(|d| d.options.clone()).unwrap_or_default() {
        o(v);
    }
    w.extend(opts.ssh.iter().cloned());
    w.push("--".into());
    w.push(opts.host.clone());
    let remote = remote::command(tool, &opts.session, &st.id, &opts.socket, !opts.keep_sshd);
    w.push(OsString::from_vec(remote));
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn command_paths() {
        assert_eq!(
            command_path(Path::new("/usr/bin/rosh-ssh")).unwrap(),
            "/usr/bin/rosh-ssh"
        );
        assert_eq!(
            command_path(Path::new("/a b/100%")).unwrap(),
            "'/a b/100%%'"
        );
        for bad in ["/it's", "/a\\b", "/a\nb"] {
            assert!(command_path(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    fn opts(words: &[&str]) -> Options {
        let w: Vec<OsString> = words.iter().map(OsString::from).collect();
        match options::parse(&w) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_words_of_an_attempt() {
        let dir = State::create().unwrap();
        let mut st = State::open(&dir).unwrap();
        let d = Defaults {
            options: vec!["ServerAliveInterval=5".into()],
            connect_timeout: "7".into(),
            direct: true,
            quiet: false,
            log_verbose_free: true,
        };
        let me = Path::new("/opt/rosh-ssh");
        let o = opts(&["-p", "22", "h", "s"]);
        let text = |w: Vec<OsString>| {
            w.iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let first = text(ssh_words(&st, &o, Some(&d), me, false, Tool::Tmux).unwrap());
        assert_eq!(
            &first[..7],
            [
                "-t",
                "-o",
                "PermitLocalCommand=yes",
                "-o",
                &format!("LocalCommand=/opt/rosh-ssh --rosh --up {}", dir.display()),
                "-o",
                "ServerAliveInterval=5"
            ]
        );
        assert_eq!(&first[7..11], ["-p", "22", "--", "h"]);
        assert!(first[11].starts_with("sh -c "));
        assert_eq!(first.len(), 12);
        // The previous connection's sshd is ended unless --keep-sshd.
        assert!(first[11].contains("boot_id"));
        let keep = Options {
            keep_sshd: true,
            ..o.clone()
        };
        let kept = text(ssh_words(&st, &keep, Some(&d), me, false, Tool::Tmux).unwrap());
        assert!(kept[11].starts_with("sh -c ") && !kept[11].contains("boot_id"));
        st.attempts = 1;
        let again = text(ssh_words(&st, &o, Some(&d), me, true, Tool::Tmux).unwrap());
        assert_eq!(
            &again[..5],
            [
                "-t",
                "-o",
                "ProxyCommand=/opt/rosh-ssh --proxy %h %p --fdpass --wait 86400 --connect-timeout 7",
                "-o",
                "ProxyUseFdpass=yes"
            ]
        );
        assert!(again.contains(&FORCED.to_string()));
        // With the user's own ProxyCommand or ProxyJump: rosh leaves the
        // connecting to them. Without an ssh -G answer: no defaults.
        let own = Defaults { direct: false, ..d };
        assert!(
            !text(ssh_words(&st, &o, Some(&own), me, false, Tool::Tmux).unwrap())
                .iter()
                .any(|w| w.starts_with("ProxyCommand"))
        );
        assert_eq!(
            text(ssh_words(&st, &o, None, me, false, Tool::Tmux).unwrap()).len(),
            10
        );
        st.remove();
    }

    #[test]
    fn the_log_goes_elsewhere() {
        assert!(logs_elsewhere(&opts(&["-E", "/tmp/log", "h"])));
        assert!(logs_elsewhere(&opts(&["-qy", "h"])));
        assert!(!logs_elsewhere(&opts(&["-o", "LogLevel=ERROR", "h"])));
    }

    #[test]
    fn a_state_directory_is_checked_before_use() {
        assert_eq!(run(vec!["/tmp".into(), "h".into()], None), 255);
        assert!(Path::new("/tmp").exists());
        assert_eq!(run(vec!["--up".into(), "/tmp".into()], None), 1);
        let dir: PathBuf = State::create().unwrap();
        // A usage error ends the loop: the state is removed.
        assert_eq!(
            run(
                vec![dir.clone().into(), "-I".into(), "x".into(), "h".into()],
                None
            ),
            2
        );
        assert!(!dir.exists());
        let dir: PathBuf = State::create().unwrap();
        assert_eq!(run(vec!["--up".into(), dir.clone().into()], None), 0);
        assert!(dir.join("up").exists());
        State::open(&dir).unwrap().remove();
    }
}
