//! `ssh -G`'s answer, remembered between calls that would get the same one.
//!
//! Tools that ride a ControlMaster (Ansible, GNU parallel, git) run ssh many
//! times with the same words, and `ssh -G` (an ssh start, ~2.7 ms) was most
//! of what rosh-ssh added to such a call (issue 25, bench/RESULTS.md). The
//! answer is still ssh's own: the first call asks ssh, and a later call
//! reuses it only when every input ssh's answer is made from is byte for byte
//! the same. Those inputs, from ssh.c `main` up to `dump_client_config` and
//! readconf.c (OpenSSH 8.0 to 10.5):
//! - the ssh binary (path, device, inode, size, mtime, ctime): another
//!   release reads otherwise, and `Match version` (10.x) asks;
//! - the words, whole;
//! - the whole environment (`${VAR}` in config values, `~` of `Include` is
//!   `$HOME`, and whatever a later release reads), the working directory;
//! - the real and effective user and group ids, the passwd name and home
//!   (`%u`, `%d`, `%i`, `Match localuser`, `~/.ssh/config`), the host name
//!   (`%l`, `%L`, `%C`);
//! - every config file ssh reads, with every `Include` followed whatever its
//!   Host/Match block (a superset): path, owner, group, mode and bytes,
//!   and each `Include` pattern's matches (config.rs
//!   [`Config::fingerprint`]).
//!
//! An answer is kept only when nothing else goes into it: no `Match exec` or
//! `Match localnetwork` and no `Include` that ssh may expand (config.rs
//! says), no host name canonicalization and no permitted CNAMEs (both ask the
//! DNS, ssh.c `resolve_canonicalize`), and an ssh whose system config is the
//! one read here (its binary names `/etc/ssh/ssh_config` and no other
//! `ssh_config`). And only where many calls are likely: ssh would use a
//! control path. The inputs are read again after ssh answered and the answer
//! is kept only if they did not change meanwhile.
//!
//! Where: `$XDG_RUNTIME_DIR/rosh-ssh`, else `$XDG_CACHE_HOME/rosh-ssh`, else
//! `~/.cache/rosh-ssh` (from `$HOME`); a 0700 directory of the effective
//! user's, or nothing is remembered. At most [`MAX_ENTRIES`] answers; the
//! oldest go first. Nothing here fails a run: any trouble means asking ssh.

use crate::config::{self, Config, Sources};
use crate::effective::{self, Effective, Rejected};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The first bytes of every entry; a new layout gets a new number.
const FORMAT: &[u8] = b"rosh-ssh ssh -G memo 1\n";
/// Entries kept at most; when a new one makes more, the oldest go until
/// [`KEEP_AFTER_PRUNE`] are left.
pub const MAX_ENTRIES: usize = 256;
const KEEP_AFTER_PRUNE: usize = 192;
/// The longest ssh binary searched for its system config's name.
const MAX_BINARY: u64 = 64 << 20;
/// Entry names: this prefix, then the key's hash in hex.
const PREFIX: &str = "g-";

/// What one call's `ssh -G` answer is made from, and where it is kept.
#[derive(Debug)]
pub struct Memo {
    key: Vec<u8>,
    file: PathBuf,
}

/// `ssh -G <words>` as [`effective::query`] gives it, from the memo when it
/// may be, else from ssh (then kept when it may be). `trees` are the config
/// files the words may make ssh read (one tree per reading of the words).
/// `note` hears, for `--verbose`, where the answer came from.
pub fn query(
    ssh: &Path,
    words: &[OsString],
    trees: &[(Sources, Config)],
    note: &mut dyn FnMut(String),
) -> io::Result<Result<Effective, Rejected>> {
    let memo = Memo::new(
        ssh,
        words,
        std::env::vars_os(),
        trees.iter().map(|(_, c)| c),
    );
    if let Ok(m) = &memo
        && let Some(out) = m.recall()
    {
        note(format!(
            "ssh -G: the answer remembered in {}",
            m.file.display()
        ));
        return Ok(Ok(Effective::parse(&out)));
    }
    let out = match effective::ask(ssh, words)? {
        Ok(out) => out,
        Err(rejected) => return Ok(Err(rejected)),
    };
    let kept = memo.and_then(|m| {
        let again = || {
            let fresh: Vec<Config> = trees.iter().map(|(s, _)| Config::load(s)).collect();
            key(ssh, words, std::env::vars_os(), fresh.iter())
        };
        m.keep(&out, ssh, again)
    });
    match kept {
        Ok(file) => note(format!("ssh -G: answer kept in {}", file.display())),
        Err(why) => note(format!("ssh -G: answer not kept: {why}")),
    }
    Ok(Ok(Effective::parse(&out)))
}

