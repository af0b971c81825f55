//! ssh's argument grammar: OpenSSH's getopt loop (ssh.c), byte-exact.
//!
//! rosh-ssh never rebuilds an argument it did not drop: [`Args::without`]
//! cuts option occurrences out of the original words and leaves every other
//! byte where it was. What the grammar cannot read is flagged in
//! [`Args::error`] and handed to ssh unchanged, so ssh prints its own usage.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// One release range's getopt string (ssh.c main), split into the letters
/// that are flags and those that take an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grammar {
    /// The releases that read argv this way, for messages and tests.
    pub releases: &'static str,
    flags: &'static [u8],
    with_arg: &'static [u8],
}

/// 8.0p1 to 9.3p1: `"1246ab:c:e:fgi:kl:m:no:p:qstvx"
/// "AB:CD:E:F:GI:J:KL:MNO:PQ:R:S:TVw:W:XYy"`; `-P` is a deprecated flag.
pub const DEPRECATED_P: Grammar = Grammar {
    releases: "8.0-9.3",
    flags: b"1246afgknqstvxyACGKMNPTVXY",
    with_arg: b"bceilmopwBDEFIJLOQRSW",
};

/// 9.4p1 to 10.4p1: the same string with `P:`: `-P TAG` (ssh.c `options.tag`).
pub const TAG_P: Grammar = Grammar {
    releases: "9.4-10.4",
    flags: b"1246afgknqstvxyACGKMNTVXY",
    with_arg: b"bceilmopwBDEFIJLOPQRSW",
};

/// 10.5p1 on: `"1246ACGKMNTVXYZafgknqstvxy"
/// "B:D:E:F:I:J:L:O:P:Q:R:S:W:b:c:e:i:l:m:o:p:w:"`; `-Z` prints the public
/// keys ssh would offer and exits (ssh.c `dump_pubkeys`), a mode like -G.
pub const DUMP_PUBKEYS_Z: Grammar = Grammar {
    releases: "10.5-",
    flags: b"1246afgknqstvxyACGKMNTVXYZ",
    with_arg: b"bceilmopwBDEFIJLOPQRSW",
};

/// Every grammar from 8.0p1 on, oldest first.
pub const GRAMMARS: [Grammar; 3] = [DEPRECATED_P, TAG_P, DUMP_PUBKEYS_Z];

impl Grammar {
    /// The grammar of OpenSSH `major.minor` (8.0 and older read as 8.0).
    pub fn of(major: u32, minor: u32) -> Grammar {
        match (major, minor) {
            v if v >= (10, 5) => DUMP_PUBKEYS_Z,
            v if v >= (9, 4) => TAG_P,
            _ => DEPRECATED_P,
        }
    }

    /// Whether `-P` takes an argument (the tag) in this grammar.
    pub fn p_takes_a_tag(&self) -> bool {
        self.with_arg.contains(&b'P')
    }
}

/// How the newest ssh's getopt reads `letter`: `Some(true)` if it takes an
/// argument, `Some(false)` for a flag, `None` if ssh does not know it. For
/// grammars built on ssh's (the rosh function's options, which a release
/// older than 9.4 reads otherwise only for `-P`, a deprecated no-op there).
pub fn arity(letter: u8) -> Option<bool> {
    if DUMP_PUBKEYS_Z.with_arg.contains(&letter) {
        Some(true)
    } else if DUMP_PUBKEYS_Z.flags.contains(&letter) {
        Some(false)
    } else {
        None
    }
}

/// One option occurrence, located in the original words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    pub letter: u8,
    /// The option's argument, for letters that take one.
    pub arg: Option<OsString>,
    /// Index of the word that holds the letter.
    pub word: usize,
    /// Byte offset of the letter inside that word (1 for `-L...`).
    pub at: usize,
    /// The argument was the next word rather than the rest of this one.
    pub arg_is_next_word: bool,
}

/// ssh's arguments as ssh's getopt loop reads them.
#[derive(Clone, Debug)]
pub struct Args {
    /// The words after argv\[0\], exactly as given.
    pub words: Vec<OsString>,
    /// Every option occurrence, in the order ssh processes them.
    pub opts: Vec<Opt>,
    /// Index of the destination word, if there is one.
    pub host: Option<usize>,
    /// Index of the first word of the remote command (`words.len()` if none).
    pub command: usize,
    /// getopt or the destination check would make ssh print its usage.
    pub error: bool,
    /// The grammar the words were read with.
    pub grammar: Grammar,
}

