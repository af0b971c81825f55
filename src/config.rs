//! ssh config files: which ones ssh reads, which lines set up a forward, and a private copy without some.
//!
//! Mirrors OpenSSH 9.2p1: ssh.c `process_config_files` (which files), readconf.c
//! `read_config_file_depth` / `process_config_line_depth` (line grammar, `Include`), misc.c
//! `strdelim` / `argv_split` (tokens; before 8.7 strdelim alone, [`Sources::argv_split`]) and
//! openbsd-compat/glob.c (`Include` patterns: the portable
//! build uses its own glob on glibc, so `~` is `$HOME` first, then the passwd entry).
//!
//! [`rewrite`] keeps meaning: its top file is read by `ssh -F` as a user config and `Include`s the
//! user config, then the system config, in the order ssh reads them without `-F`. After each
//! included file readconf.c restores the includer's Host/Match state (`*activep = oactive`), so
//! each starts active, as at the top of a file. Only files with a dropped line and the files that
//! include them are copied; a copy differs from its original only in the dropped lines (made
//! comments) and in `Include` lines that must name a copy or an absolute path.

use crate::forward::{self, Forward, Kind};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// ssh's system-wide config (`_PATH_HOST_CONFIG_FILE` on Debian).
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";
/// Where relative `Include`s of the system config resolve (`SSHDIR`).
pub const SSHDIR: &str = "/etc/ssh";
/// readconf.c `READCONF_MAX_DEPTH`: deeper includes are fatal.
const MAX_DEPTH: usize = 16;
/// misc.c `WHITESPACE`.
const WHITESPACE: &[u8] = b" \t\r\n";

/// The config files ssh reads for one command line, and what resolves `Include` paths in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    /// Read as a user config (`SSHCONF_USERCONF`): the `-F` file, or `~/.ssh/config` (passwd dir).
    pub user: Option<PathBuf>,
    /// ssh fails when `user` cannot be opened (it came from `-F`); `~/.ssh/config` may be missing.
    pub user_required: bool,
    /// The system config, read after `user`; `None` when `-F` is given.
    pub system: Option<PathBuf>,
    /// Relative `Include`s of the system config's tree resolve here (`SSHDIR`).
    pub sshdir: PathBuf,
    /// `~` in `Include` patterns: `$HOME` if set, else the passwd dir (openbsd-compat glob.c).
    pub home: Option<PathBuf>,
    /// ssh splits a line's arguments with misc.c argv_split (quotes of both kinds, `\` escapes,
    /// `#` ends the line): OpenSSH 8.7 on. Before, with strdelim alone (double quotes only, a
    /// trailing `# ...` is "garbage at end of line"). `sources` assumes 8.7 on; a run sets it from
    /// what `ssh -G` printed (effective::Caps).
    pub argv_split: bool,
}

/// One config line that sets up a forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based, as in ssh's error messages.
    pub line: usize,
    /// The line as written, without its line end and surrounding blanks.
    pub text: Vec<u8>,
}

/// The files ssh reads given the value of its last `-F` (ssh.c keeps the last: `config = optarg`).
pub fn sources(dash_f: Option<&OsStr>) -> Sources {
    // The passwd lookup goes through NSS (nscd, nsswitch.conf, the passwd
    // file): asked for only when an answer needs it, not with `-F` and $HOME.
    let passwd_dir = || {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
    };
    let pw_dir = dash_f.is_none().then(passwd_dir).flatten();
    let home = if nix::unistd::getuid() != nix::unistd::geteuid() {
        pw_dir.clone().or_else(passwd_dir)
    } else {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| pw_dir.clone().or_else(passwd_dir))
    };
    let sshdir = PathBuf::from(SSHDIR);
    match dash_f {
        // ssh.c: strcasecmp(config, "none")
        Some(f) if f.as_bytes().eq_ignore_ascii_case(b"none") => Sources {
            user: None,
            user_required: false,
            system: None,
            sshdir,
            home,
            argv_split: true,
        },
        Some(f) => Sources {
            user: Some(absolute(Path::new(f))),
            user_required: true,
            system: None,
            sshdir,
            home,
            argv_split: true,
        },
        None => Sources {
            user: pw_dir.map(|d| d.join(".ssh/config")),
            user_required: false,
            system: Some(PathBuf::from(SYSTEM_CONFIG)),
            sshdir,
            home,
            argv_split: true,
        },
    }
}

/// The config files ssh reads for one command line, read once per run: the
/// fast path asks whether any forward line exists, the plan which forwards
/// there are and where, the rewrite what to copy.
pub struct Config {
    tree: Result<Tree, Trouble>,
    /// How ssh splits the lines' arguments ([`Sources::argv_split`]).
    argv_split: bool,
}

impl Config {
    pub fn load(src: &Sources) -> Config {
        Config {
            tree: Tree::load(src),
            argv_split: src.argv_split,
        }
    }

    /// Whether the files were read with this release's line grammar: a
    /// run reads them before `ssh -G` has named the release (assuming 8.7
    /// or later), and again only for an older one.
    pub fn read_as(&self, argv_split: bool) -> bool {
        self.argv_split == argv_split
    }

