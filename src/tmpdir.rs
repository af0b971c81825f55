//! A private 0700 scratch directory (rewritten ssh configs, the `-E` log FIFO), removed on drop.
//!
//! Created race-free with mkdtemp(3) as `rosh-ssh.XXXXXX` under `$XDG_RUNTIME_DIR` (when it is
//! set, absolute, and a directory we own), else `$TMPDIR` (when absolute), else `/tmp`. Files in it
//! are made with `O_EXCL` and mode 0600, so nothing that was there before can be reused. Nothing here
//! panics: every failure is an `io::Error`, and removal errors in `Drop` are ignored.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The name template handed to mkdtemp(3).
const TEMPLATE: &str = "rosh-ssh.XXXXXX";

/// Whether `name` is one [`PrivateDir`] could have made: the template with
/// its `XXXXXX` replaced by mkdtemp(3)'s letters and digits.
pub fn is_private_name(name: &[u8]) -> bool {
    let stem = TEMPLATE.trim_end_matches('X').as_bytes();
    name.len() == TEMPLATE.len()
        && name.starts_with(stem)
        && name[stem.len()..].iter().all(u8::is_ascii_alphanumeric)
}

/// A private directory that lives as long as this value (or until [`PrivateDir::remove`]).
#[derive(Debug)]
pub struct PrivateDir {
    /// Absolute path of the directory; `None` once removed.
    path: Option<PathBuf>,
}

impl PrivateDir {
    /// Creates the directory under the first usable base: `$XDG_RUNTIME_DIR`, `$TMPDIR`, `/tmp`.
    pub fn new() -> io::Result<PrivateDir> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no usable temporary directory");
        for base in bases(
            std::env::var_os("XDG_RUNTIME_DIR"),
            std::env::var_os("TMPDIR"),
        ) {
            match PrivateDir::new_in(&base) {
                Ok(d) => return Ok(d),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Creates the directory under `base`, which must be an absolute path.
    pub fn new_in(base: &Path) -> io::Result<PrivateDir> {
        if !base.is_absolute() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "temporary directory base is not absolute",
            ));
        }
        let made = nix::unistd::mkdtemp(&base.join(TEMPLATE)).map_err(io::Error::from)?;
        let dir = PrivateDir { path: Some(made) };
        // mkdtemp asks for 0700 but the umask may take bits away; a dir we cannot use is no use.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        Ok(dir)
    }

    /// The directory's absolute path (empty once removed).
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Creates `name` in the directory with exactly `bytes`, mode 0600; fails if it exists.
    pub fn file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let p = self.child(name)?;
        write_new_private(&p, bytes)?;
        Ok(p)
    }

    /// Creates a FIFO `name` in the directory, mode 0600; fails if it exists.
    pub fn fifo(&self, name: &str) -> io::Result<PathBuf> {
        let p = self.child(name)?;
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(io::Error::from)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600))?;
        Ok(p)
    }

    /// Keeps the directory past this value (no removal on drop) and returns its path: for state
    /// that outlives this process, removed later by whoever owns it then.
    pub fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }

    /// Removes the directory and everything in it now, reporting the error `Drop` would ignore.
    pub fn remove(mut self) -> io::Result<()> {
        match self.path.take() {
            Some(p) => fs::remove_dir_all(p),
            None => Ok(()),
        }
    }

    /// `name` inside the directory, if it is one plain file name (no `/`, not `.` or `..`).
    fn child(&self, name: &str) -> io::Result<PathBuf> {
        let Some(dir) = self.path.as_deref() else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "directory removed"));
        };
        if !is_plain_name(OsStr::new(name)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain file name",
            ));
        }
        Ok(dir.join(name))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Creates `path` with `O_EXCL`, mode 0600 whatever the umask, and writes `bytes` to it.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.flush()
}

fn is_plain_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && b != b"." && b != b".." && !b.contains(&b'/') && !b.contains(&0)
}

/// The candidate bases in order, given `$XDG_RUNTIME_DIR` and `$TMPDIR`.
fn bases(xdg: Option<OsString>, tmpdir: Option<OsString>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(x) = xdg.map(PathBuf::from)
        && x.is_absolute()
        && owned_dir(&x)
    {
        out.push(x);
    }
    if let Some(t) = tmpdir.map(PathBuf::from)
        && t.is_absolute()
    {
        out.push(t);
    }
    out.push(PathBuf::from("/tmp"));
    out
}

