//! Finding the real ssh: `--ssh`/`ROSH_SSH`, else the first `ssh` on PATH
//! that is not this binary (compared as resolved files, not names).

use crate::error::Error;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Set in the environment of whatever rosh-ssh runs as ssh (`ssh -G`, the
/// session, the `-O` helpers, the fast path's exec): `N DEV:INO ...`, how
/// many rosh-ssh levels run and the files they run from. A wrapper loop
/// that PATH can't reveal (a script that calls rosh-ssh) ends at
/// [`MAX_DEPTH`]; a second copy of rosh-ssh (another file: `~/.local` and a
/// package, each with its PATH shim) skips the copies above it when it looks
/// for the real ssh, so two copies never run each other.
pub const DEPTH_VAR: &str = "ROSH_SSH_DEPTH";
pub const MAX_DEPTH: u32 = 8;

/// Set in the environment of the session's ssh that a supervising rosh-ssh
/// runs: its pid. A rosh-ssh that is that very child (a second copy found on
/// PATH as `ssh`) steps aside and becomes the real ssh, with the words as
/// they are: the outer one already reads the log and restores.
pub const OUTER_VAR: &str = "ROSH_SSH_OUTER";

/// A file's identity: device and inode.
pub type Id = (u64, u64);

/// The rosh-ssh levels above this process, from [`DEPTH_VAR`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub depth: u32,
    /// The files of the rosh-ssh copies above (and, after [`Chain::with_me`],
    /// this one's).
    pub seen: Vec<Id>,
}

impl Chain {
    /// Reads [`DEPTH_VAR`]; what does not read is no level at all.
    pub fn inherited(var: Option<&OsStr>) -> Chain {
        let Some(text) = var.and_then(OsStr::to_str) else {
            return Chain::default();
        };
        let mut words = text.split(' ');
        let depth = words.next().and_then(|d| d.parse().ok()).unwrap_or(0);
        let seen = words
            .filter_map(|w| {
                let (dev, ino) = w.split_once(':')?;
                Some((dev.parse().ok()?, ino.parse().ok()?))
            })
            .collect();
        Chain { depth, seen }
    }

    /// The chain one level down: this process counted, its file added.
    pub fn with_me(&self) -> Chain {
        let mut seen = self.seen.clone();
        seen.extend(own_identity().filter(|me| !seen.contains(me)));
        Chain {
            depth: self.depth + 1,
            seen,
        }
    }

    /// The value of [`DEPTH_VAR`] for the programs run below.
    pub fn value(&self) -> String {
        let mut v = self.depth.to_string();
        for (dev, ino) in &self.seen {
            v.push_str(&format!(" {dev}:{ino}"));
        }
        v
    }
}

/// Whether this process is the session ssh of a supervising rosh-ssh: named
/// in [`OUTER_VAR`], and this process's parent. (A rosh-ssh further down,
/// run by ssh as a ProxyCommand or LocalCommand, has ssh as its parent.)
pub fn under_supervisor(var: Option<&OsStr>) -> bool {
    let pid: Option<u32> = var.and_then(OsStr::to_str).and_then(|v| v.parse().ok());
    pid.is_some_and(|p| nix::unistd::getppid().as_raw() as u32 == p)
}

fn identity(p: &Path) -> Option<Id> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// The identity of this very binary: on Linux one stat of /proc/self/exe
/// (it names the file even under another name or after a rename).
#[cfg(all(target_os = "linux", not(rosh_portable)))]
fn own_identity() -> Option<Id> {
    identity(Path::new("/proc/self/exe"))
}

/// Without /proc: the path the system gives (`_NSGetExecutablePath` on
/// macOS, the KERN_PROC_PATHNAME sysctl on FreeBSD), then a stat of it,
/// which follows the PATH shim's symlink to the file itself.
#[cfg(any(not(target_os = "linux"), rosh_portable))]
fn own_identity() -> Option<Id> {
    identity(&std::env::current_exe().ok()?)
}

/// The identity of `p` if it is an executable file: one stat for both.
fn executable(p: &Path) -> Option<Id> {
    std::fs::metadata(p)
        .ok()
        .filter(|m| m.is_file() && m.mode() & 0o111 != 0)
        .map(|m| (m.dev(), m.ino()))
}

/// The real ssh to run. `explicit` is `--ssh` or `ROSH_SSH`; a bare name is
/// looked up on PATH like ssh itself would be.
///
/// `me`: this binary's file and those of the rosh-ssh copies above it
/// ([`Chain::with_me`]), none of which is the real ssh.
pub fn real_ssh(
    explicit: Option<&OsStr>,
    path_var: Option<&OsStr>,
    me: &[Id],
) -> Result<PathBuf, Error> {
    if let Some(e) = explicit.filter(|e| !e.is_empty()) {
        let p = if e.as_bytes().contains(&b'/') {
            PathBuf::from(e)
        } else {
            search(e, path_var, me)
                .ok_or_else(|| Error::BadSsh(PathBuf::from(e), "not found on PATH".into()))?
        };
        let Some(id) = executable(&p) else {
            return Err(Error::BadSsh(p, "not an executable file".into()));
        };
        if me.contains(&id) {
            return Err(Error::SshIsSelf(p));
        }
        return Ok(p);
    }
    let ssh = OsStr::new("ssh");
    search(ssh, path_var, me).ok_or_else(|| {
        // Only this binary answers to `ssh`, or nothing at all does.
        if search(ssh, path_var, &[]).is_some() {
            Error::NoRealSsh
        } else {
            Error::NoSsh
        }
    })
}

