//! What the loop remembers between attempts (each attempt is one rosh-ssh
//! process): a private directory that `rosh-ssh --rosh` makes for a new
//! loop and the attempt that ends the loop removes. It holds `state` (one
//! `key=value` a line, unknown keys kept, so later releases can add what
//! they need to know about the loop) and `up`, the mark of a login.

use super::tty::Saved;
use crate::tmpdir::PrivateDir;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// First line of the state file: what it is, in which format.
const MAGIC: &str = "rosh-loop 1";
/// mkdtemp's name for the directory (tmpdir.rs).
const PREFIX: &str = "rosh-ssh.";

/// One loop's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    dir: PathBuf,
    /// The loop's identity on the server: the tmux client of its previous
    /// connection is found by it (remote.rs).
    pub id: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Some attempt logged in.
    pub connected: bool,
    /// The pause the last refusal left (backoff.rs).
    pub wait: u32,
    /// The terminal's mode before the first attempt.
    pub tty: Option<Saved>,
    /// Lines of a later format, kept as they are.
    other: Vec<String>,
}

impl State {
    /// A new loop's directory, with a fresh id; its path.
    pub fn create() -> io::Result<PathBuf> {
        let dir = PrivateDir::new()?;
        let state = State {
            dir: dir.path().to_path_buf(),
            id: loop_id(),
            attempts: 0,
            connected: false,
            wait: 0,
            tty: None,
            other: Vec::new(),
        };
        state.save()?;
        Ok(dir.keep())
    }

    /// The state in `dir`, which must be a loop directory of this user's
    /// (it gets removed at the end: nothing else may pass for one).
    pub fn open(dir: &Path) -> Result<State, String> {
        let bad = |why: &str| format!("{} is not a rosh state directory: {why}", dir.display());
        if !dir.is_absolute() {
            return Err(bad("not an absolute path"));
        }
        let named = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(PREFIX));
        if !named {
            return Err(bad("not named by rosh-ssh"));
        }
        let meta = fs::symlink_metadata(dir).map_err(|e| bad(&e.to_string()))?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o077 != 0 {
            return Err(bad("not a private directory of this user"));
        }
        let mut text = String::new();
        fs::File::open(dir.join("state"))
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
            .map_err(|e| bad(&e.to_string()))?;
        State::parse(dir, &text).ok_or_else(|| bad("unreadable state file"))
    }

    fn parse(dir: &Path, text: &str) -> Option<State> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut s = State {
            dir: dir.to_path_buf(),
            id: String::new(),
            attempts: 0,
            connected: false,
            wait: 0,
            tty: None,
            other: Vec::new(),
        };
        for line in lines {
            let (k, v) = line.split_once('=')?;
            match k {
                "id" => s.id = v.into(),
                "attempts" => s.attempts = v.parse().ok()?,
                "connected" => s.connected = v == "1",
                "wait" => s.wait = v.parse().ok()?,
                "tty" => s.tty = Some(Saved::decode(v)?),
                _ => s.other.push(line.into()),
            }
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-';
        (!s.id.is_empty() && s.id.chars().all(plain)).then_some(s)
    }

    fn text(&self) -> String {
        let mut t = format!(
            "{MAGIC}\nid={}\nattempts={}\nconnected={}\nwait={}\n",
            self.id,
            self.attempts,
            u8::from(self.connected),
            self.wait
        );
        if let Some(tty) = &self.tty {
            t.push_str(&format!("tty={}\n", tty.encode()));
        }
        for l in &self.other {
            t.push_str(l);
            t.push('\n');
        }
        t
    }

    /// Writes the state file whole (a new file renamed over the old one).
    pub fn save(&self) -> io::Result<()> {
        let new = self.dir.join("state.new");
        let _ = fs::remove_file(&new);
        crate::tmpdir::write_new_private(&new, self.text().as_bytes())?;
        fs::rename(new, self.dir.join("state"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mark LocalCommand leaves once ssh is logged in.
    pub fn up_mark(&self) -> PathBuf {
        self.dir.join("up")
    }

    /// The loop is over.
    pub fn remove(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Twelve hex digits from the system's random source, or the pid and time.
fn loop_id() -> String {
    let mut b = [0u8; 6];
    let random = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_ok() {
        return b.iter().map(|x| format!("{x:02x}")).collect();
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{}", std::process::id(), t % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_save_remove() {
        let path = State::create().unwrap();
        let mut s = State::open(&path).unwrap();
        assert_eq!(s.id.len(), 12);
        assert!(s.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            (s.attempts, s.connected, s.wait, s.tty.clone()),
            (0, false, 0, None)
        );
        s.attempts = 3;
        s.connected = true;
        s.wait = 8;
        s.tty = Saved::decode("1 2 3 4 0304");
        s.save().unwrap();
        let again = State::open(&path).unwrap();
        assert_eq!(again, s);
        let other = State::open(&State::create().unwrap()).unwrap();
        assert_ne!(other.id, s.id);
        other.remove();
        s.remove();
        assert!(!path.exists());
    }

    #[test]
    fn later_keys_are_kept() {
        let s = State::parse(
            Path::new("/x"),
            "rosh-loop 1\nid=ab\nsshd=42:1234\nwait=2\n",
        )
        .unwrap();
        assert_eq!(s.wait, 2);
        assert!(s.text().contains("sshd=42:1234\n"));
    }

    #[test]
    fn only_a_loop_directory_passes() {
        for bad in [
            "",
            "rosh-loop 2\nid=ab\n",
            "rosh-loop 1\n",
            "rosh-loop 1\nid=a/b\n",
            "rosh-loop 1\nid=ab\nwait=x\n",
            "rosh-loop 1\nid=ab\nnoequals\n",
        ] {
            assert!(State::parse(Path::new("/x"), bad).is_none(), "{bad:?}");
        }
        assert!(State::open(Path::new("relative/rosh-ssh.abc")).is_err());
        assert!(State::open(Path::new("/tmp")).is_err());
        // A directory of the right name but not private, or without a state file.
        let d = PrivateDir::new().unwrap();
        let e = State::open(d.path()).unwrap_err();
        assert!(e.contains("is not a rosh state directory"), "{e}");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        crate::tmpdir::write_new_private(&d.path().join("state"), b"rosh-loop 1\nid=ab\n").unwrap();
        assert!(State::open(d.path()).is_err());
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(State::open(d.path()).is_ok());
    }
}
