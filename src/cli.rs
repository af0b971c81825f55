//! rosh-ssh's own options: long options before the first ssh argument (ssh
//! has none), and their environment equivalents for callers that can't add
//! flags (vagrant, aliases).

use crate::error::Error;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

pub const USAGE: &str = "\
usage: rosh-ssh [--verbose] [--dry-run] [--require-forward] [--no-restore] [--ssh PATH]
                [ssh arguments]
       rosh-ssh --check [--remote] [ssh arguments]
       rosh-ssh --proxy HOST PORT [--fdpass] [--wait SECONDS] [--connect-timeout SECONDS]
       rosh-ssh --rosh [STATE [rosh arguments]]
       rosh-ssh --help | --version

rosh-ssh runs the real ssh with the same arguments, except that a forward
whose port is taken (a local one found before connecting, a remote one when
the server refuses it) is dropped with one warning line instead of breaking
the connection or costing a second login.

  --verbose          explain each decision on stderr (ROSH_VERBOSE=1)
  --dry-run          print the ssh command line and each forward's fate
                     (keep/drop, as you wrote it); connect nowhere
  --require-forward  every forward, local or remote, or no session: a taken
                     port or a refused remote forward means exit 255 before
                     the command runs (ROSH_REQUIRE_FORWARD=1)
  --no-restore       a dropped forward stays dropped; by default it is put
                     back into the live connection once its port is free
                     (ROSH_RESTORE=0)
  --ssh PATH         the real ssh (ROSH_SSH=PATH; default: the first ssh on
                     PATH that is not rosh-ssh)
  --check            report the forwards ssh would set up and their probes;
                     --remote also asks the server, in one bounded connection,
                     which remote ports are taken (and by which of your
                     processes) and which tmux sessions run
  --proxy HOST PORT  ProxyCommand mode: ProxyCommand rosh-ssh --proxy %h %p
                     (--fdpass with ProxyUseFdpass yes; --wait SECONDS retries
                     while the host is unreachable or refuses;
                     --connect-timeout SECONDS, or ROSH_SSH_CONNECT_TIMEOUT,
                     bounds each connect attempt)
  --rosh             the rosh function's engine: alone, makes a loop's state
                     directory and prints its path; with STATE and rosh's
                     arguments, makes one attempt (exit 75: make another); a
                     reattach ends the sshd of the loop's previous connection
                     on the server (ROSH_END_SSHD=0: it is left running)
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Ssh,
    Help,
    Version,
    /// The words after `--proxy`.
    Proxy(Vec<OsString>),
    Check {
        remote: bool,
    },
    /// The words after `--rosh`.
    Rosh(Vec<OsString>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cli {
    pub mode: Mode,
    pub verbose: bool,
    pub dry_run: bool,
    pub require_forward: bool,
    /// `--no-restore` or `ROSH_RESTORE=0`: a dropped forward stays dropped.
    pub no_restore: bool,
    /// `--ssh` or `ROSH_SSH`.
    pub ssh: Option<OsString>,
    /// The ssh arguments, untouched.
    pub words: Vec<OsString>,
}

/// Splits rosh-ssh's options from ssh's. `env` reads the environment.
pub fn parse(args: Vec<OsString>, env: impl Fn(&str) -> Option<OsString>) -> Result<Cli, Error> {
    let switches = crate::switch::read(&env)?;
    let mut cli = Cli {
        mode: Mode::Ssh,
        verbose: switches.verbose,
        dry_run: false,
        require_forward: switches.require_forward,
        no_restore: !switches.restore,
        ssh: env("ROSH_SSH").filter(|s| !s.is_empty()),
        words: Vec::new(),
    };
    let mut it = args.into_iter().peekable();
    while let Some(w) = it.peek() {
        let b = w.as_bytes();
        // `--` and anything not a long option belong to ssh; so does an
        // unknown long option, which ssh rejects with its own words.
        if !b.starts_with(b"--") || b.len() == 2 {
            break;
        }
        match b {
            b"--help" => cli.mode = Mode::Help,
            b"--version" => cli.mode = Mode::Version,
            b"--verbose" => cli.verbose = true,
            b"--dry-run" => cli.dry_run = true,
            b"--require-forward" => cli.require_forward = true,
            b"--no-restore" => cli.no_restore = true,
            b"--check" => cli.mode = Mode::Check { remote: false },
            b"--remote" if matches!(cli.mode, Mode::Check { .. }) => {
                cli.mode = Mode::Check { remote: true }
            }
            b"--ssh" => {
                it.next();
                match it.next() {
                    Some(p) if !p.is_empty() => cli.ssh = Some(p),
                    _ => return Err(Error::Usage("--ssh needs a path".into())),
                }
                continue;
            }
            b"--proxy" => {
                it.next();
                cli.mode = Mode::Proxy(it.collect());
                return Ok(cli);
            }
            b"--rosh" => {
                it.next();
                cli.mode = Mode::Rosh(it.collect());
                return Ok(cli);
            }
            _ if b.starts_with(b"--ssh=") => {
                let p = &b[6..];
                if p.is_empty() {
                    return Err(Error::Usage("--ssh needs a path".into()));
                }
                cli.ssh = Some(std::ffi::OsStr::from_bytes(p).to_owned());
            }
            _ => break,
        }
        it.next();
    }
    cli.words = it.collect();
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, Error> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        parse(args.iter().map(OsString::from).collect(), move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn leading_long_options_only() {
        let c = p(&["--verbose", "--dry-run", "-L", "1:h:2", "--verbose"], &[]).unwrap();
        assert!(c.verbose && c.dry_run && !c.require_forward);
        assert_eq!(c.words, ["-L", "1:h:2", "--verbose"]);
        let c = p(&["--", "--verbose"], &[]).unwrap();
        assert!(!c.verbose);
        assert_eq!(c.words, ["--", "--verbose"]);
        let c = p(&["--bogus", "h"], &[]).unwrap();
        assert_eq!(c.words, ["--bogus", "h"]);
    }

    #[test]
    fn ssh_path_forms() {
        assert_eq!(
            p(&["--ssh", "/x/ssh", "h"], &[]).unwrap().ssh,
            Some("/x/ssh".into())
        );
        assert_eq!(p(&["--ssh=/y", "h"], &[]).unwrap().ssh, Some("/y".into()));
        assert_eq!(
            p(&["h"], &[("ROSH_SSH", "/z")]).unwrap().ssh,
            Some("/z".into())
        );
        // The flag wins over the environment.
        assert_eq!(
            p(&["--ssh", "/x", "h"], &[("ROSH_SSH", "/z")]).unwrap().ssh,
            Some("/x".into())
        );
        assert!(p(&["--ssh"], &[]).is_err());
        assert!(p(&["--ssh="], &[]).is_err());
    }

    #[test]
    fn environment_switches() {
        let c = p(
            &["h"],
            &[("ROSH_VERBOSE", "1"), ("ROSH_REQUIRE_FORWARD", "yes")],
        )
        .unwrap();
        assert!(c.verbose && c.require_forward);
        let c = p(
            &["h"],
            &[("ROSH_VERBOSE", "0"), ("ROSH_REQUIRE_FORWARD", "")],
        )
        .unwrap();
        assert!(!c.verbose && !c.require_forward && !c.no_restore);
        assert!(p(&["h"], &[("ROSH_RESTORE", "0")]).unwrap().no_restore);
        assert!(!p(&["h"], &[("ROSH_RESTORE", "1")]).unwrap().no_restore);
        assert!(p(&["--no-restore", "h"], &[]).unwrap().no_restore);
    }

    #[test]
    fn modes() {
        assert_eq!(p(&["--help"], &[]).unwrap().mode, Mode::Help);
        assert_eq!(p(&["--version"], &[]).unwrap().mode, Mode::Version);
        assert_eq!(
            p(&["--proxy", "h", "22", "--fdpass"], &[]).unwrap().mode,
            Mode::Proxy(vec!["h".into(), "22".into(), "--fdpass".into()])
        );
        let c = p(&["--check", "--remote", "h"], &[]).unwrap();
        assert_eq!(c.mode, Mode::Check { remote: true });
        assert_eq!(c.words, ["h"]);
        assert_eq!(
            p(&["--rosh", "/s", "-V", "--help"], &[]).unwrap().mode,
            Mode::Rosh(vec!["/s".into(), "-V".into(), "--help".into()])
        );
    }

    #[test]
    fn usage_names_remote_forwards_and_the_connect_timeout() {
        for needle in [
            "a remote one when\nthe server refuses it",
            "--connect-timeout SECONDS",
            "ROSH_SSH_CONNECT_TIMEOUT",
            "--remote",
        ] {
            assert!(USAGE.contains(needle), "{needle}");
        }
        // The prose wraps at 80 (the usage lines above it are longer).
        assert!(USAGE.lines().skip(4).all(|l| l.len() <= 80));
    }
}