impl Args {
    /// [`Args::parse_as`] with the newest release's grammar. A caller that
    /// runs a real ssh reads the words with every grammar and lets that
    /// ssh's `ssh -G` pick (`release::Readings`).
    pub fn parse(words: Vec<OsString>) -> Args {
        Args::parse_as(words, DUMP_PUBKEYS_Z)
    }

    /// Reads `words` (argv without argv\[0\]) the way ssh.c does: getopt up to
    /// the first non-option, the destination, then getopt again after it
    /// (`goto again`) unless the first pass ended on `--`.
    pub fn parse_as(words: Vec<OsString>, grammar: Grammar) -> Args {
        let mut args = Args {
            command: words.len(),
            words,
            opts: Vec::new(),
            host: None,
            error: false,
            grammar,
        };
        // First pass: getopt's av[0] is argv[0], so word i is av[i + 1].
        let stop = args.getopt(0);
        // ssh.c: `if (optind > 1 && strcmp(av[optind - 1], "--") == 0)`.
        let terminated = stop > 0 && args.words[stop - 1].as_bytes() == b"--";
        if args.error {
            return args;
        }
        if stop >= args.words.len() {
            // No destination: ssh prints its usage (unless a mode like -V
            // exited first, which the caller decides from the options).
            args.error = true;
            return args;
        }
        args.host = Some(stop);
        if !destination_ok(args.words[stop].as_bytes()) {
            args.error = true;
            return args;
        }
        // Second pass: av[0] is now the destination, getopt starts after
        // it (and finds nothing when the destination is the last word).
        args.command = if terminated {
            stop + 1
        } else {
            args.getopt(stop + 1)
        };
        args
    }

    /// BSD getopt (openbsd-compat getopt_long.c, no permutation) from word
    /// `start`; returns the index of the first word it did not consume.
    fn getopt(&mut self, start: usize) -> usize {
        let mut i = start;
        while i < self.words.len() {
            let w = self.words[i].as_bytes();
            if w.first() != Some(&b'-') || w.len() == 1 {
                return i; // a non-option, or "-" alone
            }
            if w == b"--" {
                return i + 1;
            }
            let mut at = 1;
            loop {
                let c = w[at];
                if self.grammar.flags.contains(&c) {
                    self.opts.push(Opt {
                        letter: c,
                        arg: None,
                        word: i,
                        at,
                        arg_is_next_word: false,
                    });
                    at += 1;
                    if at == w.len() {
                        i += 1;
                        break;
                    }
                } else if self.grammar.with_arg.contains(&c) {
                    let (arg, next) = if at + 1 < w.len() {
                        (OsStr::from_bytes(&w[at + 1..]).to_owned(), false)
                    } else if i + 1 < self.words.len() {
                        (self.words[i + 1].clone(), true)
                    } else {
                        self.error = true; // "option requires an argument"
                        return self.words.len();
                    };
                    self.opts.push(Opt {
                        letter: c,
                        arg: Some(arg),
                        word: i,
                        at,
                        arg_is_next_word: next,
                    });
                    i += if next { 2 } else { 1 };
                    break;
                } else {
                    // ':' , '-' inside a word like "--x", or an unknown letter.
                    self.error = true;
                    return self.words.len();
                }
            }
        }
        i
    }

    /// Whether some option with this letter was given.
    pub fn has(&self, letter: u8) -> bool {
        self.opts.iter().any(|o| o.letter == letter)
    }

    /// The indexes (into `opts`) of the options with this letter.
    pub fn opts_with(&self, letter: u8) -> Vec<usize> {
        (0..self.opts.len())
            .filter(|&n| self.opts[n].letter == letter)
            .collect()
    }

    /// The last value of an option letter (ssh keeps the last -F and -E).
    pub fn last_arg(&self, letter: u8) -> Option<&OsStr> {
        self.opts
            .iter()
            .rev()
            .find(|o| o.letter == letter)
            .and_then(|o| o.arg.as_deref())
    }

