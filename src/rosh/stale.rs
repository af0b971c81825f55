//! The server side of a reattach: the sshd of this loop's previous
//! connection is ended, so that the remote forwards it still listens on
//! free at once and the new connection's restore gets them back.
//!
//! After a laptop roams (sleep, another Wi-Fi) the server never hears that
//! the old connection died: nothing answers its retransmissions to the old
//! address, not even with an RST, so its sshd lives on with the listeners
//! of the connection's RemoteForwards until TCP gives up (tcp_retries2 = 15:
//! about 15 minutes) or ClientAlive does (off by default). Only the loop
//! knows that connection was its own and is dead; the server side of each
//! attempt ends it.
//!
//! Which process: the one OpenSSH runs as the user for the connection, the
//! nearest `sshd` (`sshd-session` from 9.8, which execs it per connection:
//! sshd.c) above the remote command. With privilege separation it is the
//! post-auth child (sshd-session.c / sshd.c `privsep_postauth`: fork, then
//! `do_setusercontext`), whose parent, the monitor, stays root; the
//! channels and so the forwards' listeners live in that child
//! (serverloop.c `server_input_global_request`), and when it ends the
//! monitor ends too (monitor_wrap.c `mm_request_receive`: EOF, then
//! `cleanup_exit`). The child runs as the user, so the user may signal it
//! (it changed uid without exec, so the kernel made it non-dumpable: its
//! /proc fd list is root's to read, its stat and comm anyone's). Up to 9.7
//! a root login has no post-auth child: the connection's own sshd serves it
//! (sshd.c `privsep_postauth`: `pw_uid == 0`, no privsep), the same nearest
//! `sshd`; from 9.8 root's session has a monitor and a child too.
//!
//! The record: when a connection is made, a file named
//! `BOOT.LOOP.PID.START` (the kernel's boot id, the loop's id, the sshd's
//! pid and its start time in clock ticks since boot, /proc/PID/stat field
//! 22) in `$XDG_RUNTIME_DIR/rosh/sshd` (else `~/.cache/rosh/sshd`), holding
//! the connection's SSH_CONNECTION. The name is the record, so a record is
//! never rewritten: a new connection adds its own file and removes the
//! loop's older ones. A record is acted on only when its process still
//! exists, is not a zombie, started at the recorded tick, belongs to this
//! user, is an `sshd` or `sshd-session`, and is neither this connection's
//! sshd nor any process between it and the script (one connection
//! multiplexed by a ControlMaster serves several attempts). Then SIGTERM
//! (up to 9.7 serverloop.c's `sigterm_handler` ends it through
//! `cleanup_exit`; from 9.8 sshd-session.c leaves SIGTERM at its default
//! and the monitor cleans up after the child), two seconds for it to go,
//! looked at every 20 ms (the reattach waits), then SIGKILL. Another
//! loop's record (another terminal, another laptop) is never acted on; a
//! record whose process is gone, of any loop, is removed.
//!
//! Linux only (/proc, the boot id); elsewhere, or when any step fails, it
//! does nothing. It runs in a subshell with no input and no output, so it
//! can neither read the session's keys nor end the script that attaches.

/// A POSIX sh fragment for the front of the remote script: takes `$1`, the
/// loop's id (letters, digits and `-`: state.rs), and shifts it off. No
/// backslash (fish reads those inside quotes) and no `)` inside a
/// parameter expansion (ksh reads that as a pattern group).
pub const SCRIPT: &str = concat!(
    r#"i=$1; shift; ( r=")"; "#,
    // S, P, T: state, parent and start time of process $1.
    r#"st() { l=; read -r l <"/proc/$1/stat" || return 1; set -- ${l##*"$r"}; S=$1; P=$2; T=${20}; }; "#,
    r#"sshd() { c=; read -r c <"/proc/$1/comm" && { [ "$c" = sshd ] || [ "$c" = sshd-session ]; }; }; "#,
    // The recorded process $1, started at tick $2, is a live sshd of ours.
    r#"live() { st "$1" && [ "$S" != Z ] && [ "$T" = "$2" ] && [ -O "/proc/$1" ] && sshd "$1"; }; "#,
    r#"read -r b </proc/sys/kernel/random/boot_id || exit; "#,
    // This connection's sshd: the nearest above; `a` holds the way up.
    r#"p=$$; a=" "; me=; n=0; "#,
    r#"while [ $n -lt 16 ] && [ "$p" -gt 1 ]; do a="$a$p "; if sshd "$p"; then me=$p; break; fi; st "$p" || exit; p=$P; n=$((n+1)); done; "#,
    r#"[ -n "$me" ] && [ -O "/proc/$me" ] && st "$me" || exit; mt=$T; "#,
    r#"d=${XDG_RUNTIME_DIR:-$HOME/.cache}/rosh/sshd; [ -d "$d" ] || (umask 077 && mkdir -p "$d") || exit; "#,
    r#"for g in "$d/$b".*.*.*; do [ -f "$g" ] || continue; "#,
    r#"s=${g##*.}; p=${g%.*}; p=${p##*.}; o=${g#"$d/$b".}; o=${o%%.*}; "#,
    r#"case $a in *" $p "*) ;; *) if [ "$o" = "$i" ] && live "$p" "$s"; then kill -TERM "$p"; w=0; "#,
    r#"while [ $w -lt 100 ] && live "$p" "$s"; do if sleep 0.02; then w=$((w+1)); else sleep 1; w=$((w+50)); fi; done; "#,
    r#"live "$p" "$s" && kill -KILL "$p"; fi; esac; "#,
    r#"[ "$p" = "$me" ] || live "$p" "$s" || rm -f "$g"; done; "#,
    r#"echo "${SSH_CONNECTION-}" >"$d/$b.$i.$me.$mt" ) </dev/null >/dev/null 2>&1; "#,
);