/// A directory owned by our effective uid: `$XDG_RUNTIME_DIR` of another user is not ours to use.
fn owned_dir(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn dir_file_and_fifo_are_private() {
        let d = PrivateDir::new_in(Path::new("/tmp")).unwrap();
        assert_eq!(mode(d.path()), 0o700);
        let name = d.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("rosh-ssh.") && name.len() == TEMPLATE.len());
        assert!(is_private_name(name.as_bytes()), "{name}");
        for other in [
            "rosh-ssh.",
            "rosh-ssh.abcdefg",
            "rosh-ssh.abc/de",
            "rosh-sh.abcdef",
        ] {
            assert!(!is_private_name(other.as_bytes()), "{other}");
        }
        let f = d.file("cfg", b"Port 22\n").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(fs::read(&f).unwrap(), b"Port 22\n");
        let q = d.fifo("log").unwrap();
        assert_eq!(mode(&q), 0o600);
        assert!(fs::metadata(&q).unwrap().file_type().is_fifo());
    }

    #[test]
    fn existing_names_are_never_reused() {
        let d = PrivateDir::new().unwrap();
        d.file("a", b"1").unwrap();
        assert_eq!(
            d.file("a", b"2").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(d.fifo("a").is_err());
        assert_eq!(fs::read(d.path().join("a")).unwrap(), b"1");
    }

    #[test]
    fn names_must_be_plain() {
        let d = PrivateDir::new().unwrap();
        for bad in ["", ".", "..", "a/b", "/etc/passwd", "../x", "a\0b"] {
            assert!(d.file(bad, b"").is_err(), "{bad:?}");
            assert!(d.fifo(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn drop_and_remove_clean_up_everything() {
        let d = PrivateDir::new().unwrap();
        let p = d.path().to_owned();
        d.file("x", b"x").unwrap();
        d.fifo("y").unwrap();
        fs::create_dir(p.join("sub")).unwrap();
        fs::write(p.join("sub/z"), b"z").unwrap();
        drop(d);
        assert!(!p.exists());

        let d = PrivateDir::new().unwrap();
        let p = d.path().to_owned();
        d.file("x", b"x").unwrap();
        d.remove().unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn removal_of_an_already_gone_dir_does_not_panic() {
        let d = PrivateDir::new().unwrap();
        fs::remove_dir_all(d.path()).unwrap();
        assert!(d.file("x", b"").is_err());
        drop(d);
        let d = PrivateDir::new().unwrap();
        fs::remove_dir_all(d.path()).unwrap();
        assert!(d.remove().is_err());
    }

    #[test]
    fn concurrent_creation_gives_distinct_dirs() {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..8)
                        .map(|_| PrivateDir::new_in(Path::new("/tmp")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let dirs: Vec<PrivateDir> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let mut paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_owned()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 16 * 8);
        assert!(paths.iter().all(|p| mode(p) == 0o700));
        drop(dirs);
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn base_choice() {
        let own = std::env::temp_dir();
        let own = own.canonicalize().unwrap();
        let os = |s: &Path| Some(s.as_os_str().to_owned());
        // (XDG_RUNTIME_DIR, TMPDIR) -> bases
        let cases: Vec<(Option<OsString>, Option<OsString>, Vec<PathBuf>)> = vec![
            (None, None, vec!["/tmp".into()]),
            (os(&own), None, vec![own.clone(), "/tmp".into()]),
            (Some("relative".into()), None, vec!["/tmp".into()]),
            (Some("/nonexistent-xdg".into()), None, vec!["/tmp".into()]),
            (
                None,
                Some("/var/tmp".into()),
                vec!["/var/tmp".into(), "/tmp".into()],
            ),
            (None, Some("rel".into()), vec!["/tmp".into()]),
        ];
        for (xdg, tmp, want) in cases {
            assert_eq!(bases(xdg.clone(), tmp.clone()), want, "{xdg:?} {tmp:?}");
        }
    }

    #[test]
    fn a_bad_base_is_an_error_not_a_panic() {
        assert!(PrivateDir::new_in(Path::new("/nonexistent-base/x")).is_err());
        assert!(PrivateDir::new_in(Path::new("relative")).is_err());
    }
}
