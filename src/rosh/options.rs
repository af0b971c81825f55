//! The rosh function's option grammar: rosh's own letters (`-V -S -L -I -a`,
//! and `-O WORD`) read over ssh's getopt tables (argv.rs), so that every
//! other ssh option is accepted as ssh spells it, clusters included; and
//! rosh's long option `--keep-sshd`, a word of its own among them (ssh has
//! no long options, so it hides none of ssh's letters, today's or a later
//! release's).

use crate::argv;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The stable interface, as `rosh --help` and usage errors print it.
pub const SYNOPSIS: &str = "usage: rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [--keep-sshd] [ssh options] HOST [SESSION]";

/// `-I`'s default: seconds before reconnecting.
pub const PAUSE: u32 = 1;
/// `-a`'s default: ServerAliveInterval where the user set none.
pub const ALIVE: u32 = 5;

/// `rosh --help`. Its option words are the ones rosh(1), the README's
/// synopsis and the completions list (tests/docs.rs compares them).
pub fn help() -> String {
    format!(
        "{SYNOPSIS}

Attaches to tmux session SESSION (default: \"default\") on HOST over ssh, and
reattaches whenever the connection drops, until you detach, the session ends,
or you type ~. (the session keeps running).

  -V          print each rosh-ssh command line and its exit status
  -S          use screen instead of tmux
  -L SOCKET   the remote tmux socket name (tmux -L); not a forward: forward
              with -o 'LocalForward PORT HOST:PORT' or in ~/.ssh/config
  -I SECONDS  pause before reconnecting (default {PAUSE}; doubles up to 60 while
              the server answers but refuses)
  -a SECONDS  ServerAliveInterval unless you set one (default {ALIVE})
  --keep-sshd on reattach, leave the sshd of the previous connection running
              on the server (ROSH_END_SSHD=0); by default rosh ends it, so
              that the remote forwards it holds come back to the new one
ssh options, passed to ssh as ssh reads them: all of ssh(1)'s but the letters
above and -O, e.g. -p PORT  -l USER  -i FILE  -J JUMP  -F FILE  -o OPTION  -A
-C  -4  -6  -v
  -O WORD     one more ssh argument as it is (ssh's own -L: -O -L -O SPEC)
Your -o options and ~/.ssh/config win over rosh's defaults (ServerAliveInterval,
ServerAliveCountMax=1, a 1 s connect timeout per attempt while reconnecting).
"
    )
}

/// What the words ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Run(Options),
}

/// One rosh invocation's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `-V`: each command line and its end, in words.
    pub verbose: bool,
    /// `-S`: GNU screen instead of tmux.
    pub screen: bool,
    /// `-L`: the remote tmux socket name (empty: tmux's default).
    pub socket: OsString,
    /// `-I`: seconds before reconnecting.
    pub pause: u32,
    /// `-a`: ServerAliveInterval where the user set none.
    pub alive: u32,
    /// `--keep-sshd`: the previous connection's sshd is left running.
    pub keep_sshd: bool,
    /// ssh's options, one option (and its argument) per word or two, in order.
    pub ssh: Vec<OsString>,
    pub host: OsString,
    /// The session name (default `default`).
    pub session: OsString,
}

/// A usage error: the lines to print after `rosh: `; rosh exits 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage(pub Vec<String>);

impl Usage {
    fn one(line: String) -> Usage {
        Usage(vec![line])
    }
}

/// rosh's letters: they shadow ssh's (ssh's -V, -S, -L, -I, -a, -O are
/// reached through `-O WORD`).
fn rosh_arity(c: u8) -> Option<bool> {
    match c {
        b'V' | b'S' => Some(false),
        b'L' | b'I' | b'a' | b'O' => Some(true),
        _ => None,
    }
}