#[cfg(test)]
mod tests {
    //! The fragment against real processes: copies of /bin/sh named `sshd`
    //! (so their comm is sshd's) stand for the sessions' sshd processes, and
    //! the fragment runs under them as under a login.
    use super::SCRIPT;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    struct Lab {
        dir: crate::tmpdir::PrivateDir,
        kids: Vec<Child>,
    }

    /// A stand-in sshd: alive until its stdin closes or it is killed.
    struct Fake {
        pid: i32,
        start: String,
    }

    fn stat_start(pid: i32) -> Option<String> {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, tail) = s.rsplit_once(')')?;
        Some(tail.split_whitespace().nth(19)?.to_string())
    }

    fn alive(pid: i32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(!s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(false)
    }

    impl Lab {
        fn new() -> Option<Lab> {
            if !Path::new("/proc/sys/kernel/random/boot_id").exists() {
                return None;
            }
            let dir = crate::tmpdir::PrivateDir::new().unwrap();
            for name in ["sshd", "sshd-session", "other"] {
                fs::copy("/bin/sh", dir.path().join(name)).unwrap();
            }
            fs::create_dir(dir.path().join("home")).unwrap();
            Some(Lab {
                dir,
                kids: Vec::new(),
            })
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
        fn records(&self) -> PathBuf {
            self.path().join("home/.cache/rosh/sshd")
        }
        /// The record files' names, sorted.
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(self.records())
                .map(|d| {
                    d.filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
        /// A process of `bin` (a name in the lab) that runs `body` and waits
        /// on its stdin; `prefix` is put before it on the command line.
        fn spawn(&mut self, prefix: &[&str], bin: &str, body: &str) -> Fake {
            let exe = self.path().join(bin);
            let mut c = if prefix.is_empty() {
                Command::new(&exe)
            } else {
                let mut c = Command::new(prefix[0]);
                c.args(&prefix[1..]).arg(&exe);
                c
            };
            c.arg("-c")
                .arg(format!("{body}; read x"))
                .env("HOME", self.path().join("home"))
                .env_remove("XDG_RUNTIME_DIR")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = c.spawn().unwrap();
            let pid = child.id() as i32;
            self.kids.push(child);
            let start = stat_start(pid).unwrap();
            Fake { pid, start }
        }
        /// A session of loop `id`: the fragment run by sh under a stand-in
        /// sshd called `bin`; returns once the fragment has run.
        fn session(&mut self, bin: &str, id: &str) -> Fake {
            let done = self.path().join(format!("done-{}", self.kids.len()));
            let body = format!(
                "sh -c '{}touch \"$1\"' sh {id} '{}'",
                SCRIPT.replace('\'', r"'\''"),
                done.display()
            );
            let f = self.spawn(&[], bin, &body);
            let t = Instant::now();
            while !done.exists() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(done.exists(), "the fragment did not finish");
            f
        }
        /// The fragment run by sh straight from this process (no sshd above).
        fn bare(&self, id: &str) -> bool {
            Command::new("sh")
                .arg("-c")
                .arg(format!("{SCRIPT}echo ok"))
                .args(["sh", id])
                .env("HOME", self.path().join("home"))
                .env_remove("XDG_RUNTIME_DIR")
                .output()
                .is_ok_and(|o| o.stdout == b"ok\n" && o.stderr.is_empty())
        }
        fn record(&self, id: &str, f: &Fake) {
            let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
            let name = format!("{}.{id}.{}.{}", boot.trim(), f.pid, f.start);
            fs::create_dir_all(self.records()).unwrap();
            fs::write(self.records().join(name), "").unwrap();
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for k in &mut self.kids {
                drop(k.stdin.take());
                let _ = k.kill();
                let _ = k.wait();
            }
        }
    }

    fn named(names: &[String], id: &str, f: &Fake) -> bool {
        names
            .iter()
            .any(|n| n.ends_with(&format!(".{id}.{}.{}", f.pid, f.start)))
    }

    #[test]
    fn the_loops_previous_sshd_ends_and_no_other() {
        let Some(mut lab) = Lab::new() else { return };
        let a1 = lab.session("sshd", "loopA");
        let b1 = lab.session("sshd-session", "loopB");
        let names = lab.names();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(named(&names, "loopA", &a1) && named(&names, "loopB", &b1));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(lab.records()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        // Loop A reattaches: its previous sshd ends, loop B's stays. It is
        // a zombie until this process reaps it: that counts as gone, no
        // SIGKILL two seconds later.
        let t = Instant::now();
        let a2 = lab.session("sshd", "loopA");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        assert!(!alive(a1.pid), "A's previous sshd still runs");
        assert!(alive(b1.pid) && alive(a2.pid));
        let names = lab.names();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(named(&names, "loopA", &a2) && named(&names, "loopB", &b1));
        // Loop B (an sshd-session) the same way.
        let b2 = lab.session("sshd-session", "loopB");
        assert!(!alive(b1.pid) && alive(a2.pid) && alive(b2.pid));
    }

    #[test]
    fn only_a_live_sshd_of_ours_that_is_not_this_connection_is_ended() {
        let Some(mut lab) = Lab::new() else { return };
        // Another start time: the pid is another process's now.
        let reused = lab.spawn(&[], "sshd", ":");
        let wrong = Fake {
            pid: reused.pid,
            start: format!("{}1", reused.start),
        };
        lab.record("L", &wrong);
        // Not an sshd.
        let other = lab.spawn(&[], "other", ":");
        lab.record("L", &other);
        // Someone else's (as root only: another uid).
        let root = nix::unistd::geteuid().is_root() && Path::new("/usr/bin/setpriv").exists();
        let setpriv = [
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        let theirs = root.then(|| lab.spawn(&setpriv, "sshd", ":"));
        if let Some(t) = &theirs {
            lab.record("L", t);
        }
        // This connection's own sshd (a multiplexed connection serves the
        // next attempt too): the fragment runs under the recorded process.
        let go = lab.path().join("go");
        let done = lab.path().join("done-own");
        let body = format!(
            "n=0; while [ ! -e '{}' ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done; \
             sh -c '{}touch \"$1\"' sh L '{}'",
            go.display(),
            SCRIPT.replace('\'', r"'\''"),
            done.display()
        );
        let own = lab.spawn(&[], "sshd", &body);
        lab.record("L", &own);
        fs::write(&go, "").unwrap();
        let t = Instant::now();
        while !done.exists() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(done.exists(), "the fragment did not finish");
        for f in [&reused, &other, &own].into_iter().chain(theirs.as_ref()) {
            assert!(alive(f.pid), "{} was ended", f.pid);
        }
        // What is left: this connection's record; the others named no live
        // sshd of ours and are gone.
        let names = lab.names();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(named(&names, "L", &own), "{names:?}");
    }

    #[test]
    fn an_sshd_that_ignores_sigterm_is_killed_after_two_seconds() {
        let Some(mut lab) = Lab::new() else { return };
        let done = lab.path().join("stubborn-done");
        let body = format!(
            "trap '' TERM; sh -c '{}touch \"$1\"' sh L '{}'",
            SCRIPT.replace('\'', r"'\''"),
            done.display()
        );
        let stubborn = lab.spawn(&[], "sshd", &body);
        let t = Instant::now();
        while !done.exists() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = Instant::now();
        lab.session("sshd", "L");
        assert!(!alive(stubborn.pid));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
            "{took:?}"
        );
    }

    #[test]
    fn without_an_sshd_above_or_proc_it_does_nothing_and_says_nothing() {
        let Some(lab) = Lab::new() else { return };
        // The test runner is no sshd (nor, in CI, anything above it: when
        // it runs under a real login, that sshd is found and recorded).
        assert!(lab.bare("x"));
    }
}
