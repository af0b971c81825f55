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
    let me = identity(Path::new("/proc/self/exe"));
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
        let sh = identity(Path::new("/usr/bin/sh"));
        let p = OsString::from("/usr/bin:/bin");
        // /usr/bin/sh is "me": the next directory's sh is a different path
        // but may be the same file (usrmerge), so it is skipped too.
        let got = search(OsStr::new("sh"), Some(&p), sh);
        assert!(got.is_none() || identity(got.as_ref().unwrap()) != sh);
    }

    #[test]
    fn no_ssh_at_all_is_not_called_rosh_ssh_itself() {
        let empty = OsString::from("/nonexistent");
        let e = real_ssh(None, Some(&empty)).unwrap_err();
        assert!(matches!(e, Error::NoSsh), "{e}");
        assert!(e.to_string().starts_with("no ssh found on PATH"), "{e}");
    }

    #[test]
    fn depth_reads_numbers_only() {
        assert_eq!(depth(None), 0);
        assert_eq!(depth(Some(OsStr::new("3"))), 3);
        assert_eq!(depth(Some(OsStr::new("x"))), 0);
    }
}