    /// What ssh's reading of these files depends on, appended to `out` for
    /// memo.rs: every file read (path, owner, group, mode and bytes) and
    /// every `Include` match, in reading order. `Err` says why there is no
    /// such list: the files could not be read as ssh reads them, or ssh's
    /// reading depends on more than the files: a `Match` with `exec`
    /// (readconf.c runs the command) or `localnetwork` (the interfaces'
    /// addresses), or an `Include` with `%` or `$` (10.x expands tokens and
    /// environment variables there, readconf.c
    /// `expand_match_exec_or_include_path`; the tree here does not).
    /// Cautious by design: those words anywhere in such a line count.
    pub fn fingerprint(&self, out: &mut Vec<u8>) -> Result<(), &'static str> {
        let t = self
            .tree
            .as_ref()
            .map_err(|_| "a config file ssh reads could not be read as ssh reads it")?;
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        for root in t.roots {
            put(out, &root.map_or(u64::MAX, |r| r as u64).to_le_bytes());
        }
        for n in &t.nodes {
            put(out, n.path.as_os_str().as_bytes());
            put(out, &[n.ctx as u8]);
            // readconf.c SSHCONF_CHECKPERM: the owner and mode decide too.
            let meta = fs::metadata(&n.path).map_err(|_| "a config file went away")?;
            for v in [meta.uid(), meta.gid(), meta.mode()] {
                put(out, &v.to_le_bytes());
            }
            put(out, &n.bytes);
            for l in &n.lines {
                let raw = &n.bytes[l.raw.clone()];
                match &l.what {
                    What::Include { matches, .. } => {
                        if raw.contains(&b'%') || raw.contains(&b'$') {
                            return Err("an Include path has % or $ (ssh may expand it)");
                        }
                        for m in matches.iter().flatten() {
                            put(out, m.path.as_os_str().as_bytes());
                            put(out, &[u8::from(m.node.is_some())]);
                        }
                    }
                    What::Other => {
                        if let Some((k, mut rest, _)) = keyword(raw)
                            && k == b"match"
                        {
                            rest.make_ascii_lowercase();
                            let has = |w: &[u8]| memchr::memmem::find(&rest, w).is_some();
                            if has(b"exec") || has(b"localnetwork") {
                                return Err("a Match line has exec or localnetwork");
                            }
                        }
                    }
                    What::Forward(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Whether any file ssh would read (all `Include`s followed, whatever
    /// Host/Match block they are in) has a LocalForward/RemoteForward/
    /// DynamicForward line. True when unsure: an unreadable file, an
    /// `Include` loop or too deep, a bad `Include` line (ssh will report
    /// those itself).
    pub fn mentions_forward(&self) -> bool {
        match &self.tree {
            Err(_) => true,
            Ok(t) => t
                .nodes
                .iter()
                .any(|n| n.lines.iter().any(|l| matches!(l.what, What::Forward(_)))),
        }
    }

    /// Every forward line of every file ssh would read, in ssh's reading
    /// order, whatever Host/Match block it is in (ssh decides which apply).
    pub fn forwards(&self) -> Vec<Forward> {
        let mut out = Vec::new();
        if let Ok(t) = &self.tree {
            for &root in t.roots.iter().flatten() {
                t.forwards(root, &mut out);
            }
        }
        out
    }

    /// The config lines, in the order ssh reads them, whose forward equals
    /// each of `fwds`. Lines in Host/Match blocks that do not apply are
    /// included: which blocks apply is ssh's to decide.
    pub fn origins_of(&self, fwds: &[Forward]) -> Vec<Vec<Origin>> {
        fwds.iter()
            .map(|fwd| {
                let mut out = Vec::new();
                if let Ok(t) = &self.tree {
                    for &root in t.roots.iter().flatten() {
                        t.origins(root, fwd, &mut out);
                    }
                }
                out
            })
            .collect()
    }

    /// Writes into `dir` a config that means what the files mean except
    /// that every forward line equal to one in `drop` is disabled, and
    /// returns the file to pass to ssh as `-F`. Files are created 0600 with
    /// `O_EXCL` under fresh names, so `dir` may be reused.
    pub fn rewrite(&self, drop: &[Forward], dir: &Path) -> io::Result<PathBuf> {
        self.write_copy(Edit::Drop(drop), dir)
    }

    /// Writes into `dir` a config that means what the files mean except
    /// that the line at each `(origin, text)` is `text` instead (its line
    /// end kept), and returns the file to pass to ssh as `-F`: `ssh -G` then
    /// tells which of those lines apply (applied.rs). Only forward lines can
    /// be replaced.
    pub fn mark(&self, lines: &[(Origin, Vec<u8>)], dir: &Path) -> io::Result<PathBuf> {
        self.write_copy(Edit::Mark(lines), dir)
    }

    fn write_copy(&self, edit: Edit<'_>, dir: &Path) -> io::Result<PathBuf> {
        let t = self.tree.as_ref().map_err(Trouble::to_io)?;
        // The top file adds one level of Include depth.
        if let Some(&r) = t
            .roots
            .iter()
            .flatten()
            .find(|&&r| t.nodes[r].height >= MAX_DEPTH)
        {
            return Err(Trouble::TooDeep(t.nodes[r].path.clone()).to_io());
        }
        let dir = absolute(dir);
        let mut w = Writer {
            t,
            edit,
            argv_split: self.argv_split,
            dir: &dir,
            copy: vec![None; t.nodes.len()],
            written: vec![None; t.nodes.len()],
            count: 0,
        };
        let mut top = Vec::new();
        for &root in t.roots.iter().flatten() {
            let node = &t.nodes[root];
            // readconf.c checks owner and mode of included files
            // (SSHCONF_CHECKPERM), not of a -F file or the system config: a
            // copy of ours passes where the original might not.
            let p = if w.needs_copy(root) || !perm_ok(&node.path) {
                w.write(root)?
            } else {
                node.path.clone()
            };
            top.extend_from_slice(b"Include ");
            top.extend_from_slice(&include_arg(&p, self.argv_split)?);
            top.push(b'\n');
        }
        create_unique(&dir, "ssh_config", &top)
    }
}

/// What a copy changes: forward lines equal to a dropped forward become
/// comments, or chosen forward lines are replaced.
#[derive(Clone, Copy)]
enum Edit<'a> {
    Drop(&'a [Forward]),
    Mark(&'a [(Origin, Vec<u8>)]),
}

impl Edit<'_> {
    /// The bytes that stand for forward line `n` (1-based) of `file`, if
    /// it changes; `raw` is the line as read.
    fn replace(&self, file: &Path, n: usize, f: &Forward, raw: &[u8]) -> Option<Vec<u8>> {
        match self {
            Edit::Drop(drop) => drop
                .iter()
                .any(|d| d.prints_as(f))
                .then(|| [b"# rosh-ssh dropped: ".as_slice(), raw].concat()),
            Edit::Mark(lines) => lines
                .iter()
                .find(|(o, _)| o.line == n && o.file == file)
                .map(|(_, text)| [text.as_slice(), line_end(raw)].concat()),
        }
    }
}

/// [`Config::mentions_forward`] of a fresh read of `src`.
pub fn mentions_forward(src: &Sources) -> bool {
    Config::load(src).mentions_forward()
}

/// [`Config::origins_of`] of one forward, from a fresh read of `src`.
pub fn origins(src: &Sources, fwd: &Forward) -> Vec<Origin> {
    Config::load(src)
        .origins_of(std::slice::from_ref(fwd))
        .pop()
        .unwrap_or_default()
}

/// [`Config::forwards`] of a fresh read of `src`.
pub fn forwards(src: &Sources) -> Vec<Forward> {
    Config::load(src).forwards()
}

/// [`Config::rewrite`] of a fresh read of `src`.
pub fn rewrite(src: &Sources, drop: &[Forward], dir: &Path) -> io::Result<PathBuf> {
    Config::load(src).rewrite(drop, dir)
}

/// [`Config::mark`] of a fresh read of `src`.
pub fn mark(src: &Sources, lines: &[(Origin, Vec<u8>)], dir: &Path) -> io::Result<PathBuf> {
    Config::load(src).mark(lines, dir)
}

/// Why a config tree could not be read the way ssh reads it.
#[derive(Debug)]
enum Trouble {
    Unreadable(PathBuf, io::Error),
    TooDeep(PathBuf),
    BadInclude(PathBuf, usize),
}

impl Trouble {
    fn to_io(&self) -> io::Error {
        match self {
            Trouble::Unreadable(p, e) => io::Error::new(e.kind(), format!("{}: {e}", p.display())),
            Trouble::TooDeep(p) => io::Error::other(format!(
                "{}: too many recursive configuration includes",
                p.display()
            )),
            Trouble::BadInclude(p, n) => {
                io::Error::other(format!("{} line {n}: bad Include", p.display()))
            }
        }
    }
}

/// Which flags a file is read with: `SSHCONF_USERCONF` or not. It decides where relative
/// `Include` paths resolve, and is inherited by included files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ctx {
    User,
    System,
}

/// One `Include` match: the path glob gave, and the file read there (`None`: ENOENT, ignored).
#[derive(Clone, Debug)]
struct Match {
    path: PathBuf,
    node: Option<usize>,
}

#[derive(Debug)]
enum What {
    Other,
    /// A forward keyword line; `None` when ssh would reject it.
    Forward(Option<Forward>),
    /// Per argument, the files it matched in glob order; `rebase`: a relative path of the system
    /// tree, which must be made absolute once the file is read as a user config.
    Include {
        matches: Vec<Vec<Match>>,
        rebase: bool,
    },
}

#[derive(Debug)]
struct Line {
    /// The bytes as read, line end included.
    raw: std::ops::Range<usize>,
    what: What,
}

#[derive(Debug)]
struct Node {
    path: PathBuf,
    ctx: Ctx,
    bytes: Vec<u8>,
    lines: Vec<Line>,
    /// Longest chain of Includes below this file.
    height: usize,
}

/// Every file ssh reads for a [`Sources`], each (path, flags) once.
#[derive(Debug)]
struct Tree {
    nodes: Vec<Node>,
    /// The user config, then the system config, when they were opened.
    roots: [Option<usize>; 2],
}

struct Loader<'a> {
    src: &'a Sources,
    nodes: Vec<Node>,
    /// A BTreeMap: a HashMap's random keys would cost a getrandom call on
    /// the fast path, for the few files a config has.
    index: BTreeMap<(PathBuf, Ctx), usize>,
    stack: Vec<(PathBuf, Ctx)>,
}

impl Tree {
    fn load(src: &Sources) -> Result<Tree, Trouble> {
        let mut l = Loader {
            src,
            nodes: Vec::new(),
            index: BTreeMap::new(),
            stack: Vec::new(),
        };
        let mut roots = [None, None];
        let tops = [
            (&src.user, Ctx::User, src.user_required),
            (&src.system, Ctx::System, false),
        ];
        for (slot, (path, ctx, required)) in roots.iter_mut().zip(tops) {
            let Some(path) = path else { continue };
            match read_config(path) {
                Ok(Some(bytes)) => *slot = Some(l.visit(path, ctx, bytes, 0)?),
                Ok(None) if !required => {}
                Ok(None) => {
                    return Err(Trouble::Unreadable(
                        path.clone(),
                        io::ErrorKind::NotFound.into(),
                    ));
                }
                // ssh.c ignores a user or system config it cannot open; not a -F file.
                Err(_) if !required => {}
                Err(e) => return Err(Trouble::Unreadable(path.clone(), e)),
            }
        }
        Ok(Tree {
            nodes: l.nodes,
            roots,
        })
    }
}

impl Tree {
    /// The forward lines of file `id` and what it includes, in reading order
    /// (a loaded tree has no cycle and no path deeper than ssh allows).
    fn forwards(&self, id: usize, out: &mut Vec<Forward>) {
        for l in &self.nodes[id].lines {
            match &l.what {
                What::Forward(Some(f)) => out.push(f.clone()),
                What::Include { matches, .. } => {
                    for c in matches.iter().flatten().filter_map(|m| m.node) {
                        self.forwards(c, out);
                    }
                }
                _ => {}
            }
        }
    }

    fn origins(&self, id: usize, fwd: &Forward, out: &mut Vec<Origin>) {
        let node = &self.nodes[id];
        for (i, l) in node.lines.iter().enumerate() {
            match &l.what {
                What::Forward(Some(f)) if f.prints_as(fwd) => {
                    let o = Origin {
                        file: node.path.clone(),
                        line: i + 1,
                        text: node.bytes[l.raw.clone()].trim_ascii().to_vec(),
                    };
                    if !out.contains(&o) {
                        out.push(o);
                    }
                }
                What::Include { matches, .. } => {
                    for c in matches.iter().flatten().filter_map(|m| m.node) {
                        self.origins(c, fwd, out);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Loader<'_> {
    fn visit(
        &mut self,
        path: &Path,
        ctx: Ctx,
        bytes: Vec<u8>,
        depth: usize,
    ) -> Result<usize, Trouble> {
        let key = (path.to_path_buf(), ctx);
        if depth > MAX_DEPTH || self.stack.contains(&key) {
            return Err(Trouble::TooDeep(path.to_path_buf()));
        }
        if let Some(&id) = self.index.get(&key) {
            if depth + self.nodes[id].height > MAX_DEPTH {
                return Err(Trouble::TooDeep(path.to_path_buf()));
            }
            return Ok(id);
        }
        self.stack.push(key.clone());
        let mut lines = Vec::new();
        let mut height = 0;
        let mut start = 0;
        for (n, raw) in bytes.split_inclusive(|&c| c == b'\n').enumerate() {
            let range = start..start + raw.len();
            start += raw.len();
            let what = match parse_line(raw, self.src.argv_split) {
                Directive::Other => What::Other,
                Directive::Forward(kind, args) => What::Forward(args.ok().and_then(|a| {
                    let a: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
                    forward::parse_keyword(kind, &a)
                })),
                Directive::Include(args) => {
                    let args = args.map_err(|_| Trouble::BadInclude(path.into(), n + 1))?;
                    let mut matches = Vec::new();
                    let mut rebase = false;
                    for arg in args {
                        let pattern = self
                            .pattern(ctx, &arg)
                            .ok_or_else(|| Trouble::BadInclude(path.into(), n + 1))?;
                        rebase |= ctx == Ctx::System && arg.first() != Some(&b'/');
                        let mut ms = Vec::new();
                        for p in glob(&pattern, self.src.home.as_deref()) {
                            let p = PathBuf::from(OsString::from_vec(p));
                            let node = match read_config(&p) {
                                Ok(Some(b)) => Some(self.visit(&p, ctx, b, depth + 1)?),
                                Ok(None) => None, // readconf.c: ENOENT is not an error
                                Err(e) => return Err(Trouble::Unreadable(p, e)),
                            };
                            if let Some(c) = node {
                                height = height.max(self.nodes[c].height + 1);
                            }
                            ms.push(Match { path: p, node });
                        }
                        matches.push(ms);
                    }
                    What::Include { matches, rebase }
                }
            };
            lines.push(Line { raw: range, what });
        }
        self.stack.pop();
        self.nodes.push(Node {
            path: path.to_path_buf(),
            ctx,
            bytes,
            lines,
            height,
        });
        let id = self.nodes.len() - 1;
        self.index.insert(key, id);
        Ok(id)
    }

    /// readconf.c oInclude: the glob pattern for one argument, or `None` where ssh errors.
    fn pattern(&self, ctx: Ctx, arg: &[u8]) -> Option<Vec<u8>> {
        match (arg.first(), ctx) {
            (None, _) | (Some(b'~'), Ctx::System) => None,
            (Some(b'/' | b'~'), _) => Some(arg.to_vec()),
            (_, Ctx::User) => Some([b"~/.ssh/".as_slice(), arg].concat()),
            (_, Ctx::System) => {
                let mut p = self.src.sshdir.as_os_str().as_bytes().to_vec();
                p.push(b'/');
                p.extend_from_slice(arg);
                Some(p)
            }
        }
    }
}

/// The file's bytes; `None` if it does not exist (fopen's ENOENT). A directory opens and reads as
/// nothing, as with fopen and getline.
fn read_config(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(Some(Vec::new())),
        Err(e) => Err(e),
    }
}

/// readconf.c SSHCONF_CHECKPERM: owned by root or us, not writable by group or others. (Debian's
/// ssh also accepts group-writable files of a private group; being stricter only costs a copy.)
fn perm_ok(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| {
            (m.uid() == 0 || m.uid() == nix::unistd::getuid().as_raw()) && m.mode() & 0o022 == 0
        })
        .unwrap_or(false)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Writes copies, children before the files that include them.
struct Writer<'a> {
    t: &'a Tree,
    edit: Edit<'a>,
    /// How the ssh reading the copies splits arguments ([`Sources::argv_split`]).
    argv_split: bool,
    dir: &'a Path,
    copy: Vec<Option<bool>>,
    written: Vec<Option<PathBuf>>,
    count: usize,
}

impl Writer<'_> {
    fn needs_copy(&mut self, id: usize) -> bool {
        if let Some(c) = self.copy[id] {
            return c;
        }
        let t = self.t;
        let node = &t.nodes[id];
        let mut c = false;
        for (i, l) in node.lines.iter().enumerate() {
            match &l.what {
                What::Forward(Some(f)) => {
                    let raw = &node.bytes[l.raw.clone()];
                    c |= self.edit.replace(&node.path, i + 1, f, raw).is_some();
                }
                What::Include { matches, rebase } => {
                    c |= *rebase;
                    for m in matches.iter().flatten() {
                        if let Some(n) = m.node {
                            c |= self.needs_copy(n);
                        }
                    }
                }
                _ => {}
            }
        }
        self.copy[id] = Some(c);
        c
    }

    fn write(&mut self, id: usize) -> io::Result<PathBuf> {
        if let Some(p) = &self.written[id] {
            return Ok(p.clone());
        }
        let t = self.t;
        let node = &t.nodes[id];
        let mut out = Vec::with_capacity(node.bytes.len() + 64);
        for (i, l) in node.lines.iter().enumerate() {
            let raw = &node.bytes[l.raw.clone()];
            if let What::Forward(Some(f)) = &l.what
                && let Some(edited) = self.edit.replace(&node.path, i + 1, f, raw)
            {
                out.extend_from_slice(&edited);
                continue;
            }
            match &l.what {
                What::Include { matches, rebase } if *rebase || self.any_copied(matches) => {
                    let mut args = Vec::new();
                    for m in matches.iter().flatten() {
                        let p = match m.node {
                            Some(n) if self.needs_copy(n) => self.write(n)?,
                            _ => m.path.clone(),
                        };
                        args.push(include_arg(&p, self.argv_split)?);
                    }
                    if args.is_empty() {
                        // An Include with no argument is an error; one that matched nothing is not.
                        out.extend_from_slice(b"# rosh-ssh: matched nothing: ");
                        out.extend_from_slice(raw);
                    } else {
                        out.extend_from_slice(b"Include ");
                        out.extend_from_slice(&args.join(&b' '));
                        out.extend_from_slice(line_end(raw));
                    }
                }
                _ => out.extend_from_slice(raw),
            }
        }
        self.count += 1;
        let base = node
            .path
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_graphic(), "_")
            })
            .unwrap_or_default();
        let ctx = match node.ctx {
            Ctx::User => 'u',
            Ctx::System => 's',
        };
        let p = create_unique(self.dir, &format!("{:02}{ctx}-{base}", self.count), &out)?;
        self.written[id] = Some(p.clone());
        Ok(p)
    }

    fn any_copied(&mut self, matches: &[Vec<Match>]) -> bool {
        let mut c = false;
        for m in matches.iter().flatten() {
            if let Some(n) = m.node {
                c |= self.needs_copy(n);
            }
        }
        c
    }
}

fn line_end(raw: &[u8]) -> &'static [u8] {
    if raw.ends_with(b"\r\n") {
        b"\r\n"
    } else if raw.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

/// `path` as one `Include` argument that argv_split and glob give back unchanged: glob
/// metacharacters escaped, then double-quoted with `\` and `"` escaped.
fn include_arg(path: &Path, argv_split: bool) -> io::Result<Vec<u8>> {
    let b = path.as_os_str().as_bytes();
    // strdelim (before 8.7) has no escape: a `"` can't be inside a quoted token.
    let quote = !argv_split && b.contains(&b'"');
    if !b.starts_with(b"/") || b.contains(&b'\n') || b.contains(&b'\r') || quote {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot name {} in an Include line", path.display()),
        ));
    }
    let mut out = vec![b'"'];
    for &c in b {
        match c {
            // Escaped for glob, then for argv_split.
            b'\\' if argv_split => out.extend_from_slice(b"\\\\\\\\"),
            b'*' | b'?' | b'[' if argv_split => out.extend_from_slice(&[b'\\', b'\\', c]),
            b'"' => out.extend_from_slice(b"\\\""),
            // strdelim hands the token to glob as it is.
            b'\\' | b'*' | b'?' | b'[' => out.extend_from_slice(&[b'\\', c]),
            _ => out.push(c),
        }
    }
    out.push(b'"');
    Ok(out)
}