/// The first executable `name` in the PATH directories that is none of `skip`.
fn search(name: &OsStr, path_var: Option<&OsStr>, skip: &[Id]) -> Option<PathBuf> {
    let path_var = path_var?;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        // An empty PATH entry means the current directory, as in execvp.
        let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
        let cand = Path::new(OsStr::from_bytes(dir)).join(name);
        if executable(&cand).is_some_and(|id| !skip.contains(&id)) {
            return Some(cand);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn skips_non_executables_and_empty_path() {
        assert_eq!(search(OsStr::new("ssh"), None, &[]), None);
        let p = OsString::from("/nonexistent:/usr/bin");
        let got = search(OsStr::new("sh"), Some(&p), &[]).unwrap();
        assert_eq!(got, PathBuf::from("/usr/bin/sh"));
    }

    #[test]
    fn skips_self_by_identity() {
        // a/tool is "me"; b/tool is the same file under another name (a hard
        // link, like /bin and /usr/bin under usrmerge); c/tool is another file.
        let dir = std::env::temp_dir().join(format!("rosh-locate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["a", "b", "c"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let script = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(&dir.join("a/tool"));
        std::fs::hard_link(dir.join("a/tool"), dir.join("b/tool")).unwrap();
        script(&dir.join("c/tool"));
        let me = identity(&dir.join("a/tool")).unwrap();
        let other = identity(&dir.join("c/tool")).unwrap();
        let path = |ds: &[&str]| {
            let v: Vec<String> = ds
                .iter()
                .map(|d| dir.join(d).display().to_string())
                .collect();
            OsString::from(v.join(":"))
        };
        let tool = OsStr::new("tool");
        let got = search(tool, Some(&path(&["a", "b", "c"])), &[me]);
        let none = search(tool, Some(&path(&["a", "b"])), &[me]);
        let first = search(tool, Some(&path(&["b", "c"])), &[]);
        // An outer copy is skipped like this one: nothing is left.
        let both = search(tool, Some(&path(&["a", "b", "c"])), &[me, other]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Some(dir.join("c/tool")));
        assert_eq!(none, None);
        assert_eq!(first, Some(dir.join("b/tool")), "not me: the first one");
        assert_eq!(both, None);
    }

    #[test]
    fn no_ssh_at_all_is_not_called_rosh_ssh_itself() {
        let empty = OsString::from("/nonexistent");
        let e = real_ssh(None, Some(&empty), &[]).unwrap_err();
        assert!(matches!(e, Error::NoSsh), "{e}");
        assert!(e.to_string().starts_with("no ssh found on PATH"), "{e}");
    }

    /// Whichever way it is found, this binary's identity is its own file's.
    #[test]
    fn own_identity_is_this_binary() {
        let exe = std::env::current_exe().unwrap();
        assert!(own_identity().is_some());
        assert_eq!(own_identity(), identity(&exe));
        assert_ne!(own_identity(), identity(Path::new("/bin/sh")));
    }

    #[test]
    fn the_chain_reads_what_it_wrote_and_nothing_else() {
        let table: &[(Option<&str>, u32, Vec<Id>)] = &[
            (None, 0, vec![]),
            (Some("3"), 3, vec![]),
            (Some("x"), 0, vec![]),
            (Some("2 1:2 3:4"), 2, vec![(1, 2), (3, 4)]),
            (Some("2 1:2 junk 3"), 2, vec![(1, 2)]),
        ];
        for (v, depth, seen) in table {
            let c = Chain::inherited(v.map(OsStr::new));
            assert_eq!((c.depth, &c.seen), (*depth, seen), "{v:?}");
        }
        let me = own_identity().unwrap();
        let below = Chain::inherited(Some(OsStr::new("1 7:8"))).with_me();
        assert_eq!(below.depth, 2);
        assert_eq!(below.seen, [(7, 8), me]);
        assert_eq!(Chain::inherited(Some(OsStr::new(&below.value()))), below);
        // Counted once, however often this file runs in the chain.
        assert_eq!(below.with_me().seen, [(7, 8), me]);
    }

    #[test]
    fn under_supervisor_only_as_its_child() {
        let me = std::process::id().to_string();
        let parent = nix::unistd::getppid().to_string();
        assert!(!under_supervisor(None));
        assert!(!under_supervisor(Some(OsStr::new(&me))));
        assert!(!under_supervisor(Some(OsStr::new("x"))));
        assert!(under_supervisor(Some(OsStr::new(&parent))));
    }
}