/// Reads the words as BSD getopt does (openbsd-compat, as argv.rs): options
/// up to the first word that is not one (or `--`), then HOST and an
/// optional SESSION.
pub fn parse(words: &[OsString]) -> Result<Parsed, Usage> {
    if matches!(words.first().map(|w| w.as_bytes()), Some(b"--help" | b"-h")) {
        return Ok(Parsed::Help);
    }
    let mut o = Options {
        verbose: false,
        screen: false,
        socket: OsString::new(),
        pause: PAUSE,
        alive: ALIVE,
        keep_sshd: false,
        ssh: Vec::new(),
        host: OsString::new(),
        session: OsString::from("default"),
    };
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_bytes();
        if w.first() != Some(&b'-') || w.len() == 1 {
            break;
        }
        i += 1;
        if w == b"--" {
            break;
        }
        if w.starts_with(b"--") {
            if w != b"--keep-sshd" {
                return Err(Usage::one(format!(
                    "unknown option {} (rosh --help)",
                    String::from_utf8_lossy(w)
                )));
            }
            o.keep_sshd = true;
            continue;
        }
        let mut at = 1;
        while at < w.len() {
            let c = w[at];
            at += 1;
            let takes = match rosh_arity(c).or_else(|| argv::arity(c)) {
                Some(t) => t,
                None => {
                    return Err(Usage::one(format!(
                        "unknown option -{} (rosh --help)",
                        String::from_utf8_lossy(&[c])
                    )));
                }
            };
            if !takes {
                match c {
                    b'V' => o.verbose = true,
                    b'S' => o.screen = true,
                    _ => o.ssh.push(OsString::from(format!("-{}", c as char))),
                }
                continue;
            }
            let arg = if at < w.len() {
                OsStr::from_bytes(&w[at..]).to_owned()
            } else if i < words.len() {
                i += 1;
                words[i - 1].clone()
            } else {
                return Err(Usage::one(format!(
                    "option -{} needs a value (rosh --help)",
                    c as char
                )));
            };
            at = w.len();
            match c {
                b'L' => o.socket = arg,
                b'I' => o.pause = seconds('I', &arg)?,
                b'a' => o.alive = seconds('a', &arg)?,
                b'O' => o.ssh.push(arg),
                _ => {
                    o.ssh.push(OsString::from(format!("-{}", c as char)));
                    o.ssh.push(arg);
                }
            }
        }
    }
    match &words[i..] {
        [host] => o.host = host.clone(),
        [host, session] => {
            o.host = host.clone();
            o.session = session.clone();
        }
        _ => return Err(Usage::one(SYNOPSIS.into())),
    }
    let s = o.socket.as_bytes();
    if s.contains(&b'/') || s.contains(&b':') {
        return Err(Usage(vec![
            format!(
                "-L names the remote tmux socket, not a forward: '{}'",
                o.socket.to_string_lossy()
            ),
            "forward with -o 'LocalForward PORT HOST:PORT' or in ~/.ssh/config".into(),
        ]));
    }
    if o.screen && !s.is_empty() {
        return Err(Usage::one(
            "-L names a tmux socket; screen (-S) has none".into(),
        ));
    }
    Ok(Parsed::Run(o))
}

