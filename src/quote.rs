//! Shell quoting: the one-line command that `--dry-run` and `--verbose`
//! print, and the rosh function's remote script.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Quotes one word for a POSIX shell: bare when it only holds safe bytes,
/// else in single quotes with `'` written as `'\''`. Bytes pass through as
/// they are, non-UTF-8 included.
pub fn word(w: &OsStr) -> Vec<u8> {
    let b = w.as_bytes();
    let safe = |c: &u8| c.is_ascii_alphanumeric() || b"@%+=:,./_-[]".contains(c);
    if !b.is_empty() && b.iter().all(safe) {
        return b.to_vec();
    }
    single_quoted(b)
}

/// One word quoted for any POSIX login shell on the far side (the rosh
/// function's remote script and its arguments): stricter than [`word`], as
/// a word there is read by whatever shell the user logs in with: `[` and
/// `]` (a glob) are quoted too, and so is a leading `=` (zsh's command
/// expansion).
pub fn for_login_shell(b: &[u8]) -> Vec<u8> {
    let plain = |c: &u8| c.is_ascii_alphanumeric() || b"_./=:,+@%-".contains(c);
    if !b.is_empty() && b[0] != b'=' && b.iter().all(plain) {
        return b.to_vec();
    }
    single_quoted(b)
}

/// `'...'` with each `'` written as `'\''`.
fn single_quoted(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 2);
    out.push(b'\'');
    for &c in b {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    out
}

/// Quotes a whole command line, words separated by single spaces.
pub fn line<'a>(words: impl IntoIterator<Item = &'a OsStr>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&word(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_table() {
        let table: &[(&[u8], &[u8])] = &[
            (b"host", b"host"),
            (b"-L3131:localhost:22", b"-L3131:localhost:22"),
            (b"", b"''"),
            (b"a b", b"'a b'"),
            (b"it's", b"'it'\\''s'"),
            (b"$HOME", b"'$HOME'"),
            (b"\xff", b"'\xff'"),
            (b"[::1]:80", b"[::1]:80"),
        ];
        for (input, want) in table {
            assert_eq!(word(OsStr::from_bytes(input)), *want);
        }
    }

    #[test]
    fn quoted_words_read_back_through_sh() {
        let words = ["a b", "it's", "$x", "", "`id`", "\\", "\n"];
        let quoted = line(words.iter().map(OsStr::new));
        let script = format!(
            "for w in {}; do printf '%s\\0' \"$w\"; done",
            String::from_utf8(quoted).unwrap()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        let want: Vec<&[u8]> = words
            .iter()
            .map(|w| w.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(got, want);
    }
}