impl Memo {
    /// The entry for ssh's answer to `words` run with environment `env`, or
    /// why there is none.
    pub fn new<'a>(
        ssh: &Path,
        words: &[OsString],
        env: impl Iterator<Item = (OsString, OsString)>,
        configs: impl Iterator<Item = &'a Config>,
    ) -> Result<Memo, &'static str> {
        let key = key(ssh, words, env, configs)?;
        let dir = base()
            .ok_or("no directory for it ($XDG_RUNTIME_DIR, $XDG_CACHE_HOME, $HOME)")?
            .join("rosh-ssh");
        let file = dir.join(format!("{PREFIX}{:016x}", fnv1a(&key)));
        Ok(Memo { key, file })
    }

    fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }

    /// The answer kept for exactly this key, if any.
    pub fn recall(&self) -> Option<Vec<u8>> {
        if !private(self.dir()) {
            return None;
        }
        read_entry(&self.file, &self.key)
    }

    /// Keeps `out`, ssh's answer for this key, when it may be kept (see the
    /// module's words); `again` reads the inputs anew, after ssh answered.
    /// The file written, or why not.
    pub fn keep(
        &self,
        out: &[u8],
        ssh: &Path,
        again: impl FnOnce() -> Result<Vec<u8>, &'static str>,
    ) -> Result<PathBuf, &'static str> {
        keepable(out)?;
        if again()? != self.key {
            return Err("what ssh read changed while it answered");
        }
        let dir = self.dir();
        if !make_private(dir) {
            return Err("no private directory for it");
        }
        if !trusted(dir, ssh)? {
            return Err("this ssh reads a system config other than /etc/ssh/ssh_config");
        }
        if write_entry(dir, &self.file, &self.key, out).is_err() {
            return Err("the entry could not be written");
        }
        prune(dir, &self.file);
        Ok(self.file.clone())
    }
}

/// The answer of the entry `file` if its key is `key`: a file of the
/// effective user's.
fn read_entry(file: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let mut f = fs::File::open(file).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(&mut f, &mut bytes).ok()?;
    answer_for(&bytes, key).map(<[u8]>::to_vec)
}

/// Writes the entry `file` in `dir` whole or not at all (a private
/// temporary file renamed over it).
fn write_entry(dir: &Path, file: &Path, key: &[u8], out: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&entry(key, out))?;
        fs::rename(&tmp, file)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// [`reads_system_config`], asked once per ssh binary: the answer is kept as
/// an entry of its own, keyed by the binary's identity, so that a call that
/// keeps an answer does not read a megabyte of ssh each time (a tool that
/// changes a variable at every call keeps one at every call).
fn trusted(dir: &Path, ssh: &Path) -> Result<bool, &'static str> {
    const TRUSTED: &[u8] = b"names /etc/ssh/ssh_config alone";
    let id = ssh_identity(ssh)?;
    let file = dir.join(format!("{PREFIX}ssh-{:016x}", fnv1a(&id)));
    if read_entry(&file, &id).as_deref() == Some(TRUSTED) {
        return Ok(true);
    }
    if !reads_system_config(ssh) {
        return Ok(false);
    }
    let _ = write_entry(dir, &file, &id, TRUSTED);
    Ok(true)
}

/// Why ssh's answer `out` depends on more than the key, if it does.
fn keepable(out: &[u8]) -> Result<(), &'static str> {
    let (mut dumped, mut canon, mut cnames, mut control) = (false, false, true, false);
    for line in out.split(|&b| b == b'\n') {
        let (k, v) = match line.iter().position(|&b| b == b' ') {
            Some(p) => (&line[..p], &line[p + 1..]),
            None => (line, &b""[..]),
        };
        let k = k.to_ascii_lowercase();
        match k.as_slice() {
            b"hostname" => dumped = true,
            b"canonicalizehostname" => canon = v != b"false",
            // Printed only when set before 9.x (readconf.c dump_client_config).
            b"canonicalizepermittedcnames" => cnames = v == b"none",
            b"controlpath" => control = v != b"none",
            _ => {}
        }
    }
    if !dumped {
        return Err("ssh printed no configuration");
    }
    if canon || !cnames {
        return Err("host name canonicalization asks the DNS");
    }
    if !control {
        return Err("no control path (a call that rides no master)");
    }
    Ok(())
}