    /// The `-o` options as (lowercased keyword, arguments), in order.
    pub fn config_options(&self) -> impl Iterator<Item = (usize, ConfigLine)> + '_ {
        self.opts
            .iter()
            .enumerate()
            .filter_map(|(n, o)| match (o.letter, &o.arg) {
                (b'o', Some(a)) => ConfigLine::parse(a.as_bytes()).map(|l| (n, l)),
                _ => None,
            })
    }

    /// The first `-o` value of a keyword (ssh keeps the first value it obtains).
    pub fn first_option(&self, keyword: &str) -> Option<Vec<Vec<u8>>> {
        self.config_options()
            .find(|(_, l)| l.keyword == keyword.as_bytes())
            .map(|(_, l)| l.args)
    }

    /// The words with the option occurrences `drop` (indexes into `opts`)
    /// cut out: an option's letter and attached argument are cut from its
    /// word, a separate argument word goes too, and a word left as a bare
    /// `-` disappears. Everything else stays byte for byte.
    pub fn without(&self, drop: &[usize]) -> Vec<OsString> {
        let mut cut: Vec<Option<usize>> = vec![None; self.words.len()];
        let mut gone = vec![false; self.words.len()];
        for &n in drop {
            let Some(o) = self.opts.get(n) else { continue };
            // An option that takes an argument ends its word, so at most one
            // cut per word; a flag is never dropped.
            cut[o.word] = Some(o.at);
            if o.arg_is_next_word {
                gone[o.word + 1] = true;
            }
        }
        let mut out = Vec::with_capacity(self.words.len() + 1);
        let mut host = None;
        for (i, w) in self.words.iter().enumerate() {
            if gone[i] {
                continue;
            }
            if Some(i) == self.host {
                host = Some(out.len());
            }
            match cut[i] {
                None => out.push(w.clone()),
                Some(at) if at <= 1 => {}
                Some(at) => out.push(OsString::from_vec(w.as_bytes()[..at].to_vec())),
            }
        }
        // ssh.c ends option parsing when the word just before the
        // destination is "--", even an option's argument: the cut must
        // neither make nor unmake that, or the remote command would change.
        let (Some(h), Some(old)) = (host, self.host) else {
            return out;
        };
        let was = old > 0 && self.words[old - 1].as_bytes() == b"--";
        let now = h > 0 && out[h - 1].as_bytes() == b"--";
        if was && !now {
            out.insert(h, OsString::from("--"));
        } else if !was && now && h >= 2 {
            // That "--" is the separate argument of the option before it:
            // attached (`-R--`) it means the same and ends nothing.
            let arg = out.remove(h - 1);
            out[h - 2].push(arg);
        }
        out
    }
}

/// ssh.c: `[user@]host` with an empty user before the last `@` is a usage
/// error. A `ssh://` URI is left for ssh (and `ssh -G`) to judge.
fn destination_ok(w: &[u8]) -> bool {
    w.starts_with(b"ssh://") || w.iter().rposition(|&b| b == b'@') != Some(0)
}

/// One ssh_config line as readconf.c's process_config_line_depth reads it:
/// the keyword (lowercased) split off by `strdelim` (whitespace or one `=`),
/// the rest split by misc.c `argv_split` (quotes, backslash escapes,
/// `#` ends the line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLine {
    pub keyword: Vec<u8>,
    pub args: Vec<Vec<u8>>,
}

const WS: &[u8] = b" \t\r\n";

impl ConfigLine {
    /// None for blank lines, comments and what ssh would reject.
    pub fn parse(line: &[u8]) -> Option<ConfigLine> {
        // Strip trailing whitespace; \f is allowed at the end of a line only.
        let mut end = line.len();
        while end > 0 && (WS.contains(&line[end - 1]) || line[end - 1] == b'\x0c') {
            end -= 1;
        }
        let line = &line[..end];
        let (mut keyword, mut rest) = strdelim(line)?;
        if keyword.is_empty() {
            let (k, r) = strdelim(rest?)?;
            keyword = k;
            rest = r;
        }
        if keyword.is_empty() || keyword[0] == b'#' {
            return None;
        }
        let mut rest = rest?;
        while let Some((&b, r)) = rest.split_first() {
            if !WS.contains(&b) {
                break;
            }
            rest = r;
        }
        if rest.is_empty() {
            return None;
        }
        Some(ConfigLine {
            keyword: keyword.to_ascii_lowercase(),
            args: argv_split(rest)?,
        })
    }
}

