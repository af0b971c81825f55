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

/// The file identity of a path, following symlinks.
fn identity(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// The identity of this very binary: on Linux one stat of /proc/self/exe
/// (it names the file even under another name or after a rename).
#[cfg(all(target_os = "linux", not(rosh_portable)))]
fn own_identity() -> Option<(u64, u64)> {
    identity(Path::new("/proc/self/exe"))
}

/// Without /proc: the path the system gives (`_NSGetExecutablePath` on
/// macOS, the KERN_PROC_PATHNAME sysctl on FreeBSD), then a stat of it,
/// which follows the PATH shim's symlink to the file itself.
#[cfg(any(not(target_os = "linux"), rosh_portable))]
fn own_identity() -> Option<(u64, u64)> {
    identity(&std::env::current_exe().ok()?)
}

/// The identity of `p` if it is an executable file: one stat for both.
fn executable(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p)
        .ok()
        .filter(|m| m.is_file() && m.mode() & 0o111 != 0)
        .map(|m| (m.dev(), m.ino()))
}

/// The real ssh to run. `explicit` is `--ssh` or `ROSH_SSH`; a bare name is
/// looked up on PATH like ssh itself would be.
pub fn real_ssh(explicit: Option<&OsStr>, path_var: Option<&OsStr>) -> Result<PathBuf, Error> {
    let me = own_identity();
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
        if me == Some(id) {
            return Err(Error::SshIsSelf(p));
        }
        return Ok(p);
    }
    let ssh = OsStr::new("ssh");
    search(ssh, path_var, me).ok_or_else(|| {
        // Only this binary answers to `ssh`, or nothing at all does.
        if search(ssh, path_var, None).is_some() {
            Error::NoRealSsh
        } else {
            Error::NoSsh
        }
    })
}

/// The first executable `name` in the PATH directories that is not `me`.
fn search(name: &OsStr, path_var: Option<&OsStr>, me: Option<(u64, u64)>) -> Option<PathBuf> {
    let path_var = path_var?;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        // An empty PATH entry means the current directory, as in execvp.
        let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
        let cand = Path::new(OsStr::from_bytes(dir)).join(name);
        if executable(&cand).is_some_and(|id| Some(id) != me) {
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
        assert_eq!(search(OsStr::new("ssh"), None, None), None);
        let p = OsString::from("/nonexistent:/usr/bin");
        let got = search(OsStr::new("sh"), Some(&p), None).unwrap();
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
        let me = identity(&dir.join("a/tool"));
        assert!(me.is_some());
        let path = |ds: &[&str]| {
            let v: Vec<String> = ds
                .iter()
                .map(|d| dir.join(d).display().to_string())
                .collect();
            OsString::from(v.join(":"))
        };
        let tool = OsStr::new("tool");
        let got = search(tool, Some(&path(&["a", "b", "c"])), me);
        let none = search(tool, Some(&path(&["a", "b"])), me);
        let other = search(tool, Some(&path(&["b", "c"])), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Some(dir.join("c/tool")));
        assert_eq!(none, None);
        assert_eq!(other, Some(dir.join("b/tool")), "not me: the first one");
    }

    #[test]
    fn no_ssh_at_all_is_not_called_rosh_ssh_itself() {
        let empty = OsString::from("/nonexistent");
        let e = real_ssh(None, Some(&empty)).unwrap_err();
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
    fn depth_reads_numbers_only() {
        assert_eq!(depth(None), 0);
        assert_eq!(depth(Some(OsStr::new("3"))), 3);
        assert_eq!(depth(Some(OsStr::new("x"))), 0);
    }
}
