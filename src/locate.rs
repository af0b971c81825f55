//! Finding the real ssh: `--ssh`/`ROSH_SSH`, else the first `ssh` on PATH
//! that is not this binary (compared as resolved files, not names).

use crate::error::Error;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Set in the real ssh's environment: how many rosh-ssh levels are running.
/// A wrapper loop that PATH can't reveal (a copy of rosh-ssh, a script that
/// calls it) ends here instead of forking forever.
pub const DEPTH_VAR: &str = "ROSH_SSH_DEPTH";
pub const MAX_DEPTH: u32 = 8;

/// Set in the environment of the ssh a supervising rosh-ssh runs: its pid
/// and its file (`PID:DEV:INO`). A rosh-ssh that is that very child (a
/// second copy, installed elsewhere, found on PATH as `ssh`) steps aside:
/// it runs the real ssh with the words as they are, skipping both copies,
/// for the outer one already reads the log and restores.
pub const OUTER_VAR: &str = "ROSH_SSH_OUTER";

/// A file's identity: device and inode.
type Id = (u64, u64);

/// The supervising rosh-ssh, as [`OUTER_VAR`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    pub pid: u32,
    pub file: Id,
}

impl Outer {
    /// This process, for its child's environment.
    pub fn me() -> String {
        let (dev, ino) = own_identity().unwrap_or((0, 0));
        format!("{}:{dev}:{ino}", std::process::id())
    }

    pub fn parse(v: &OsStr) -> Option<Outer> {
        let mut it = v.to_str()?.split(':').map(|n| n.parse::<u64>().ok());
        let (pid, dev, ino) = (it.next()??, it.next()??, it.next()??);
        if it.next().is_some() {
            return None;
        }
        Some(Outer {
            pid: u32::try_from(pid).ok()?,
            file: (dev, ino),
        })
    }

    /// The rosh-ssh this process runs under as its ssh: named in the
    /// environment and this process's parent. (A rosh-ssh further down, run
    /// by ssh as a ProxyCommand or LocalCommand, has ssh as its parent.)
    pub fn running_me(var: Option<&OsStr>) -> Option<Outer> {
        let o = Outer::parse(var?)?;
        (nix::unistd::getppid().as_raw() as u32 == o.pid).then_some(o)
    }
}

/// The file identity of a path, following symlinks.
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
/// `outer` is the rosh-ssh this one runs under as its ssh: skipped too.
pub fn real_ssh(
    explicit: Option<&OsStr>,
    path_var: Option<&OsStr>,
    outer: Option<Outer>,
) -> Result<PathBuf, Error> {
    let me: Vec<Id> = own_identity()
        .into_iter()
        .chain(outer.map(|o| o.file))
        .collect();
    if let Some(e) = explicit.filter(|e| !e.is_empty()) {
        let p = if e.as_bytes().contains(&b'/') {
            PathBuf::from(e)
        } else {
            search(e, path_var, &me)
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
    search(ssh, path_var, &me).ok_or_else(|| {
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

/// The nesting depth this process runs at, from the environment.
pub fn depth(var: Option<&OsStr>) -> u32 {
    var.and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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
        let e = real_ssh(None, Some(&empty), None).unwrap_err();
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
    fn outer_is_read_whole_or_not_at_all() {
        let table: &[(&str, Option<(u32, u64, u64)>)] = &[
            ("12:3:4", Some((12, 3, 4))),
            ("12:3", None),
            ("12:3:4:5", None),
            ("x:3:4", None),
            ("", None),
            ("99999999999:3:4", None),
        ];
        for (v, want) in table {
            let got = Outer::parse(OsStr::new(v)).map(|o| (o.pid, o.file.0, o.file.1));
            assert_eq!(got, *want, "{v}");
        }
        // Named, but not this process's parent: a rosh-ssh further down.
        let v = format!("{}:1:2", std::process::id());
        assert_eq!(Outer::running_me(Some(OsStr::new(&v))), None);
        let v = format!("{}:1:2", nix::unistd::getppid());
        assert!(Outer::running_me(Some(OsStr::new(&v))).is_some());
    }

    #[test]
    fn depth_reads_numbers_only() {
        assert_eq!(depth(None), 0);
        assert_eq!(depth(Some(OsStr::new("3"))), 3);
        assert_eq!(depth(Some(OsStr::new("x"))), 0);
    }
}