/// misc.c strdelim_internal with split_equals: returns the token and the rest
/// (None when the string is used up). A leading quote is not a keyword.
fn strdelim(s: &[u8]) -> Option<(Vec<u8>, Option<&[u8]>)> {
    let Some(p) = s
        .iter()
        .position(|b| WS.contains(b) || *b == b'"' || *b == b'=')
    else {
        return Some((s.to_vec(), None));
    };
    if s[p] == b'"' {
        let mut tok = s[..p].to_vec();
        let after = &s[p + 1..];
        let q = after.iter().position(|&b| b == b'"')?; // no matching quote
        tok.extend_from_slice(&after[..q]);
        let rest = skip_ws(&after[q + 1..]);
        return Some((tok, Some(rest)));
    }
    let was_equals = s[p] == b'=';
    let mut rest = skip_ws(&s[p + 1..]);
    if !was_equals && rest.first() == Some(&b'=') {
        rest = skip_ws(&rest[1..]);
    }
    Some((s[..p].to_vec(), Some(rest)))
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| WS.contains(b)).count();
    &s[n..]
}

/// misc.c argv_split(s, .., terminate_on_comment = 1). None on an unclosed quote.
pub fn argv_split(s: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b' ' || s[i] == b'\t' {
            i += 1;
            continue;
        }
        if s[i] == b'#' {
            break;
        }
        let mut quote = 0u8;
        let mut arg = Vec::new();
        while i < s.len() {
            let c = s[i];
            if c == b'\\' {
                let n = s.get(i + 1).copied();
                if matches!(n, Some(b'\'' | b'"' | b'\\')) || (quote == 0 && n == Some(b' ')) {
                    i += 1;
                    arg.push(s[i]);
                } else {
                    arg.push(c);
                }
            } else if quote == 0 && (c == b' ' || c == b'\t') {
                break;
            } else if quote == 0 && (c == b'"' || c == b'\'') {
                quote = c;
            } else if quote != 0 && c == quote {
                quote = 0;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        if i >= s.len() && quote != 0 {
            return None;
        }
        out.push(arg);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    fn parse(ws: &[&str]) -> Args {
        Args::parse(words(ws))
    }

    /// (argv, options as "letter[=arg]", host, first command word, error)
    type GrammarRow<'a> = (&'a [&'a str], &'a [&'a str], Option<usize>, usize, bool);

    #[test]
    fn config_options_and_the_first_value_of_a_keyword() {
        let a = parse(&[
            "-oPort=1",
            "-v",
            "-o",
            "port 2",
            "-o",
            "# comment",
            "-o",
            "User=u v",
            "-p",
            "3",
            "h",
        ]);
        let got: Vec<(usize, String, Vec<String>)> = a
            .config_options()
            .map(|(n, l)| {
                let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (n, s(&l.keyword), l.args.iter().map(|a| s(a)).collect())
            })
            .collect();
        let want = [
            (0, "port", vec!["1"]),
            (2, "port", vec!["2"]),
            (4, "user", vec!["u", "v"]),
        ];
        let want: Vec<(usize, String, Vec<String>)> = want
            .into_iter()
            .map(|(n, k, a)| (n, k.to_owned(), a.into_iter().map(str::to_owned).collect()))
            .collect();
        assert_eq!(got, want);
        // ssh keeps the first value it obtains.
        assert_eq!(a.first_option("port"), Some(vec![b"1".to_vec()]));
        assert_eq!(
            a.first_option("user"),
            Some(vec![b"u".to_vec(), b"v".to_vec()])
        );
        assert_eq!(a.first_option("hostname"), None);
        assert!(a.has(b'v') && a.has(b'p') && !a.has(b'L'));
    }

    #[test]
    fn grammar_table() {
        let table: &[GrammarRow] = &[
            (&["host"], &[], Some(0), 1, false),
            (&["-v", "host"], &["v"], Some(1), 2, false),
            (&["-tt", "host"], &["t", "t"], Some(1), 2, false),
            (
                &["-L3131:h:22", "host"],
                &["L=3131:h:22"],
                Some(1),
                2,
                false,
            ),
            (
                &["-L", "3131:h:22", "host"],
                &["L=3131:h:22"],
                Some(2),
                3,
                false,
            ),
            (
                &["-fNL3131:h:22", "host"],
                &["f", "N", "L=3131:h:22"],
                Some(1),
                2,
                false,
            ),
            (
                &["-fNL", "3131:h:22", "h"],
                &["f", "N", "L=3131:h:22"],
                Some(2),
                3,
                false,
            ),
            // Options after the destination, then the command.
            (
                &["host", "-L", "1:h:2", "ls", "-l"],
                &["L=1:h:2"],
                Some(0),
                3,
                false,
            ),
            (
                &["host", "-p", "22", "-q"],
                &["p=22", "q"],
                Some(0),
                4,
                false,
            ),
            // `--` before the destination: nothing after it is an option.
            (&["--", "host", "-L", "1:h:2"], &[], Some(1), 2, false),
            (&["host", "--", "-L", "1:h:2"], &[], Some(0), 2, false),
            // The quirk of ssh.c: an option argument "--" before the host.
            (&["-l", "--", "host", "-v"], &["l=--"], Some(2), 3, false),
            (&["-", "x"], &[], Some(0), 1, false),
            (&["host", "-"], &[], Some(0), 1, false),
            (
                &["-o", "LocalForward 1 h:2", "h"],
                &["o=LocalForward 1 h:2"],
                Some(2),
                3,
                false,
            ),
            (
                &["-oClearAllForwardings=yes", "h"],
                &["o=ClearAllForwardings=yes"],
                Some(1),
                2,
                false,
            ),
            (&["ssh://u@h:2222", "-v"], &["v"], Some(0), 2, false),
            // Errors: ssh prints its usage.
            (&[], &[], None, 0, true),
            (&["-v"], &["v"], None, 1, true),
            (&["--help"], &[], None, 1, true),
            (&["-L"], &[], None, 1, true),
            (&["h", "-L"], &[], Some(0), 2, true),
            (&["@h"], &[], Some(0), 1, true),
            (&["-:", "h"], &[], None, 2, true),
            (&["-U", "h"], &[], None, 2, true),
        ];
        for g in GRAMMARS {
            check_rows(g, table);
        }
    }

    /// Where the releases differ: `-P` (a flag up to 9.3, `-P TAG` from
    /// 9.4) and `-Z` (unknown up to 10.4, a mode from 10.5).
    #[test]
    fn grammar_table_per_release() {
        let deprecated_p: &[GrammarRow] = &[
            (&["-P", "h"], &["P"], Some(1), 2, false),
            (&["-vP", "h", "-P"], &["v", "P", "P"], Some(1), 3, false),
            (
                &["-P", "tag", "-L", "1:h:2", "host"],
                &["P", "L=1:h:2"],
                Some(1),
                4,
                false,
            ),
            (&["h", "-P"], &["P"], Some(0), 2, false),
            (&["-Z", "h"], &[], None, 2, true),
            (&["h", "-Z"], &[], Some(0), 2, true),
        ];
        let tag_p: &[GrammarRow] = &[
            (&["-P", "h"], &[], None, 2, true),
            (&["-vP", "h", "-P"], &[], None, 3, true),
            (
                &["-P", "tag", "-L", "1:h:2", "host"],
                &["P=tag", "L=1:h:2"],
                Some(4),
                5,
                false,
            ),
            (
                &["-Ptag", "host", "-P", "t2"],
                &["P=tag", "P=t2"],
                Some(1),
                4,
                false,
            ),
            (&["h", "-P"], &[], Some(0), 2, true),
            (&["-Z", "h"], &[], None, 2, true),
            (&["-PZ", "h"], &["P=Z"], Some(1), 2, false),
        ];
        let dump_pubkeys_z: &[GrammarRow] = &[
            (
                &["-P", "tag", "-L", "1:h:2", "host"],
                &["P=tag", "L=1:h:2"],
                Some(4),
                5,
                false,
            ),
            (&["-Z", "h"], &["Z"], Some(1), 2, false),
            (&["-vZ", "h", "ls"], &["v", "Z"], Some(1), 2, false),
            (&["h", "-Z"], &["Z"], Some(0), 2, false),
            (&["h", "ls", "-Z"], &[], Some(0), 1, false),
            (&["-PZ", "h"], &["P=Z"], Some(1), 2, false),
        ];
        check_rows(DEPRECATED_P, deprecated_p);
        check_rows(TAG_P, tag_p);
        check_rows(DUMP_PUBKEYS_Z, dump_pubkeys_z);
        // Which grammar a release reads with.
        for (v, g) in [
            ((7, 9), DEPRECATED_P),
            ((8, 0), DEPRECATED_P),
            ((9, 3), DEPRECATED_P),
            ((9, 4), TAG_P),
            ((10, 4), TAG_P),
            ((10, 5), DUMP_PUBKEYS_Z),
            ((11, 0), DUMP_PUBKEYS_Z),
        ] {
            assert_eq!(Grammar::of(v.0, v.1), g, "{v:?}");
        }
        assert!(!DEPRECATED_P.p_takes_a_tag() && TAG_P.p_takes_a_tag());
    }

    fn check_rows(g: Grammar, table: &[GrammarRow]) {
        for (argv, opts, host, command, error) in table {
            let a = Args::parse_as(words(argv), g);
            let argv = (g.releases, argv);
            let got: Vec<String> = a
                .opts
                .iter()
                .map(|o| match &o.arg {
                    None => (o.letter as char).to_string(),
                    Some(v) => format!("{}={}", o.letter as char, v.to_string_lossy()),
                })
                .collect();
            assert_eq!(a.error, *error, "{argv:?} error");
            // After an error nothing is a command: the command starts past the end.
            assert_eq!(a.command, *command, "{argv:?} command");
            if *error {
                continue;
            }
            assert_eq!(got, *opts, "{argv:?} options");
            assert_eq!(a.host, *host, "{argv:?} host");
            assert_eq!(a.command, *command, "{argv:?} command");
        }
    }

    #[test]
    fn without_cuts_only_the_dropped_options() {
        let table: &[(&[&str], &[usize], &[&str])] = &[
            (&["-L", "1:h:2", "host"], &[0], &["host"]),
            (&["-L1:h:2", "host"], &[0], &["host"]),
            (&["-fNL1:h:2", "host"], &[2], &["-fN", "host"]),
            (
                &["-fNL", "1:h:2", "host", "ls"],
                &[2],
                &["-fN", "host", "ls"],
            ),
            (
                &["host", "-L", "1:h:2", "-R", "3:h:4", "ls"],
                &[1],
                &["host", "-L", "1:h:2", "ls"],
            ),
            (&["-o", "LocalForward 1 h:2", "-v", "h"], &[0], &["-v", "h"]),
            (&["-L", "1:h:2", "h"], &[], &["-L", "1:h:2", "h"]),
            // "--" as an option's argument before the destination ends
            // option parsing in ssh.c: kept when its option is cut...
            (
                &["-L", "1:h:2", "-E", "--", "h", "-v"],
                &[1],
                &["-L", "1:h:2", "--", "h", "-v"],
            ),
            // ...and not made by a cut that brings it next to the destination.
            (
                &["-R", "--", "-L", "1:h:2", "h", "-G"],
                &[1],
                &["-R--", "h", "-G"],
            ),
        ];
        for (argv, drop, want) in table {
            let a = parse(argv);
            assert_eq!(a.without(drop), words(want), "{argv:?} without {drop:?}");
        }
    }

    #[test]
    fn non_utf8_words_pass_through() {
        let w = vec![
            OsString::from_vec(b"-L1:h\xff:2".to_vec()),
            OsString::from_vec(b"h\xfe".to_vec()),
            OsString::from_vec(b"\x80cmd".to_vec()),
        ];
        let a = Args::parse(w.clone());
        assert!(!a.error);
        assert_eq!(a.opts[0].arg.as_deref().unwrap().as_bytes(), b"1:h\xff:2");
        assert_eq!(a.without(&[]), w);
        assert_eq!(a.without(&[0]), w[1..].to_vec());
    }

    #[test]
    fn config_lines() {
        let table: &[(&[u8], Option<(&str, &[&str])>)] = &[
            (b"LocalForward 1 h:2", Some(("localforward", &["1", "h:2"]))),
            (b"localforward=1 h:2", Some(("localforward", &["1", "h:2"]))),
            (
                b"LOCALFORWARD = 1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (
                b"  RemoteForward \"8082\" 'localhost:22'  \r",
                Some(("remoteforward", &["8082", "localhost:22"])),
            ),
            (
                b"ClearAllForwardings yes # comment",
                Some(("clearallforwardings", &["yes"])),
            ),
            (b"Key a\\ b", Some(("key", &["a b"]))),
            // Quotes inside the keyword close around part of it (checked
            // with ssh -G: each is `localforward 1 [h]:2`).
            (
                b"Local\"Forward\" 1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (
                b"\"LocalForward\" 1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (
                b"LocalForward\"\" 1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (
                b"\"\" LocalForward 1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (
                b"\"LocalForward\"1 h:2",
                Some(("localforward", &["1", "h:2"])),
            ),
            (b"# comment", None),
            (b"", None),
            (b"Key", None),
            (b"Key \"unclosed", None),
        ];
        for (line, want) in table {
            let got = ConfigLine::parse(line);
            let want = want.map(|(k, a)| ConfigLine {
                keyword: k.as_bytes().to_vec(),
                args: a.iter().map(|s| s.as_bytes().to_vec()).collect(),
            });
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
