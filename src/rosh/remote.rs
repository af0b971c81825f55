//! The remote side of one attempt, in one round trip: a `sh -c` script that
//! ends the sshd of this loop's previous connection (stale.rs), attaches to
//! the tmux (or screen) session or creates it, keeps it when unattached
//! whatever tmux.conf says, detaches the stale client this loop's previous
//! connection left behind, points the session's stable agent link at this
//! connection's agent, and reports how it ended.
//!
//! ssh hands the remote command to the user's login shell as one string, so
//! every word here is quoted for a POSIX shell (and stays free of
//! backslashes, which fish would read inside quotes).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The exit status the script gives when the session is gone after a clean
/// end (the remote shell exited), so it is told from a detach (0).
pub const GONE: i32 = 100;

/// Where the stable agent links live on the server, under `$HOME`: one per
/// host name (a home shared over NFS serves several servers) and session.
/// `$1` is [`agent_key`]'s value. Shells of the session use the link; each
/// connection with an agent repoints it (atomically: `ln -s` then `mv`).
const AGENT: &str = r#"l=$HOME/.ssh/rosh-agent/$(uname -n)-$1; if [ -n "${SSH_AUTH_SOCK-}" ] && [ "$SSH_AUTH_SOCK" != "$l" ] && (umask 077 && mkdir -p "${l%/*}") && ln -s "$SSH_AUTH_SOCK" "$l.$$" && mv -f "$l.$$" "$l"; then SSH_AUTH_SOCK=$l; export SSH_AUTH_SOCK; fi; shift; "#;

/// tmux: `$1` agent key, `$2` session name, `$3` loop id, then tmux's own
/// options (`-L SOCKET`). The loop's client is recorded in a global option
/// named after the loop, by tty and pid together (a tty freed by a dead
/// client may be another terminal's by now), and detached on the next
/// attempt. `exit $s` keeps sh from exec'ing tmux, so a client killed by a
/// signal comes back as 128+N and not as ssh's 255.
const TMUX: &str = r##"n=$1; k=@rosh-$2; shift 2; o=$(tmux "$@" show-options -gqv "$k" 2>/dev/null); if [ -n "$o" ]; then tmux "$@" list-clients -F "#{client_tty} #{client_pid}" 2>/dev/null | while read -r t p; do if [ "$t $p" = "$o" ]; then tmux "$@" detach-client -t "$t"; fi; done; fi; f=$(mktemp) || exit 1; tmux "$@" new-session -A -s "$n" ";" set-option destroy-unattached off ";" set-option -gF "$k" "#{client_tty} #{client_pid}" ";" run-shell "echo '#{session_id}' >$f"; s=$?; id=$(cat "$f"); rm -f "$f"; if [ $s = 0 ] && [ -n "$id" ] && ! tmux "$@" has-session -t "$id" 2>/dev/null; then s=100; fi; exit $s"##;

/// screen: `$1` agent key, `$2` session name.
const SCREEN: &str = r#"n=$1; screen -D -R -S "$n"; s=$?; if [ $s = 0 ] && ! screen -S "$n" -Q select . >/dev/null 2>&1; then s=100; fi; exit $s"#;

/// The program on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Tmux,
    Screen,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Tmux => "tmux",
            Tool::Screen => "screen",
        }
    }
}

/// The remote command: one string for the login shell. `end_stale`: end
/// the loop's previous connection's sshd first (stale.rs).
pub fn command(
    tool: Tool,
    session: &OsStr,
    loop_id: &str,
    socket: &OsStr,
    end_stale: bool,
) -> Vec<u8> {
    let key = agent_key(tool, socket, session);
    let mut words: Vec<&[u8]> = vec![b"sh", b"-c"];
    let stale = if end_stale { super::stale::SCRIPT } else { "" };
    let script = match tool {
        Tool::Tmux => [stale, AGENT, TMUX].concat(),
        Tool::Screen => [stale, AGENT, SCREEN].concat(),
    };
    words.push(script.as_bytes());
    words.push(b"sh");
    if end_stale {
        words.push(loop_id.as_bytes());
    }
    words.extend([key.as_bytes(), session.as_bytes()]);
    if tool == Tool::Tmux {
        words.push(loop_id.as_bytes());
        if !socket.is_empty() {
            words.extend([&b"-L"[..], socket.as_bytes()]);
        }
    }
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&quote(w));
    }
    out
}