/// Whether the ssh binary names `/etc/ssh/ssh_config` (the system config
/// config.rs reads) and no other `.../ssh_config`: `_PATH_HOST_CONFIG_FILE`
/// is a string of its own in the binary (pathnames.h, from sysconfdir). A
/// script or another build says no.
fn reads_system_config(ssh: &Path) -> bool {
    let Ok(f) = fs::File::open(ssh) else {
        return false;
    };
    let mut bin = Vec::new();
    if io::Read::read_to_end(&mut io::Read::take(f, MAX_BINARY), &mut bin).is_err() {
        return false;
    }
    names_only_system_config(&bin)
}

fn names_only_system_config(bin: &[u8]) -> bool {
    let mut seen = false;
    for end in memchr::memmem::find_iter(bin, b"/ssh_config\0") {
        let stop = end + b"/ssh_config".len();
        let start = memchr::memrchr(0, &bin[..end]).map_or(0, |p| p + 1);
        if &bin[start..stop] != config::SYSTEM_CONFIG.as_bytes() {
            return false;
        }
        seen = true;
    }
    seen
}

/// The key: everything ssh's answer to `words` is made from (the module's
/// list), each part length-prefixed; `Err` when that is not all of it.
fn key<'a>(
    ssh: &Path,
    words: &[OsString],
    env: impl Iterator<Item = (OsString, OsString)>,
    configs: impl Iterator<Item = &'a Config>,
) -> Result<Vec<u8>, &'static str> {
    let mut k = ssh_identity(ssh)?;
    put(&mut k, &(words.len() as u64).to_le_bytes());
    for w in words {
        put(&mut k, w.as_bytes());
    }
    // In its order (the first of two same names is what getenv finds); a
    // caller that calls again passes the same order.
    for (name, value) in env {
        put(&mut k, name.as_bytes());
        put(&mut k, value.as_bytes());
    }
    put(&mut k, b"cwd");
    let cwd = std::env::current_dir().map_err(|_| "no working directory")?;
    put(&mut k, cwd.as_os_str().as_bytes());
    use nix::unistd::{User, getegid, geteuid, getgid, getuid};
    for id in [
        getuid().as_raw(),
        geteuid().as_raw(),
        getgid().as_raw(),
        getegid().as_raw(),
    ] {
        put(&mut k, &id.to_le_bytes());
    }
    let user = User::from_uid(getuid())
        .ok()
        .flatten()
        .ok_or("no passwd entry")?;
    put(&mut k, user.name.as_bytes());
    put(&mut k, user.dir.as_os_str().as_bytes());
    let host = nix::unistd::gethostname().map_err(|_| "no host name")?;
    put(&mut k, host.as_bytes());
    for c in configs {
        put(&mut k, b"config");
        c.fingerprint(&mut k)?;
    }
    Ok(k)
}

/// The key's first part: this format, and the ssh binary (its path and
/// identity: another file there, or the same one rewritten, differs).
fn ssh_identity(ssh: &Path) -> Result<Vec<u8>, &'static str> {
    let mut k = Vec::with_capacity(16 << 10);
    put(&mut k, FORMAT);
    put(&mut k, env!("CARGO_PKG_VERSION").as_bytes());
    put(&mut k, ssh.as_os_str().as_bytes());
    let m = fs::metadata(ssh).map_err(|_| "ssh could not be looked at")?;
    let times = [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()];
    for v in [m.dev(), m.ino(), m.size()] {
        put(&mut k, &v.to_le_bytes());
    }
    for v in times {
        put(&mut k, &v.to_le_bytes());
    }
    Ok(k)
}

fn put(k: &mut Vec<u8>, b: &[u8]) {
    k.extend_from_slice(&(b.len() as u64).to_le_bytes());
    k.extend_from_slice(b);
}

/// An entry's bytes: the format, the key's length and the key, the answer.
fn entry(key: &[u8], out: &[u8]) -> Vec<u8> {
    [FORMAT, &(key.len() as u64).to_le_bytes(), key, out].concat()
}

/// The answer in entry `bytes` if its key is `key`.
fn answer_for<'b>(bytes: &'b [u8], key: &[u8]) -> Option<&'b [u8]> {
    let rest = bytes.strip_prefix(FORMAT)?;
    let (len, rest) = rest.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (rest.get(..len)? == key).then(|| &rest[len..])
}

/// FNV-1a, 64 bits: the entry's name only (the whole key is compared).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where the memo's directory goes: the first of `$XDG_RUNTIME_DIR`,
/// `$XDG_CACHE_HOME` and `$HOME/.cache` that is set to an absolute path.
fn base() -> Option<PathBuf> {
    let abs = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    abs(std::env::var_os("XDG_RUNTIME_DIR"))
        .or_else(|| abs(std::env::var_os("XDG_CACHE_HOME")))
        .or_else(|| abs(std::env::var_os("HOME")).map(|h| h.join(".cache")))
}