/// Creates `dir/stem` (or `stem.N` if taken) 0600 with `O_EXCL`.
fn create_unique(dir: &Path, stem: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    for n in 0..1000 {
        let name = if n == 0 {
            stem.to_owned()
        } else {
            format!("{stem}.{n}")
        };
        let p = dir.join(name);
        match crate::tmpdir::write_new_private(&p, bytes) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::ErrorKind::AlreadyExists.into())
}

// ---------------------------------------------------------------------------------------------
// Line grammar: readconf.c process_config_line_depth, misc.c strdelim and argv_split.

/// The directives this module cares about; arguments are `Err` where ssh rejects the line.
#[derive(Debug, PartialEq, Eq)]
enum Directive {
    Other,
    Forward(Kind, Result<Vec<Vec<u8>>, ()>),
    Include(Result<Vec<Vec<u8>>, ()>),
}

/// A line cut as readconf.c cuts it before the keyword's own parsing: the
/// keyword (lowercased), the line's bytes and where its arguments start;
/// `None` for a blank line or a comment.
fn keyword(raw: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Option<usize>)> {
    // getline then strlen: a NUL ends the line.
    let line = raw.split(|&c| c == 0).next().unwrap_or_default();
    if line.is_empty() {
        return None;
    }
    // Strip trailing whitespace and \f, never the first byte.
    let mut len = line.len();
    while len > 1 && b" \t\r\n\x0c".contains(&line[len - 1]) {
        len -= 1;
    }
    let mut buf = line[..len].to_vec();
    let mut s = Some(0);
    let mut keyword = strdelim(&mut buf, &mut s);
    if keyword.as_deref() == Some(b"") {
        keyword = strdelim(&mut buf, &mut s);
    }
    let mut keyword = keyword?;
    if matches!(keyword.first(), None | Some(b'\n' | b'#')) {
        return None;
    }
    keyword.make_ascii_lowercase();
    Some((keyword, buf, s))
}