/// One word quoted for any POSIX login shell (quote.rs).
pub fn quote(w: &[u8]) -> Vec<u8> {
    crate::quote::for_login_shell(w)
}

/// A file-name-safe key for one session: the same tool, socket and name give
/// the same key (FNV-1a, 64 bits, in hex), so every loop attached to a
/// session repoints the same link.
pub fn agent_key(tool: Tool, socket: &OsStr, session: &OsStr) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts: [&[u8]; 3] = [
        tool.name().as_bytes(),
        socket.as_bytes(),
        session.as_bytes(),
    ];
    for part in parts {
        for &b in part.iter().chain(&[0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// What a POSIX shell makes of `line`: its words.
    fn words_of(line: &[u8]) -> Vec<Vec<u8>> {
        let script = format!(
            "set -- {}; for w; do printf '%s\\0' \"$w\"; done",
            String::from_utf8_lossy(line)
        );
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: Vec<Vec<u8>> = out.stdout.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        v.pop();
        v
    }

    const NAMES: &[&str] = &[
        "default",
        r#"it's "a" $x `y` ;z"#,
        "=ls",
        "~root",
        "[ab]*",
        "a b",
        "",
        "-x",
    ];

    #[test]
    fn every_word_arrives_as_itself() {
        for name in NAMES {
            let cmd = command(
                Tool::Tmux,
                OsStr::new(name),
                "0123456789ab",
                OsStr::new("s'ock"),
                false,
            );
            let w = words_of(&cmd);
            assert_eq!(w.len(), 9, "{name:?}: {w:?}");
            assert_eq!(&w[..2], &[b"sh".to_vec(), b"-c".to_vec()]);
            assert_eq!(w[2], [AGENT, TMUX].concat().into_bytes());
            assert_eq!(w[5], name.as_bytes(), "{name:?}");
            assert_eq!(w[6], b"0123456789ab");
            assert_eq!(&w[7..], &[b"-L".to_vec(), b"s'ock".to_vec()]);
            let cmd = command(Tool::Screen, OsStr::new(name), "id", OsStr::new(""), false);
            let w = words_of(&cmd);
            assert_eq!(w.len(), 6, "{name:?}: {w:?}");
            assert_eq!(w[5], name.as_bytes());
            // Ending the previous connection's sshd: its fragment first,
            // the loop's id its first argument, for tmux and screen alike.
            for tool in [Tool::Tmux, Tool::Screen] {
                let plain = words_of(&command(
                    tool,
                    OsStr::new(name),
                    "id",
                    OsStr::new(""),
                    false,
                ));
                let w = words_of(&command(tool, OsStr::new(name), "id", OsStr::new(""), true));
                let mut script = super::super::stale::SCRIPT.as_bytes().to_vec();
                script.extend_from_slice(&plain[2]);
                assert_eq!(w[2], script);
                assert_eq!(w[4], b"id");
                assert_eq!(&w[5..], &plain[4..], "{name:?}");
            }
        }
        // No -L word for tmux's default socket.
        assert_eq!(
            words_of(&command(
                Tool::Tmux,
                OsStr::new("s"),
                "id",
                OsStr::new(""),
                false
            ))
            .len(),
            7
        );
    }

    #[test]
    fn quoting_table() {
        let table: &[(&[u8], &[u8])] = &[
            (b"host", b"host"),
            (b"a=b", b"a=b"),
            (b"=b", b"'=b'"),
            (b"~x", b"'~x'"),
            (b"[x]", b"'[x]'"),
            (b"", b"''"),
            (b"it's", b"'it'\\''s'"),
        ];
        for (w, want) in table {
            assert_eq!(quote(w), *want, "{:?}", String::from_utf8_lossy(w));
        }
        // The scripts reach fish intact too: no backslash inside them.
        assert!(
            ![super::super::stale::SCRIPT, AGENT, TMUX, SCREEN]
                .concat()
                .contains('\\')
        );
    }

    #[test]
    fn agent_keys_differ_per_session_and_are_stable() {
        let k = |t, s: &str, n: &str| agent_key(t, OsStr::new(s), OsStr::new(n));
        assert_eq!(k(Tool::Tmux, "", "a"), k(Tool::Tmux, "", "a"));
        assert_ne!(k(Tool::Tmux, "", "a"), k(Tool::Tmux, "", "b"));
        assert_ne!(k(Tool::Tmux, "", "a"), k(Tool::Screen, "", "a"));
        assert_ne!(k(Tool::Tmux, "x", "a"), k(Tool::Tmux, "", "xa"));
        assert!(
            k(Tool::Tmux, "", "a")
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        assert_eq!(k(Tool::Tmux, "", "a").len(), 16);
    }

    /// A directory with a stub `tmux` (or `screen`) first on PATH that logs
    /// its argv and its SSH_AUTH_SOCK, answers `show-options` and
    /// `list-clients` from files, and exits as told: the script's argv and
    /// exit statuses are what is under test (the shell tests run it against
    /// a real tmux).
    struct Stub {
        dir: crate::tmpdir::PrivateDir,
    }

    impl Stub {
        fn new(tool: &str) -> Stub {
            let dir = crate::tmpdir::PrivateDir::new().unwrap();
            let d = dir.path().display().to_string();
            let script = r#"#!/bin/sh
d='DIR'
printf '%s|' "$@" >>"$d/log"; printf 'agent=%s\n' "${SSH_AUTH_SOCK-}" >>"$d/log"
r=
for a; do
  if [ "$r" = 1 ]; then sh -c "$a"; fi
  r=; if [ "$a" = run-shell ]; then r=1; fi
done
for a; do
  case $a in
    show-options) cat "$d/option" 2>/dev/null; exit 0 ;;
    list-clients) cat "$d/clients" 2>/dev/null; exit 0 ;;
    has-session | -Q) exit "$(cat "$d/has" 2>/dev/null || echo 0)" ;;
    new-session | -D) exit "$(cat "$d/status" 2>/dev/null || echo 0)" ;;
  esac
done
exit 0
"#
            .replace("DIR", &d);
            let bin = dir.path().join("bin");
            fs::create_dir(&bin).unwrap();
            fs::write(bin.join(tool), script).unwrap();
            fs::set_permissions(bin.join(tool), fs::Permissions::from_mode(0o755)).unwrap();
            fs::create_dir(dir.path().join("home")).unwrap();
            Stub { dir }
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
        fn set(&self, file: &str, text: &str) {
            fs::write(self.path().join(file), text).unwrap();
        }
        fn log(&self) -> String {
            fs::read_to_string(self.path().join("log")).unwrap_or_default()
        }
        fn home(&self) -> PathBuf {
            self.path().join("home")
        }
        /// Runs the remote command as a login shell would; its exit status.
        fn run(&self, cmd: &[u8], agent: Option<&Path>) -> i32 {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(OsStr::from_bytes(cmd))
                .env(
                    "PATH",
                    format!("{}/bin:/usr/bin:/bin", self.path().display()),
                )
                .env("HOME", self.home())
                .env_remove("SSH_AUTH_SOCK");
            if let Some(a) = agent {
                c.env("SSH_AUTH_SOCK", a);
            }
            c.status().unwrap().code().unwrap_or(-1)
        }
    }

    fn sh_available() -> bool {
        Path::new("/bin/sh").exists()
    }

    #[test]
    fn tmux_script_attaches_in_one_call_and_reports_a_gone_session() {
        if !sh_available() {
            return;
        }
        let s = Stub::new("tmux");
        let cmd = command(
            Tool::Tmux,
            OsStr::new("it's"),
            "loop1",
            OsStr::new("sock"),
            true,
        );
        assert_eq!(s.run(&cmd, None), 0);
        let log = s.log();
        assert!(
            log.contains("-L|sock|new-session|-A|-s|it's|;|set-option|destroy-unattached|off|;|set-option|-gF|@rosh-loop1|#{client_tty} #{client_pid}|;|run-shell|"),
            "{log}"
        );
        // Nothing recorded for this loop: no client detached.
        assert!(!log.contains("detach-client"), "{log}");
        // The session is gone after a clean end: 100. A detach leaves it: 0.
        // tmux's own failures pass through, and are never judged gone.
        s.set("has", "1");
        assert_eq!(s.run(&cmd, None), GONE);
        assert!(
            s.log().contains("has-session|-t|#{session_id}|"),
            "{}",
            s.log()
        );
        s.set("status", "1");
        assert_eq!(s.run(&cmd, None), 1);
        s.set("status", "137");
        assert_eq!(s.run(&cmd, None), 137);
    }

    #[test]
    fn tmux_script_detaches_only_this_loops_stale_client() {
        if !sh_available() {
            return;
        }
        let s = Stub::new("tmux");
        s.set("option", "/dev/pts/7 4242\n");
        s.set(
            "clients",
            "/dev/pts/3 1111\n/dev/pts/7 9999\n/dev/pts/7 4242\n",
        );
        let cmd = command(Tool::Tmux, OsStr::new("s"), "loop1", OsStr::new(""), true);
        assert_eq!(s.run(&cmd, None), 0);
        let log = s.log();
        let detached: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("detach-client"))
            .collect();
        assert_eq!(detached, ["detach-client|-t|/dev/pts/7|agent="], "{log}");
    }

    #[test]
    fn the_agent_link_is_repointed_and_used_from_the_first_connection() {
        if !sh_available() {
            return;
        }
        for tool in [Tool::Tmux, Tool::Screen] {
            let s = Stub::new(tool.name());
            let cmd = command(tool, OsStr::new("work"), "loop1", OsStr::new(""), true);
            let key = agent_key(tool, OsStr::new(""), OsStr::new("work"));
            let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout)
                .unwrap();
            let link = s
                .home()
                .join(format!(".ssh/rosh-agent/{}-{key}", host.trim()));
            // No agent: no link, SSH_AUTH_SOCK left unset.
            assert_eq!(s.run(&cmd, None), 0);
            assert!(!link.exists() && fs::symlink_metadata(&link).is_err());
            assert!(s.log().contains("agent=\n"), "{}", s.log());
            // The first connection with an agent: the session starts with the link.
            let a1 = s.path().join("agent1");
            assert_eq!(s.run(&cmd, Some(&a1)), 0);
            assert_eq!(fs::read_link(&link).unwrap(), a1);
            assert!(
                s.log().contains(&format!("agent={}\n", link.display())),
                "{}",
                s.log()
            );
            // The next repoints it; the directory is private.
            let a2 = s.path().join("agent2");
            assert_eq!(s.run(&cmd, Some(&a2)), 0);
            assert_eq!(fs::read_link(&link).unwrap(), a2);
            let mode = fs::metadata(link.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
            // A connection whose agent already is the link leaves it alone.
            assert_eq!(s.run(&cmd, Some(&link)), 0);
            assert_eq!(fs::read_link(&link).unwrap(), a2);
            let left: Vec<_> = fs::read_dir(link.parent().unwrap()).unwrap().collect();
            assert_eq!(left.len(), 1, "a temporary link was left behind");
        }
    }

    #[test]
    fn screen_script_reports_a_gone_session() {
        if !sh_available() {
            return;
        }
        let s = Stub::new("screen");
        let cmd = command(
            Tool::Screen,
            OsStr::new("work"),
            "loop1",
            OsStr::new(""),
            true,
        );
        assert_eq!(s.run(&cmd, None), 0);
        assert!(s.log().contains("-D|-R|-S|work|"), "{}", s.log());
        s.set("has", "1");
        assert_eq!(s.run(&cmd, None), GONE);
        s.set("status", "137");
        assert_eq!(s.run(&cmd, None), 137);
    }
}