/// Whole seconds: digits only, as many as a u32 holds.
fn seconds(letter: char, v: &OsStr) -> Result<u32, Usage> {
    let b = v.as_bytes();
    let ok = !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    ok.then(|| std::str::from_utf8(b).ok()?.parse().ok())
        .flatten()
        .ok_or_else(|| {
            Usage::one(format!(
                "-{letter} wants whole seconds, not '{}'",
                v.to_string_lossy()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &[&str]) -> Result<Parsed, Usage> {
        let words: Vec<OsString> = line.iter().map(OsString::from).collect();
        parse(&words)
    }

    fn run(line: &[&str]) -> Options {
        match p(line) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn ssh(o: &Options) -> Vec<String> {
        o.ssh
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn rosh_letters_keep_their_meaning() {
        let o = run(&["-V", "-S", "-I", "3", "-a7", "h"]);
        assert!(o.verbose && o.screen);
        assert_eq!((o.pause, o.alive), (3, 7));
        assert_eq!(o.host, "h");
        assert_eq!(o.session, "default");
        assert!(o.ssh.is_empty());
        assert!(!o.keep_sshd);
        let o = run(&["-V", "--keep-sshd", "-p22", "h"]);
        assert!(o.verbose && o.keep_sshd);
        assert_eq!(ssh(&o), ["-p", "22"]);
        // After the host it is the session's name, as any option would be.
        let o = run(&["h", "--keep-sshd"]);
        assert!(!o.keep_sshd);
        assert_eq!(o.session, "--keep-sshd");
        let o = run(&["-L", "work", "h", "s"]);
        assert_eq!(
            (o.socket.as_os_str(), o.session.as_os_str()),
            ("work".as_ref(), "s".as_ref())
        );
        assert_eq!((o.pause, o.alive), (PAUSE, ALIVE));
    }

    #[test]
    fn every_other_ssh_option_passes_as_ssh_reads_it() {
        // ssh's letters that rosh never listed: -X, -t, -e, -b, -m, -R, -W ...
        let o = run(&[
            "-XAt",
            "-e",
            "^]",
            "-b127.0.0.1",
            "-R8082:localhost:22",
            "h",
        ]);
        assert_eq!(
            ssh(&o),
            [
                "-X",
                "-A",
                "-t",
                "-e",
                "^]",
                "-b",
                "127.0.0.1",
                "-R",
                "8082:localhost:22"
            ]
        );
        // A cluster mixing both grammars; the argument ends the word.
        let o = run(&["-VCp2222", "-oServerAliveInterval=60", "-F", "cfg", "h"]);
        assert!(o.verbose);
        assert_eq!(
            ssh(&o),
            [
                "-C",
                "-p",
                "2222",
                "-o",
                "ServerAliveInterval=60",
                "-F",
                "cfg"
            ]
        );
        // The value of an option is never read as options: -L inside -o.
        let o = run(&["-o", "-L", "h"]);
        assert_eq!(ssh(&o), ["-o", "-L"]);
        assert!(o.socket.is_empty());
    }

    #[test]
    fn dash_o_word_passes_any_word() {
        let o = run(&["-O", "-L", "-O", "8080:h:80", "-O-a", "h"]);
        assert_eq!(ssh(&o), ["-L", "8080:h:80", "-a"]);
    }

    #[test]
    fn options_end_where_getopt_ends_them() {
        let o = run(&["-A", "--", "-h", "s"]);
        assert_eq!(
            (o.host.as_os_str(), o.session.as_os_str()),
            ("-h".as_ref(), "s".as_ref())
        );
        let o = run(&["h", "-A"]);
        assert_eq!(o.session, "-A", "options stop at the host");
        assert!(o.ssh.is_empty());
        let o = run(&["-", "s"]);
        assert_eq!(o.host, "-");
    }

    #[test]
    fn help() {
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["-h", "x"]), Ok(Parsed::Help));
        let text = super::help();
        assert!(text.starts_with("usage: rosh "));
        assert!(text.contains(&format!("default {PAUSE};")), "{text}");
        assert!(text.contains(&format!("(default {ALIVE})")), "{text}");
        assert!(text.lines().skip(1).all(|l| l.len() <= 80), "{text}");
    }

    #[test]
    fn usage_errors() {
        let err = |line: &[&str]| p(line).unwrap_err().0.join("\n");
        let table: &[(&[&str], &str)] = &[
            (&[], "usage: rosh [-V]"),
            (&["-A"], "usage: rosh [-V]"),
            (&["h", "s", "x"], "usage: rosh [-V]"),
            (&["-U", "h"], "unknown option -U"),
            (&["--keep", "h"], "unknown option --keep (rosh --help)"),
            (&["-V", "--help", "h"], "unknown option --help"),
            (&["-h"], ""),
            (&["-p"], "option -p needs a value"),
            (&["-I"], "option -I needs a value"),
            (&["-I", "x", "h"], "-I wants whole seconds, not 'x'"),
            (&["-a", "", "h"], "-a wants whole seconds, not ''"),
            (&["-I", "-1", "h"], "-I wants whole seconds"),
            (&["-I", "99999999999", "h"], "-I wants whole seconds"),
            (&["-L", "8080:localhost:80", "h"], "not a forward"),
            (&["-L", "a/b", "h"], "not a forward"),
            (&["-S", "-L", "foo", "h"], "screen (-S) has none"),
            (&["-L", "foo", "-S", "h"], "screen (-S) has none"),
        ];
        for (line, want) in table {
            if want.is_empty() {
                assert_eq!(p(line), Ok(Parsed::Help));
                continue;
            }
            assert!(err(line).contains(want), "{line:?}: {:?}", err(line));
        }
        assert!(err(&["-L", "a:b", "h"]).contains("LocalForward PORT HOST:PORT"));
        // Screen without -L, and an empty -L, are fine.
        assert!(run(&["-S", "h"]).screen);
        assert!(run(&["-L", "", "h"]).socket.is_empty());
    }
}