fn parse_line(raw: &[u8], argv_split: bool) -> Directive {
    let Some((keyword, mut buf, mut s)) = keyword(raw) else {
        return Directive::Other;
    };
    let kind = match keyword.as_slice() {
        b"localforward" => Some(Kind::Local),
        b"remoteforward" => Some(Kind::Remote),
        b"dynamicforward" => Some(Kind::Dynamic),
        b"include" => None,
        _ => return Directive::Other,
    };
    if !argv_split {
        return strdelim_args(kind, &mut buf, &mut s);
    }
    let rest = match s {
        Some(p) => {
            let p = p + span(&buf, p, WHITESPACE);
            buf.get(p..).unwrap_or_default()
        }
        None => b"",
    };
    // "no argument after keyword" is an error too.
    let args = if rest.is_empty() {
        Err(())
    } else {
        crate::argv::argv_split(rest).ok_or(())
    };
    match kind {
        Some(k) => Directive::Forward(k, args),
        None => Directive::Include(args),
    }
}

/// readconf.c before 8.7: a line's arguments are strdelim's tokens (a
/// quote left open ends them), read as the keyword reads them, then one
/// more token: if it is not empty, "garbage at end of line" (a `#` too).
/// Given to the callers as argv_split's arguments would mean the same.
fn strdelim_args(kind: Option<Kind>, buf: &mut Vec<u8>, s: &mut Option<usize>) -> Directive {
    let mut toks: Vec<Vec<u8>> = Vec::new();
    while let Some(t) = strdelim(buf, s) {
        toks.push(t);
    }
    let garbage = |at: usize| toks.get(at).is_some_and(|t| !t.is_empty());
    match kind {
        // oInclude: `while ((arg = strdelim(&s)) != NULL && *arg != '\0')`.
        None => {
            let n = toks.iter().take_while(|t| !t.is_empty()).count();
            if garbage(n + 1) {
                return Directive::Include(Err(()));
            }
            toks.truncate(n);
            Directive::Include(Ok(toks))
        }
        // oLocalForward and the others: `arg`, then `arg2` unless dynamic
        // (an empty `arg2` makes a RemoteForward a remote dynamic one).
        Some(k) => {
            let consumed = if k == Kind::Dynamic { 1 } else { 2 };
            let extra = garbage(consumed);
            toks.truncate(consumed + usize::from(extra));
            Directive::Forward(k, Ok(toks))
        }
    }
}

/// Count of bytes of `set` in `buf` from `from` (strspn).
fn span(buf: &[u8], from: usize, set: &[u8]) -> usize {
    buf.get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| set.contains(c))
        .count()
}

