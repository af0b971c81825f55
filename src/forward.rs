//! STUB on branch `config` only, replaced by the real forward-spec parser at merge.
//!
//! Just enough of the agreed API for `config` to compile and its tests to run: a rough
//! readconf.c `parse_forward` for the keyword form (`[bind:]port host:hostport`, `[bind:]port`,
//! unix-socket paths). Not a faithful parser.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Remote,
    Dynamic,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: Option<Vec<u8>>, port: u16 },
    Path(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub kind: Kind,
    pub listen: Endpoint,
    pub connect: Option<Endpoint>,
}

/// readconf.c keyword form, `args` after the keyword.
pub fn parse_keyword(kind: Kind, args: &[&[u8]]) -> Option<Forward> {
    match (kind, args) {
        (Kind::Dynamic, [a]) | (Kind::Remote, [a]) => Some(Forward {
            kind,
            listen: endpoint(a)?,
            connect: None,
        }),
        (Kind::Local | Kind::Remote, [a, b]) => Some(Forward {
            kind,
            listen: endpoint(a)?,
            connect: Some(endpoint(b)?),
        }),
        _ => None,
    }
}

fn endpoint(s: &[u8]) -> Option<Endpoint> {
    if s.contains(&b'/') {
        return Some(Endpoint::Path(s.to_vec()));
    }
    let (host, port) = match s.iter().rposition(|&c| c == b':') {
        Some(i) => (Some(&s[..i]), &s[i + 1..]),
        None => (None, s),
    };
    let host = host.map(|h| {
        h.strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(h)
            .to_vec()
    });
    let port = std::str::from_utf8(port).ok()?.parse().ok()?;
    Some(Endpoint::Tcp { host, port })
}

impl Forward {
    pub fn ssh_g(&self) -> Vec<u8> {
        Vec::new()
    }
    pub fn from_ssh_g(_line: &[u8]) -> Option<Forward> {
        None
    }
}