/// Makes `dir` (and its parent, when that is missing) 0700 when missing;
/// whether it is then a real directory of the effective user's that no one
/// else may enter. Made only when written to: a run that keeps nothing
/// leaves nothing.
fn make_private(dir: &Path) -> bool {
    if private(dir) {
        return true;
    }
    let Some(base) = dir.parent() else {
        return false;
    };
    // A base of someone else's (sudo keeps HOME) gets nothing of ours.
    if !ours(base) {
        if fs::symlink_metadata(base).is_ok() || !base.parent().is_some_and(ours) {
            return false;
        }
        if fs::DirBuilder::new().mode(0o700).create(base).is_err() {
            return false;
        }
    }
    let _ = fs::DirBuilder::new().mode(0o700).create(dir);
    private(dir)
}

fn ours(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw())
}

fn private(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| {
        m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o077 == 0
    })
}

/// Removes the oldest entries once there are more than [`MAX_ENTRIES`],
/// never `keep`; and temporary files of writers that died (an hour old).
fn prune(dir: &Path, keep: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    // Names first: a file's age is looked at only when it may have to go.
    let mut entries: Vec<PathBuf> = Vec::new();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.as_bytes();
        if name.starts_with(PREFIX.as_bytes()) {
            entries.push(e.path());
        } else if name.starts_with(b".tmp-") && modified(&e.path()).is_some_and(|t| t < hour_ago) {
            let _ = fs::remove_file(e.path());
        }
    }
    if entries.len() <= MAX_ENTRIES {
        return;
    }
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = entries
        .into_iter()
        .filter_map(|p| Some((modified(&p)?, p)))
        .collect();
    // The oldest first, found one by one: a sort's code is not worth it here.
    for _ in KEEP_AFTER_PRUNE..entries.len() {
        let oldest = (0..entries.len())
            .filter(|&i| entries[i].1 != keep)
            .min_by_key(|&i| entries[i].0);
        let Some(i) = oldest else { break };
        let _ = fs::remove_file(entries.swap_remove(i).1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "user me\nhostname h\ncanonicalizehostname false\n\
                        canonicalizePermittedcnames none\ncontrolpath /tmp/cm-%C\n";

    #[test]
    fn an_answer_is_kept_only_when_it_depends_on_nothing_else() {
        assert_eq!(keepable(DUMP.as_bytes()), Ok(()));
        // 8.x prints no CNAME line when none is set.
        let old = DUMP.replace("canonicalizePermittedcnames none\n", "");
        assert_eq!(keepable(old.as_bytes()), Ok(()));
        for (from, to) in [
            ("canonicalizehostname false", "canonicalizehostname true"),
            ("canonicalizehostname false", "canonicalizehostname always"),
            ("Permittedcnames none", "Permittedcnames *.a:*.b"),
            ("controlpath /tmp/cm-%C", "controlpath none"),
            ("controlpath /tmp/cm-%C", "controlmaster auto"),
            ("hostname h", "host h"),
        ] {
            let d = DUMP.replace(from, to);
            assert_ne!(d, DUMP);
            assert!(keepable(d.as_bytes()).is_err(), "{to}");
        }
    }

    #[test]
    fn only_a_binary_that_names_etc_ssh_ssh_config_alone_is_trusted() {
        let b = |s: &str| s.as_bytes().to_vec();
        assert!(names_only_system_config(&b(
            "\0x\0.ssh/config\0/etc/ssh/ssh_config\0/etc/ssh\0"
        )));
        assert!(names_only_system_config(&b("/etc/ssh/ssh_config\0")));
        for bad in [
            "\0/usr/local/etc/ssh_config\0",
            "\0/etc/ssh/ssh_config\0/opt/homebrew/etc/ssh/ssh_config\0",
            "\0x/etc/ssh/ssh_config\0",
            "\0/etc/ssh/ssh_config", // not a C string of its own
            "#!/bin/sh\nexec ssh \"$@\"\n",
            "",
        ] {
            assert!(!names_only_system_config(&b(bad)), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_answers_its_own_key_only() {
        let e = entry(b"key", b"hostname h\n");
        assert_eq!(answer_for(&e, b"key"), Some(&b"hostname h\n"[..]));
        for k in [&b"kez"[..], b"ke", b"key1", b""] {
            assert_eq!(answer_for(&e, k), None, "{k:?}");
        }
        // Cut anywhere inside the key or the header: no answer.
        for cut in 0..FORMAT.len() + 8 + 3 {
            assert_eq!(answer_for(&e[..cut], b"key"), None, "{cut}");
        }
        let mut other = e.clone();
        other[0] ^= 1;
        assert_eq!(answer_for(&other, b"key"), None);
        let huge = [FORMAT, &u64::MAX.to_le_bytes(), b"key"].concat();
        assert_eq!(answer_for(&huge, b"key"), None);
    }

    #[test]
    fn the_key_names_the_words_and_the_files() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let cfg = d.file("config", b"Host *\n  ControlPath /tmp/x\n").unwrap();
        let words = |w: &[&str]| -> Vec<OsString> { w.iter().map(OsString::from).collect() };
        let src = config::sources(Some(cfg.as_os_str()));
        let sh = Path::new("/bin/sh");
        let env = || std::env::vars_os();
        let k = |w: &[&str]| key(sh, &words(w), env(), [Config::load(&src)].iter()).unwrap();
        let a = k(&["-F", "x", "h"]);
        assert_eq!(a, k(&["-F", "x", "h"]));
        assert_ne!(a, k(&["-F", "x", "h2"]));
        assert_ne!(a, k(&["-F", "x", "h", ""]));
        let other = key(
            Path::new("/bin/cat"),
            &words(&["-F", "x", "h"]),
            env(),
            [Config::load(&src)].iter(),
        );
        assert_ne!(Ok(a.clone()), other, "the ssh is part of it");
        fs::write(&cfg, b"Host *\n  ControlPath /tmp/y\n").unwrap();
        assert_ne!(a, k(&["-F", "x", "h"]));
        let before = k(&["h"]);
        let mut perms = fs::metadata(&cfg).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(&cfg, perms).unwrap();
        assert_ne!(before, k(&["h"]), "the mode is part of it");
        for (text, why) in [
            ("Match exec \"true\"\n", "exec"),
            ("match Host x LocalNetwork 10.0.0.0/8\n", "localnetwork"),
            ("Include ~/.ssh/%h.conf\n", "%"),
            ("Include ${X}/c\n", "$"),
        ] {
            fs::write(&cfg, text).unwrap();
            let e = key(sh, &words(&["h"]), env(), [Config::load(&src)].iter());
            assert!(e.is_err(), "{why}: {e:?}");
        }
        // Words that merely look alike are not a Match or an Include.
        fs::write(&cfg, b"Host exec\n  ProxyCommand exec nc %h %p\n").unwrap();
        assert!(key(sh, &words(&["h"]), env(), [Config::load(&src)].iter()).is_ok());
        // The environment.
        fs::write(&cfg, b"Host *\n").unwrap();
        let with = |vars: &[(&str, &str)]| {
            let vars: Vec<(OsString, OsString)> =
                vars.iter().map(|(n, v)| (n.into(), v.into())).collect();
            key(
                sh,
                &words(&["h"]),
                vars.into_iter(),
                [Config::load(&src)].iter(),
            )
            .unwrap()
        };
        let ab = with(&[("A", "1"), ("B", "2")]);
        assert_eq!(ab, with(&[("A", "1"), ("B", "2")]));
        assert_ne!(ab, with(&[("A", "1"), ("B", "2"), ("A", "0")]));
        assert_ne!(ab, with(&[("A", "1"), ("B", "3")]));
        assert_ne!(ab, with(&[("A", "1")]));
        assert_ne!(ab, with(&[("A", "1"), ("B", "2"), ("C", "")]));
    }

    #[test]
    fn entry_names_are_fnv1a() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn prune_keeps_the_newest_and_the_new_one() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(10_000);
        let mut names = Vec::new();
        for i in 0..MAX_ENTRIES + 1 {
            let p = d.file(&format!("{PREFIX}{i:016x}"), b"x").unwrap();
            let when = base + std::time::Duration::from_secs(i as u64);
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(when)
                .unwrap();
            names.push(p);
        }
        let stale = d.file(".tmp-1", b"x").unwrap();
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(base)
            .unwrap();
        let fresh = d.file(".tmp-2", b"x").unwrap();
        // The oldest is the one just written (a clock set back): kept.
        prune(d.path(), &names[0]);
        let left: Vec<&PathBuf> = names.iter().filter(|p| p.exists()).collect();
        assert_eq!(left.len(), KEEP_AFTER_PRUNE, "{}", left.len());
        assert!(names[0].exists());
        assert!(names[MAX_ENTRIES].exists() && !names[1].exists());
        assert!(!stale.exists() && fresh.exists());
        // At the limit nothing goes.
        prune(d.path(), &names[0]);
        assert_eq!(
            names.iter().filter(|p| p.exists()).count(),
            KEEP_AFTER_PRUNE
        );
    }
}