/// misc.c strdelim: the next token of `buf` from `*s`, splitting on whitespace or one `=`; a `"`
/// starts a quoted token (removed from `buf` like memmove). `*s == None` is C's NULL.
fn strdelim(buf: &mut Vec<u8>, s: &mut Option<usize>) -> Option<Vec<u8>> {
    let old = (*s)?;
    let found = buf
        .get(old..)?
        .iter()
        .position(|c| b" \t\r\n\"=".contains(c))
        .map(|i| old + i);
    let Some(p) = found else {
        *s = None;
        return Some(buf[old..].to_vec());
    };
    if buf[p] == b'"' {
        buf.remove(p);
        let Some(q) = buf[p..].iter().position(|&c| c == b'"').map(|i| p + i) else {
            *s = None; // no matching quote
            return None;
        };
        let tok = buf[old..q].to_vec();
        *s = Some(q + 1 + span(buf, q + 1, WHITESPACE));
        return Some(tok);
    }
    let wspace = buf[p] == b'=';
    let tok = buf[old..p].to_vec();
    let mut n = p + 1 + span(buf, p + 1, WHITESPACE);
    if buf.get(n) == Some(&b'=') && !wspace {
        n += 1 + span(buf, n + 1, WHITESPACE);
    }
    *s = Some(n);
    Some(tok)
}

// ---------------------------------------------------------------------------------------------
// openbsd-compat/glob.c with GLOB_TILDE: escapes, `*`, `?`, `[...]` (with `!`, ranges and
// `[:class:]`), leading dots matched only literally, results sorted with strcmp.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    One,
    All,
    Set(bool, Vec<SetItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SetItem {
    Char(u8),
    Range(u8, u8),
    Class(usize),
}

/// A `[:name:]` class of glob.c `cclasses`, C locale.
type Class = (&'static str, fn(&u8) -> bool);

const CLASSES: [Class; 12] = [
    ("alnum", u8::is_ascii_alphanumeric),
    ("alpha", u8::is_ascii_alphabetic),
    ("blank", |c| *c == b' ' || *c == b'\t'),
    ("cntrl", u8::is_ascii_control),
    ("digit", u8::is_ascii_digit),
    ("graph", u8::is_ascii_graphic),
    ("lower", u8::is_ascii_lowercase),
    ("print", |c| c.is_ascii_graphic() || *c == b' '),
    ("punct", u8::is_ascii_punctuation),
    ("space", |c| b" \t\n\r\x0b\x0c".contains(c)),
    ("upper", u8::is_ascii_uppercase),
    ("xdigit", u8::is_ascii_hexdigit),
];

/// The paths matching `pattern`, sorted; empty for GLOB_NOMATCH.
fn glob(pattern: &[u8], home: Option<&Path>) -> Vec<Vec<u8>> {
    let pattern = tilde(pattern, home);
    let Some(toks) = compile(&pattern) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    glob2(Vec::new(), &toks, &mut out);
    out.sort();
    out
}

/// globtilde: `~` is `home`, `~user` that user's passwd dir; unchanged when unknown.
fn tilde(pattern: &[u8], home: Option<&Path>) -> Vec<u8> {
    let Some(rest) = pattern.strip_prefix(b"~") else {
        return pattern.to_vec();
    };
    let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    let dir = if name.is_empty() {
        home.map(Path::to_path_buf)
    } else {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| nix::unistd::User::from_name(n).ok().flatten())
            .map(|u| u.dir)
    };
    match dir {
        Some(d) => [d.as_os_str().as_bytes(), tail].concat(),
        None => pattern.to_vec(),
    }
}

/// glob() escape handling then glob0's compilation; `None` for an unknown `[:class:]`.
fn compile(pattern: &[u8]) -> Option<Vec<Tok>> {
    // (byte, protected by a backslash)
    let mut q: Vec<(u8, bool)> = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'\\' {
            match pattern.get(i + 1) {
                Some(&c) => {
                    q.push((c, true));
                    i += 2;
                }
                None => {
                    q.push((b'\\', true));
                    i += 1;
                }
            }
        } else {
            q.push((pattern[i], false));
            i += 1;
        }
    }
    let is = |k: usize, ch: u8| q.get(k) == Some(&(ch, false));
    let mut toks = Vec::new();
    let mut i = 0;
    while i < q.len() {
        let (c, prot) = q[i];
        if prot {
            toks.push(Tok::Lit(c));
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                let mut j = i + 1;
                let neg = is(j, b'!');
                if neg {
                    j += 1;
                }
                if j >= q.len() || !q[j + 1..].contains(&(b']', false)) {
                    toks.push(Tok::Lit(b'['));
                    i += 1;
                    continue;
                }
                let mut items = Vec::new();
                let mut c = q[j];
                j += 1;
                loop {
                    if c == (b'[', false) && is(j, b':') {
                        let mut closed = false;
                        loop {
                            // g_charclass: `[:name:]`, 1 when not closed, -1 when unknown
                            let from = j + 1;
                            let colon =
                                q[from..].iter().position(|x| x.0 == b':').map(|k| from + k);
                            let Some(colon) =
                                colon.filter(|&k| q.get(k + 1).map(|x| x.0) == Some(b']'))
                            else {
                                break;
                            };
                            let name: Vec<u8> = q[from..colon].iter().map(|x| x.0).collect();
                            let idx = CLASSES.iter().position(|(n, _)| n.as_bytes() == name)?;
                            items.push(SetItem::Class(idx));
                            j = colon + 2;
                            c = *q.get(j)?;
                            j += 1;
                            if !(c == (b'[', false) && is(j, b':')) {
                                break;
                            }
                        }
                        if c == (b']', false) {
                            closed = true;
                        }
                        if closed {
                            break;
                        }
                    }
                    items.push(SetItem::Char(c.0));
                    if is(j, b'-') && q.get(j + 1).is_some_and(|&x| x != (b']', false)) {
                        items.pop();
                        items.push(SetItem::Range(c.0, q[j + 1].0));
                        j += 2;
                    }
                    let Some(&next) = q.get(j) else { break };
                    c = next;
                    j += 1;
                    if c == (b']', false) {
                        break;
                    }
                }
                toks.push(Tok::Set(neg, items));
                i = j;
            }
            b'?' => {
                toks.push(Tok::One);
                i += 1;
            }
            b'*' => {
                if toks.last() != Some(&Tok::All) {
                    toks.push(Tok::All);
                }
                i += 1;
            }
            _ => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    Some(toks)
}

/// glob2: copy literal segments, expand the first segment with a metacharacter via glob3.
fn glob2(mut path: Vec<u8>, mut pat: &[Tok], out: &mut Vec<Vec<u8>>) {
    loop {
        if pat.is_empty() {
            if fs::symlink_metadata(OsStr::from_bytes(&path)).is_ok() {
                out.push(path);
            }
            return;
        }
        let end = pat
            .iter()
            .position(|t| *t == Tok::Lit(b'/'))
            .unwrap_or(pat.len());
        let (seg, rest) = pat.split_at(end);
        if seg.iter().any(|t| !matches!(t, Tok::Lit(_))) {
            return glob3(path, seg, rest, out);
        }
        path.extend(seg.iter().filter_map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        }));
        pat = rest;
        while let Some(Tok::Lit(b'/')) = pat.first() {
            path.push(b'/');
            pat = &pat[1..];
        }
    }
}

/// glob3: every entry of the directory `path` (readdir gives `.` and `..` too) matching `seg`.
fn glob3(path: Vec<u8>, seg: &[Tok], rest: &[Tok], out: &mut Vec<Vec<u8>>) {
    let dir = if path.is_empty() {
        b".".as_slice()
    } else {
        &path
    };
    let Ok(rd) = fs::read_dir(OsStr::from_bytes(dir)) else {
        return;
    };
    let names = [OsString::from("."), OsString::from("..")]
        .into_iter()
        .chain(rd.flatten().map(|e| e.file_name()));
    for name in names {
        let name = name.as_bytes();
        if name.first() == Some(&b'.') && seg.first() != Some(&Tok::Lit(b'.')) {
            continue;
        }
        if fnmatch(name, seg) {
            glob2([path.as_slice(), name].concat(), rest, out);
        }
    }
}

