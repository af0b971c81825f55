//! The words of the ssh that runs this ProxyCommand, from the system's process table.
//!
//! ssh starts a ProxyCommand as `$SHELL -c "exec COMMAND"` (sshconnect.c
//! ssh_proxy_connect), so the ssh is the parent, or the grandparent when a
//! shell stays between (a command the shell does not exec). It is known by
//! its executable being the real ssh's file: the same file, not the same
//! name. Where the system cannot say (another OS, another user's ssh), the
//! answer is `None` and proxy mode goes on in silence.

use crate::procinfo;
use std::ffi::OsString;
use std::path::Path;

/// How many generations up the ssh may be: the parent, or the grandparent.
const GENERATIONS: usize = 2;

/// The arguments (after `argv[0]`) of the ssh whose executable is `ssh`
/// and that runs this process, if one of the nearest ancestors is it.
pub fn ssh_words(ssh: &Path) -> Option<Vec<OsString>> {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(ssh).ok().map(|m| (m.dev(), m.ino()))?;
    let mut pid = nix::unistd::getppid().as_raw();
    for _ in 0..GENERATIONS {
        if procinfo::exe(pid) == Some(want) {
            let mut words = procinfo::args(pid)?;
            if words.is_empty() {
                return None;
            }
            words.remove(0);
            return Some(words);
        }
        pid = procinfo::parent(pid)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// This test binary's parent is cargo (or a shell), never `/bin/sh`'s
    /// file under `ssh`'s name: nothing is found, nothing panics.
    #[test]
    fn no_ssh_among_the_ancestors_is_none() {
        let this = std::env::current_exe().unwrap();
        // This binary is nobody's parent here, and not our parent either.
        assert_eq!(ssh_words(&this), None);
        assert_eq!(ssh_words(Path::new("/nonexistent/ssh")), None);
    }

    /// The walk finds a parent and a grandparent by their executable: this
    /// test binary runs itself as a child (through `sh -c` for the
    /// grandparent), and the child prints what it found.
    #[test]
    fn finds_the_parent_and_the_grandparent() {
        if let Some(path) = std::env::var_os("ROSH_PARENT_PROBE") {
            let words = ssh_words(Path::new(&path));
            println!("found: {words:?}");
            return;
        }
        let me = std::env::current_exe().unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd
                .env("ROSH_PARENT_PROBE", &me)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let test = "parent::tests::finds_the_parent_and_the_grandparent";
        let child = format!(
            "{} --exact {test} --nocapture --test-threads=1",
            me.display()
        );
        // The child's parent is this test binary: found, its words given.
        let direct = run(Command::new(&me).args(["--exact", test, "--nocapture"]));
        let mine: Vec<OsString> = std::env::args_os().skip(1).collect();
        assert!(
            direct.contains(&format!("found: Some({mine:?})")),
            "{direct}"
        );
        // A shell between (no exec): the grandparent is found.
        let via_sh = run(Command::new("/bin/sh").args(["-c", &format!("{child}; true")]));
        assert!(
            via_sh.contains(&format!("found: Some({mine:?})")),
            "{via_sh}"
        );
        // Two shells between: too far up, not found.
        let inner = format!("/bin/sh -c '{child}; true'; true");
        let too_far = run(Command::new("/bin/sh").args(["-c", &inner]));
        assert!(too_far.contains("found: None"), "{too_far}");
    }
}