/// glob.c match(): one backtrack point at the last `*`.
fn fnmatch(name: &[u8], pat: &[Tok]) -> bool {
    let (mut n, mut p) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    loop {
        let ok = match pat.get(p) {
            None => {
                if n == name.len() {
                    return true;
                }
                false
            }
            Some(Tok::All) => {
                while pat.get(p) == Some(&Tok::All) {
                    p += 1;
                }
                if p == pat.len() {
                    return true;
                }
                if n == name.len() {
                    return false;
                }
                back = Some((p - 1, n + 1));
                continue;
            }
            Some(Tok::One) => {
                n += 1;
                n <= name.len()
            }
            Some(Tok::Set(neg, items)) => match name.get(n) {
                None => false,
                Some(&k) => {
                    n += 1;
                    let hit = items.iter().any(|it| match *it {
                        SetItem::Char(c) => c == k,
                        SetItem::Range(lo, hi) => lo <= k && k <= hi,
                        SetItem::Class(i) => CLASSES.get(i).is_some_and(|(_, f)| f(&k)),
                    });
                    hit != *neg
                }
            },
            Some(Tok::Lit(c)) => {
                let hit = name.get(n) == Some(c);
                n += 1;
                hit
            }
        };
        if ok {
            p += 1;
            continue;
        }
        match back {
            Some((bp, bn)) => {
                p = bp;
                n = bn;
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Vec<Vec<u8>>, ()> {
        Ok(v.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    /// Before 8.7 (`argv_split` false) ssh split arguments with strdelim:
    /// double quotes only, no escapes, and one token past the arguments is
    /// checked for "garbage at end of line" (checked against 8.0p1's ssh -G).
    #[test]
    fn line_grammar_before_8_7() {
        use Directive::*;
        let local = |a: &[&str]| Forward(Kind::Local, args(a));
        let remote = |a: &[&str]| Forward(Kind::Remote, args(a));
        let cases: Vec<(&str, Directive)> = vec![
            ("LocalForward 1 h:2\n", local(&["1", "h:2"])),
            ("localforward=1 \"h:2\"", local(&["1", "h:2"])),
            ("LocalForward 1 'h:2'", local(&["1", "'h:2'"])),
            ("LocalForward 1 h\\:2", local(&["1", "h\\:2"])),
            // A comment after the arguments is garbage: passed on as an
            // extra argument, which parse_keyword rejects as ssh does.
            ("LocalForward 1 h:2 # note", local(&["1", "h:2", "#"])),
            ("LocalForward 1 h:2 \"\" x", local(&["1", "h:2"])),
            ("RemoteForward 8082", remote(&["8082"])),
            (
                "RemoteForward \"ssh\" \"\" \"extra\"",
                remote(&["ssh", "", "extra"]),
            ),
            (
                "DynamicForward 1080 x",
                Forward(Kind::Dynamic, args(&["1080", "x"])),
            ),
            ("LocalForward 1 \"h:2", local(&["1"])),
            ("Include a b\n", Include(args(&["a", "b"]))),
            ("Include 'x\n", Include(args(&["'x"]))),
            ("Include a # c\n", Include(args(&["a", "#", "c"]))),
            ("Include a \"\" b\n", Include(Err(()))),
            ("Include a \"\"\n", Include(args(&["a"]))),
            ("Include\n", Include(args(&[]))),
            ("# LocalForward 1 h:2\n", Other),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line.as_bytes(), false), want, "{line:?}");
        }
        let f = |a: &[&str]| {
            let a: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            forward::parse_keyword(Kind::Remote, &a).map(|f| f.ssh_g())
        };
        assert_eq!(f(&["ssh", "", "extra"]), None);
        assert_eq!(f(&["8082"]), Some(b"remoteforward 8082 [socks]:0".to_vec()));
    }

    #[test]
    fn line_grammar() {
        use Directive::*;
        let cases: Vec<(&str, Directive)> = vec![
            (
                "LocalForward 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                "localforward=1 h:2",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                "  LOCALFORWARD = 1 h:2\r\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                "\tRemoteForward\t8082 localhost:22 \x0c\n",
                Forward(Kind::Remote, args(&["8082", "localhost:22"])),
            ),
            (
                "DynamicForward \"1080\" # c\n",
                Forward(Kind::Dynamic, args(&["1080"])),
            ),
            (
                "\"LocalForward\" '1' \"h:2\"\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                "Local\"Forward\" 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            // An empty first word ended by a blank and an '=': the keyword is the next one (ssh -G).
            (
                " = LocalForward 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                " =  LocalForward 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            // An empty quoted first word: the keyword is the next one (ssh -G).
            (
                "\"\" LocalForward 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            // No blank after the closing quote (checked with ssh -G).
            (
                "\"LocalForward\"1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            (
                "=LocalForward 1 h:2\n",
                Forward(Kind::Local, args(&["1", "h:2"])),
            ),
            ("LocalForward==1 h:2\n", Other_or_forward_eq()),
            ("LocalForward 1 h:\"2\n", Forward(Kind::Local, Err(()))),
            ("LocalForward\n", Forward(Kind::Local, Err(()))),
            ("LocalForward   \n", Forward(Kind::Local, Err(()))),
            ("LocalForward # x\n", Forward(Kind::Local, Ok(vec![]))),
            (
                "LocalForward 1 a\\ b:2\n",
                Forward(Kind::Local, args(&["1", "a b:2"])),
            ),
            ("LocalForward 1\0 h:2\n", Forward(Kind::Local, args(&["1"]))),
            ("\0LocalForward 1 h:2\n", Other),
            ("# LocalForward 1 h:2\n", Other),
            ("   #LocalForward 1 h:2\n", Other),
            ("LocalForwardx 1 h:2\n", Other),
            ("LocalForward#x 1 h:2\n", Other),
            ("Host LocalForward\n", Other),
            ("\n", Other),
            ("\r\n", Other),
            ("Include a b\n", Include(args(&["a", "b"]))),
            ("include=\"a b\" c\n", Include(args(&["a b", "c"]))),
            ("INCLUDE 'x\n", Include(Err(()))),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line.as_bytes(), true), want, "{line:?}");
        }
    }

    /// strdelim skips one '=' and the whitespace around it, then a second '=' starts the value.
    #[allow(non_snake_case)]
    fn Other_or_forward_eq() -> Directive {
        Directive::Forward(Kind::Local, args(&["=1", "h:2"]))
    }

    #[test]
    fn argv_split_table() {
        let cases: Vec<(&str, Result<Vec<&str>, ()>)> = vec![
            ("a b", Ok(vec!["a", "b"])),
            ("  a\t\tb  ", Ok(vec!["a", "b"])),
            ("'a b' \"c d\"", Ok(vec!["a b", "c d"])),
            ("a\\ b", Ok(vec!["a b"])),
            ("\"a\\ b\"", Ok(vec!["a\\ b"])),
            ("a\\\\b \\\"", Ok(vec!["a\\b", "\""])),
            ("a\\*b", Ok(vec!["a\\*b"])),
            ("x#y #z", Ok(vec!["x#y"])),
            ("'unterminated", Err(())),
            ("a\"b c\"d", Ok(vec!["ab cd"])),
        ];
        for (s, want) in cases {
            let want = want.map(|v| v.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>());
            assert_eq!(
                crate::argv::argv_split(s.as_bytes()).ok_or(()),
                want,
                "{s:?}"
            );
        }
    }

    #[test]
    fn fnmatch_table() {
        let cases = [
            ("*.conf", "a.conf", true),
            ("*.conf", "a.conf.bak", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("?", "", false),
            ("?", "x", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("[[:digit:]]*", "9z", true),
            ("[[:digit:]]*", "z9", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("[ab", "[ab", true),
            ("*", "", true),
        ];
        for (pat, name, want) in cases {
            let toks = compile(pat.as_bytes()).unwrap();
            assert_eq!(fnmatch(name.as_bytes(), &toks), want, "{pat:?} {name:?}");
        }
        assert_eq!(compile(b"[[:nope:]]"), None);
    }

    #[test]
    fn tilde_table() {
        let h = Some(Path::new("/h"));
        let cases: Vec<(&str, Option<&Path>, &str)> = vec![
            ("~/.ssh/x", h, "/h/.ssh/x"),
            ("~", h, "/h"),
            ("~", None, "~"),
            ("/a/~", h, "/a/~"),
            ("~root/x", h, "/root/x"),
            ("~no-such-user-rosh/x", h, "~no-such-user-rosh/x"),
        ];
        for (p, home, want) in cases {
            assert_eq!(tilde(p.as_bytes(), home), want.as_bytes(), "{p:?}");
        }
    }

    #[test]
    fn include_arg_round_trips_through_argv_split_and_glob() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        for name in [
            "plain", "sp ace", "q\"uote", "b\\ack", "st*r", "qu?", "br[1]", "t'ick", "h#ash",
        ] {
            let p = d.file(name, b"").unwrap();
            for argv_split in [true, false] {
                let Ok(arg) = include_arg(&p, argv_split) else {
                    // strdelim has no way to quote a quote.
                    assert!(!argv_split && name.contains('"'), "{name:?}");
                    continue;
                };
                let line = [b"Include ".as_slice(), &arg, b"\n"].concat();
                let Directive::Include(Ok(a)) = parse_line(&line, argv_split) else {
                    panic!("{line:?}")
                };
                assert_eq!(a.len(), 1, "{name:?} {argv_split}");
                assert_eq!(
                    glob(&a[0], None),
                    vec![p.as_os_str().as_bytes().to_vec()],
                    "{name:?} {argv_split}"
                );
            }
        }
        for argv_split in [true, false] {
            assert!(include_arg(Path::new("relative"), argv_split).is_err());
            assert!(include_arg(Path::new("/new\nline"), argv_split).is_err());
        }
    }

    #[test]
    fn glob_on_a_tree() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let root = d.path();
        for f in [
            "b.conf",
            "a.conf",
            ".hidden.conf",
            "c.txt",
            "sub/x.conf",
            "sub2/y.conf",
            "].conf",
            "!.conf",
            "[].conf",
            "x y",
            "x\ty",
            "xzy",
            "x1y",
            "x:y",
            "end\\",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"").unwrap();
        }
        let r = root.as_os_str().as_bytes();
        let g = |pat: &str| -> Vec<String> {
            glob(&[r, pat.as_bytes()].concat(), None)
                .into_iter()
                .map(|p| String::from_utf8(p[r.len()..].to_vec()).unwrap())
                .collect()
        };
        assert_eq!(
            g("/*.conf"),
            ["/!.conf", "/[].conf", "/].conf", "/a.conf", "/b.conf"]
        );
        assert_eq!(g("/.*.conf"), ["/.hidden.conf"]);
        assert_eq!(g("/sub*/*.conf"), ["/sub/x.conf", "/sub2/y.conf"]);
        assert_eq!(g("//sub//x.conf"), ["//sub//x.conf"]);
        assert_eq!(g("/missing"), Vec::<String>::new());
        assert_eq!(g("/*.nope"), Vec::<String>::new());
        assert_eq!(g("/sub/../a.conf"), ["/sub/../a.conf"]);
        assert_eq!(g("/su?/.*"), ["/sub/.", "/sub/.."]);
        assert_eq!(g("/[!b].conf"), ["/!.conf", "/].conf", "/a.conf"]);
        // A '[' with no ']' after its first member is a plain character.
        assert_eq!(g("/[].conf"), ["/[].conf"]);
        assert_eq!(g("/[]a].conf"), ["/].conf", "/a.conf"]);
        assert_eq!(g("/x[[:blank:]]y"), ["/x\ty", "/x y"]);
        assert_eq!(g("/x[[:print:]]y"), ["/x y", "/x1y", "/x:y", "/xzy"]);
        // Two classes in one set; a ':' that starts no class.
        assert_eq!(g("/x[[:digit:][:blank:]]y"), ["/x\ty", "/x y", "/x1y"]);
        assert_eq!(g("/x[[:digit:]:]y"), ["/x1y", "/x:y"]);
        assert_eq!(g("/x[a:]y"), ["/x:y"]);
        assert_eq!(g("/x[a:b:]y"), ["/x:y"]);
        assert_eq!(g("/x[[:digit:]a:b:]y"), ["/x1y", "/x:y"]);
        // A backslash at the end stands for itself.
        assert_eq!(g("/end\\"), ["/end\\"]);
    }

    /// `Sources` for one user config read as if given with `-F` (`required`) or as `~/.ssh/config`.
    fn user_sources(user: &Path, required: bool) -> Sources {
        Sources {
            user: Some(user.to_path_buf()),
            user_required: required,
            system: None,
            sshdir: user.parent().unwrap().to_path_buf(),
            home: None,
            argv_split: true,
        }
    }

    fn printed(fs: &[Forward]) -> Vec<String> {
        fs.iter()
            .map(|f| String::from_utf8_lossy(&f.ssh_g()).into_owned())
            .collect()
    }

    /// `c0` includes `c1` ... includes `c{n}`; the last holds a forward.
    fn chain(dir: &Path, n: usize) -> PathBuf {
        for i in 0..n {
            let next = dir.join(format!("c{}", i + 1));
            fs::write(
                dir.join(format!("c{i}")),
                format!("Include {}\n", next.display()),
            )
            .unwrap();
        }
        fs::write(dir.join(format!("c{n}")), "LocalForward 7 h:7\n").unwrap();
        dir.join("c0")
    }

    #[test]
    fn forwards_of_a_tree_in_reading_order_through_includes() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let p = |f: &str| d.path().join(f);
        fs::write(
            p("top"),
            format!(
                "LocalForward 1 h:1\nHost x\n  Include {}\n  RemoteForward 2 h:2\nMatch all\nLocalForward bad\n",
                p("inc").display()
            ),
        )
        .unwrap();
        fs::write(
            p("inc"),
            format!("DynamicForward 3\nInclude {}\n", p("inc2").display()),
        )
        .unwrap();
        fs::write(p("inc2"), "LocalForward 4 h:4\n").unwrap();
        assert_eq!(
            printed(&forwards(&user_sources(&p("top"), true))),
            [
                "localforward 1 [h]:1",
                "dynamicforward 3",
                "localforward 4 [h]:4",
                "remoteforward 2 [h]:2"
            ]
        );
    }

    /// readconf.c READCONF_MAX_DEPTH: sixteen levels of Include below the top file are
    /// read; one more is fatal, also when a file read before is reached again deeper down.
    #[test]
    fn include_depth_is_ssh_s() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let deep = chain(d.path(), MAX_DEPTH);
        let src = user_sources(&deep, true);
        assert!(Tree::load(&src).is_ok());
        assert_eq!(printed(&forwards(&src)), ["localforward 7 [h]:7"]);
        // The same chain included twice from one file: the second visit is as deep as the first.
        let c1 = d.path().join("c1").display().to_string();
        let twice = d.path().join("twice");
        fs::write(&twice, format!("Include {c1}\nInclude {c1}\n")).unwrap();
        assert!(Tree::load(&user_sources(&twice, true)).is_ok());
        // Reached again one level deeper: seventeen.
        let via = d.path().join("via");
        fs::write(&via, format!("Include {c1}\n")).unwrap();
        let deeper = d.path().join("deeper");
        fs::write(
            &deeper,
            format!("Include {c1}\nInclude {}\n", via.display()),
        )
        .unwrap();
        assert!(matches!(
            Tree::load(&user_sources(&deeper, true)),
            Err(Trouble::TooDeep(_))
        ));
        // A nine-deep chain read at depth 1, then again at depth 2: 11 levels, fine.
        let g = crate::tmpdir::PrivateDir::new().unwrap();
        let nine = chain(g.path(), 9);
        let via2 = g.path().join("via2");
        fs::write(&via2, format!("Include {}\n", nine.display())).unwrap();
        let again = g.path().join("again");
        fs::write(
            &again,
            format!("Include {}\nInclude {}\n", nine.display(), via2.display()),
        )
        .unwrap();
        assert!(Tree::load(&user_sources(&again, true)).is_ok());
        let e = crate::tmpdir::PrivateDir::new().unwrap();
        let too_deep = chain(e.path(), MAX_DEPTH + 1);
        assert!(matches!(
            Tree::load(&user_sources(&too_deep, true)),
            Err(Trouble::TooDeep(_))
        ));
        assert_eq!(forwards(&user_sources(&too_deep, true)), []);
        // A file including itself.
        let me = e.path().join("me");
        fs::write(&me, format!("Include {}\n", me.display())).unwrap();
        assert!(matches!(
            Tree::load(&user_sources(&me, true)),
            Err(Trouble::TooDeep(_))
        ));
    }

    /// What an Include reaches that is not a plain file: a dangling symlink
    /// (ENOENT: skipped, as readconf.c does), a directory (fopen works, getline
    /// reads nothing: empty), a symlink loop (any other error: fatal).
    #[test]
    fn includes_of_what_is_not_a_plain_file() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let p = |f: &str| d.path().join(f);
        std::os::unix::fs::symlink(p("nowhere"), p("dangling")).unwrap();
        fs::create_dir(p("dir")).unwrap();
        std::os::unix::fs::symlink(p("loop"), p("loop")).unwrap();
        for (target, loads) in [("dangling", true), ("dir", true), ("loop", false)] {
            let top = p(&format!("top-{target}"));
            fs::write(
                &top,
                format!("Include {}\nLocalForward 1 h:1\n", p(target).display()),
            )
            .unwrap();
            match Tree::load(&user_sources(&top, true)) {
                Ok(_) if loads => {}
                Err(Trouble::Unreadable(path, _)) if !loads => assert_eq!(path, p(target)),
                Ok(_) => panic!("{target}: loaded"),
                Err(e) => panic!("{target}: {e:?}"),
            }
            let want: &[&str] = if loads {
                &["localforward 1 [h]:1"]
            } else {
                &[]
            };
            assert_eq!(
                printed(&forwards(&user_sources(&top, true))),
                want,
                "{target}"
            );
        }
    }

    /// The files in `dir`, sorted, and the top file's text.
    fn rewritten(src: &Sources, drop: &[Forward]) -> (Vec<String>, String) {
        let out = crate::tmpdir::PrivateDir::new().unwrap();
        let top = rewrite(src, drop, out.path()).unwrap();
        let mut names: Vec<String> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (names, fs::read_to_string(top).unwrap())
    }

    /// A file is copied only when it must be: a dropped line in it or below it,
    /// a relative Include of the system config (rebased on SSHDIR), or a user
    /// config ssh's permission check could refuse (readconf.c SSHCONF_CHECKPERM:
    /// owned by root or us, not writable by group or others). Copies are
    /// numbered in the order they are written. (Changing owners needs root: CI
    /// runs as root.)
    #[test]
    fn rewrite_copies_only_what_it_must() {
        use std::os::unix::fs::PermissionsExt;
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let p = |f: &str| d.path().join(f);
        let quoted = |f: &str| format!("\"{}\"", p(f).display());
        fs::write(p("inc"), "LocalForward 1 h:1\n").unwrap();
        fs::write(p("cfg"), format!("Include {}\n", p("inc").display())).unwrap();
        let mode = |f: &str, m| fs::set_permissions(p(f), fs::Permissions::from_mode(m)).unwrap();
        mode("inc", 0o600);
        mode("cfg", 0o600);
        let src = user_sources(&p("cfg"), true);
        let drop = [forward::parse_arg(b'L', b"1:h:1").unwrap()];

        let (names, top) = rewritten(&src, &[]);
        assert_eq!(names, ["ssh_config"]);
        assert_eq!(top, format!("Include {}\n", quoted("cfg")));

        let (names, top) = rewritten(&src, &drop);
        assert_eq!(names, ["01u-inc", "02u-cfg", "ssh_config"]);
        assert!(top.contains("/02u-cfg\""), "{top}");

        mode("cfg", 0o620);
        let (names, _) = rewritten(&src, &[]);
        assert_eq!(names, ["01u-cfg", "ssh_config"]);
        mode("cfg", 0o600);

        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::Uid::from_raw(65534);
            nix::unistd::chown(&p("cfg"), Some(nobody), None).unwrap();
            let (names, _) = rewritten(&src, &[]);
            assert_eq!(names, ["01u-cfg", "ssh_config"], "owned by another user");
            nix::unistd::chown(&p("cfg"), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        } else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: the owner check is not tested"
            );
            eprintln!("skipping the owner check: not root");
        }

        // The system config: a relative Include is rebased on SSHDIR in a copy;
        // an absolute one stays as written.
        let sys = p("sys");
        fs::create_dir(&sys).unwrap();
        fs::write(sys.join("rel.conf"), "Compression yes\n").unwrap();
        fs::write(
            sys.join("ssh_config"),
            "Include rel.conf\nInclude /abs.conf\n",
        )
        .unwrap();
        let system = Sources {
            user: None,
            user_required: false,
            system: Some(sys.join("ssh_config")),
            sshdir: sys.clone(),
            home: None,
            argv_split: true,
        };
        let out = crate::tmpdir::PrivateDir::new().unwrap();
        let top = rewrite(&system, &[], out.path()).unwrap();
        let top = fs::read_to_string(top).unwrap();
        let copy = out.path().join("01s-ssh_config");
        assert!(top.contains(&copy.display().to_string()), "{top}");
        assert_eq!(
            fs::read_to_string(&copy).unwrap(),
            format!(
                "Include \"{}\"\nInclude /abs.conf\n",
                sys.join("rel.conf").display()
            )
        );
    }

    /// A taken name gets a numbered one; any other error is the error.
    #[test]
    fn create_unique_numbers_taken_names_and_reports_other_errors() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let a = create_unique(d.path(), "f", b"1").unwrap();
        let b = create_unique(d.path(), "f", b"2").unwrap();
        assert_eq!(
            (a.file_name().unwrap(), b.file_name().unwrap()),
            ("f".as_ref(), "f.1".as_ref())
        );
        assert_eq!(fs::read(&b).unwrap(), b"2");
        let e = create_unique(&d.path().join("missing"), "f", b"").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// readconf.c: a bad Include is fatal, and the error names its line.
    #[test]
    fn a_bad_include_is_named_by_its_line() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        for (text, line) in [
            ("Host *\nInclude 'unclosed\n", 2),
            ("Host a\n\n# x\nInclude \"\"\n", 4),
        ] {
            let f = d.path().join(format!("bad{line}"));
            fs::write(&f, text).unwrap();
            match Tree::load(&user_sources(&f, true)) {
                Err(Trouble::BadInclude(p, n)) => assert_eq!((p, n), (f, line), "{text:?}"),
                _ => panic!("{text:?}: not a bad include"),
            }
        }
    }

    /// ssh.c: a `~/.ssh/config` that is missing or cannot be read is skipped; a `-F` file must
    /// open.
    #[test]
    fn an_unreadable_user_config_is_fatal_only_from_dash_f() {
        let d = crate::tmpdir::PrivateDir::new().unwrap();
        let missing = d.path().join("missing");
        // Reading a symlink to itself fails with ELOOP, even for root.
        let looped = d.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        assert_eq!(
            fs::read(&looped).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        for p in [&missing, &looped] {
            let t = Tree::load(&user_sources(p, false)).expect("skipped");
            assert_eq!(t.roots, [None, None]);
            assert!(matches!(
                Tree::load(&user_sources(p, true)),
                Err(Trouble::Unreadable(..))
            ));
        }
    }
}
