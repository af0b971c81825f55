//! Differential tests of config::rewrite with the real `ssh -G` as the oracle: the rewritten
//! config means what the original meant, less exactly the dropped forward lines.

mod lab;

use lab::ssh_g;
use rosh_ssh::config::{self, Origin, Sources};
use rosh_ssh::forward::{self, Forward, Kind};
use rosh_ssh::tmpdir::PrivateDir;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn fwd(kind: Kind, args: &[&str]) -> Forward {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    forward::parse_keyword(kind, &a).expect("test forward parses")
}

fn write(p: &Path, bytes: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
}

fn user_sources(main: &Path, home: &Path) -> Sources {
    Sources {
        user: Some(main.to_owned()),
        user_required: true,
        system: None,
        sshdir: PathBuf::from(config::SSHDIR),
        home: Some(home.to_owned()),
        argv_split: lab::client_at_least(8, 7),
    }
}

/// Asserts `got` is `want` less the `dropped` lines (whole `ssh -G` lines),
/// each of which `want` has. Whole lines: a kept forward may share its
/// listen side (even its whole `localforward PORT` prefix) with a dropped one.
fn assert_same_but_dropped(want: &[String], got: &[String], dropped: &[&str], what: &str) {
    for d in dropped {
        assert!(
            want.iter().any(|l| l == d),
            "{what}: original has no {d:?}:\n{want:#?}"
        );
    }
    let expected: Vec<&String> = want
        .iter()
        .filter(|l| !dropped.iter().any(|d| l == d))
        .collect();
    let got: Vec<&String> = got.iter().collect();
    assert_eq!(got, expected, "{what}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A user config tree under `home/.ssh/<sub>` exercising Host/Match context, relative, glob and
/// `~` Includes, `Key=value`, quotes, CRLF and comments, and kept forwards
/// that share their listen side with a dropped one (7002, 7005, 7010).
/// Returns the `-F` file.
fn build_tree(home: &Path, sub: &str, top_dir: &Path) -> PathBuf {
    let ssh = home.join(".ssh").join(sub);
    let main = top_dir.join("main.conf");
    write(
        &main,
        &format!(
            "# a comment LocalForward 7099 h:99\n\
             LocalForward 7001 h:1\n\
             Host target\n\
             \x20 LocalForward=7002 h:2\n\
             \x20 Include {sub}/inc/*.conf\n\
             \x20 User alice\n\
             \x20 LocalForward 7002 h:92\n\
             \x20 RemoteForward 7002 h:2\n\
             Host other\n\
             \x20 LocalForward 7003 h:3\n\
             Match host target\n\
             \x20 {quoted}\n\
             Host *\n\
             Include ~/.ssh/{sub}/tilde.conf\n\
             Port 2222\n",
            // Single quotes and a comment after the arguments from 8.7
            // (argv_split); before, strdelim: double quotes only.
            quoted = if lab::client_at_least(8, 7) {
                "\"RemoteForward\" \"7004\" 'h:4' # trailing"
            } else {
                "\"RemoteForward\" \"7004\" \"h:4\""
            }
        ),
    );
    write(
        &ssh.join("inc/a.conf"),
        "LocalForward 7005 h:5\r\nHost other\r\n  LocalForward 7006 h:6\r\n",
    );
    write(
        &ssh.join("inc/b.conf"),
        "DynamicForward 7007\nLocalForward 7008 h:8\nLocalForward 7005 other:5\n",
    );
    write(&ssh.join("inc/we ird[1].conf"), "LocalForward 7011 h:11\n");
    write(
        &ssh.join("inc/not-included.txt"),
        "LocalForward 7012 h:12\n",
    );
    write(
        &ssh.join("tilde.conf"),
        "LocalForward = 7010 h:10\nCompression yes\nDynamicForward 7010\n",
    );
    main
}

/// The checks shared by the temp-HOME and real-HOME variants.
fn check_tree(main: &Path, home: &Path, home_env: Option<&Path>, sub: &str) {
    let src = user_sources(main, home);
    assert!(config::mentions_forward(&src));
    let drop = [
        fwd(Kind::Local, &["7002", "h:2"]),
        fwd(Kind::Local, &["7005", "h:5"]),
        fwd(Kind::Local, &["7010", "h:10"]),
    ];
    let ssh = home.join(".ssh").join(sub);
    assert_eq!(
        config::origins(&src, &drop[1]),
        [Origin {
            file: ssh.join("inc/a.conf"),
            line: 1,
            text: b"LocalForward 7005 h:5".to_vec(),
        }]
    );
    assert_eq!(
        config::origins(&src, &drop[0]),
        [Origin {
            file: main.to_owned(),
            line: 4,
            text: b"LocalForward=7002 h:2".to_vec(),
        }]
    );
    assert_eq!(
        config::origins(&src, &fwd(Kind::Local, &["7012", "h:12"])),
        []
    );
    let dir = PrivateDir::new().unwrap();
    let top = config::rewrite(&src, &drop, dir.path()).unwrap();
    // top, main, a.conf and tilde.conf copied; b.conf and "we ird[1].conf" included as they are.
    let files = files_in(dir.path());
    assert_eq!(files.len(), 4, "{files:#?}");
    for f in &files {
        assert_eq!(fs::metadata(f).unwrap().mode() & 0o777, 0o600, "{f:?}");
    }
    let a_copy = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("a.conf"))
        .unwrap();
    assert_eq!(
        fs::read(a_copy).unwrap(),
        b"# rosh-ssh dropped: LocalForward 7005 h:5\r\nHost other\r\n  LocalForward 7006 h:6\r\n"
    );

    for host in ["target", "other", "elsewhere"] {
        let want = ssh_g(Some(main), host, home_env).unwrap();
        let got = ssh_g(Some(&top), host, home_env).unwrap();
        let dropped: &[&str] = match host {
            "target" => &[
                "localforward 7002 [h]:2",
                "localforward 7005 [h]:5",
                "localforward 7010 [h]:10",
            ],
            _ => &["localforward 7010 [h]:10"],
        };
        assert_same_but_dropped(&want, &got, dropped, host);
        // Forwards that stay: context restored after each Include, glob and quoted forms kept.
        if host == "target" {
            for keep in [
                "localforward 7001 ",
                "localforward 7011 ",
                "localforward 7008 ",
                "dynamicforward 7007",
                "remoteforward 7004 ",
                "localforward 7002 [h]:92",
                "remoteforward 7002 [h]:2",
                "localforward 7005 [other]:5",
                "dynamicforward 7010",
                "user alice",
                "port 2222",
                "compression yes",
            ] {
                assert!(got.iter().any(|l| l.starts_with(keep)), "{keep}: {got:#?}");
            }
            assert!(!got.iter().any(|l| l.starts_with("localforward 7006 ")));
            assert!(!got.iter().any(|l| l.starts_with("localforward 7012 ")));
        }
    }
    // Nothing dropped: the same config, whatever was copied.
    let top = config::rewrite(&src, &[], dir.path()).unwrap();
    assert_eq!(
        ssh_g(Some(&top), "target", home_env),
        ssh_g(Some(main), "target", home_env)
    );
}

#[test]
fn rewrite_keeps_meaning_with_a_temp_home() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let home = PrivateDir::new().unwrap();
    let tops = PrivateDir::new().unwrap();
    let main = build_tree(home.path(), "t", tops.path());
    check_tree(&main, home.path(), Some(home.path()), "t");
}

/// Removes the test's subdir of the real `~/.ssh`, and `~/.ssh` itself if the test made it.
struct RealSshDir {
    ssh: PathBuf,
    sub: PathBuf,
    made_ssh: bool,
}

impl Drop for RealSshDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.sub);
        if self.made_ssh {
            let _ = fs::remove_dir(&self.ssh);
        }
    }
}

#[test]
fn rewrite_keeps_meaning_with_the_real_home() {
    if !lab::require(lab::ssh()) {
        return;
    }
    // ssh's glob expands `~` to $HOME, as config::sources does.
    let src = config::sources(Some("/dev/null".as_ref()));
    let Some(home) = src.home.clone() else {
        lab::skip_or_fail("no home directory for the test user");
        return;
    };
    let ssh = home.join(".ssh");
    let made_ssh = !ssh.exists();
    if made_ssh && fs::create_dir(&ssh).is_err() {
        lab::skip_or_fail(&format!("cannot create {ssh:?}"));
        return;
    }
    let name = format!("rosh-ssh-test-{}", std::process::id());
    let guard = RealSshDir {
        ssh: ssh.clone(),
        sub: ssh.join(&name),
        made_ssh,
    };
    let tops = PrivateDir::new().unwrap();
    let main = build_tree(&home, &name, tops.path());
    check_tree(&main, &home, None, &name);
    drop(guard);
    assert!(!ssh.join(&name).exists());
}

#[test]
fn system_branch_rebases_relative_includes() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let t = PrivateDir::new().unwrap();
    let etc = t.path().join("etc-ssh");
    let user = t.path().join("user.conf");
    write(&user, "Host target\n  LocalForward 7030 h:30\n");
    let sys = etc.join("ssh_config");
    write(
        &sys,
        "Host target\nInclude sys.d/*.conf\nLocalForward 7020 h:20\nHost *\n  User sysuser\n",
    );
    write(
        &etc.join("sys.d/1.conf"),
        "LocalForward 7021 h:21\nPort 2200\n",
    );
    write(&etc.join("sys.d/2.conf"), "LocalForward 7022 h:22\n");
    // What ssh would do reading `sys` as its system config: relative paths under `etc`.
    let sys_ref = t.path().join("sys-ref.conf");
    write(
        &sys_ref,
        &fs::read_to_string(&sys)
            .unwrap()
            .replace("sys.d/", &format!("{}/sys.d/", etc.display())),
    );
    let reference = t.path().join("ref.conf");
    write(
        &reference,
        &format!(
            "Include {}\nInclude {}\n",
            user.display(),
            sys_ref.display()
        ),
    );
    let src = Sources {
        user: Some(user.clone()),
        user_required: false,
        system: Some(sys.clone()),
        sshdir: etc.clone(),
        home: Some(t.path().to_owned()),
        argv_split: lab::client_at_least(8, 7),
    };
    assert!(config::mentions_forward(&src));
    let d21 = fwd(Kind::Local, &["7021", "h:21"]);
    assert_eq!(
        config::origins(&src, &d21),
        [Origin {
            file: etc.join("sys.d/1.conf"),
            line: 1,
            text: b"LocalForward 7021 h:21".to_vec(),
        }]
    );
    let home = Some(t.path());
    let out = PrivateDir::new().unwrap();
    for (drop, dropped) in [
        (vec![], vec![]),
        (vec![d21.clone()], vec!["localforward 7021 [h]:21"]),
        (
            vec![d21, fwd(Kind::Local, &["7030", "h:30"])],
            vec!["localforward 7021 [h]:21", "localforward 7030 [h]:30"],
        ),
    ] {
        let top = config::rewrite(&src, &drop, out.path()).unwrap();
        for host in ["target", "x"] {
            let want = ssh_g(Some(&reference), host, home).unwrap();
            let got = ssh_g(Some(&top), host, home).unwrap();
            let dropped: Vec<&str> = if host == "target" {
                dropped.clone()
            } else {
                vec![]
            };
            assert_same_but_dropped(&want, &got, &dropped, host);
        }
    }
    // A copy names the system tree's files by absolute path.
    let copies = files_in(out.path());
    assert!(copies.iter().any(|f| {
        fs::read_to_string(f)
            .unwrap()
            .contains(&format!("Include \"{}/sys.d/1.conf\"", etc.display()))
    }));
}

#[test]
fn default_sources_round_trip_on_this_machine() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let src = config::sources(None);
    assert_eq!(
        src.system.as_deref(),
        Some(Path::new("/etc/ssh/ssh_config"))
    );
    // The system config is where ssh was built to look (its sysconfdir):
    // the releases tests/releases.sh builds read theirs from their own
    // cache directory, not this machine's /etc/ssh/ssh_config.
    let v = std::process::Command::new(lab::ssh())
        .args(["-v", "-G", "example.org"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let reads = String::from_utf8_lossy(&v.stderr)
        .contains("Reading configuration data /etc/ssh/ssh_config");
    if Path::new("/etc/ssh/ssh_config").exists() && !reads {
        eprintln!("skipping: {} does not read /etc/ssh/ssh_config", lab::ssh());
        return;
    }
    assert!(src.user.as_ref().unwrap().ends_with(".ssh/config"));
    let d = PrivateDir::new().unwrap();
    let top = config::rewrite(&src, &[], d.path()).unwrap();
    for host in ["example.org", "target"] {
        assert_eq!(ssh_g(Some(&top), host, None), ssh_g(None, host, None));
    }
}

#[test]
fn dash_f_none_and_last_sources() {
    for none in ["none", "NONE", "None"] {
        let s = config::sources(Some(none.as_ref()));
        assert_eq!((s.user, s.system), (None, None));
        assert!(!config::mentions_forward(&config::sources(Some(
            none.as_ref()
        ))));
    }
    let s = config::sources(Some("/x/y".as_ref()));
    assert_eq!(s.user.as_deref(), Some(Path::new("/x/y")));
    assert!(s.user_required && s.system.is_none());
    let s = config::sources(Some("rel/y".as_ref()));
    assert!(s.user.unwrap().is_absolute());
}

#[test]
fn a_world_writable_dash_f_file_is_copied_not_included() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let t = PrivateDir::new().unwrap();
    let main = t.path().join("main.conf");
    write(&main, "LocalForward 7040 h:40\nUser x\n");
    fs::set_permissions(&main, fs::Permissions::from_mode(0o666)).unwrap();
    // ssh reads a -F file whatever its mode, but checks the files it includes.
    let naive = t.path().join("naive.conf");
    write(&naive, &format!("Include {}\n", main.display()));
    assert!(ssh_g(Some(&naive), "h", Some(t.path())).is_err());
    let src = user_sources(&main, t.path());
    let d = PrivateDir::new().unwrap();
    let top = config::rewrite(&src, &[], d.path()).unwrap();
    assert_eq!(
        ssh_g(Some(&top), "h", Some(t.path())),
        ssh_g(Some(&main), "h", Some(t.path()))
    );
    assert_eq!(files_in(d.path()).len(), 2);
}

#[test]
fn mentions_forward_table() {
    let t = PrivateDir::new().unwrap();
    let home = t.path();
    // (case, files (name under the case's home, body), expected); "m" is the -F file.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        ("empty", &[], false),
        ("plain", &[("m", "User x\nPort 22\n")], false),
        ("comment", &[("m", "# LocalForward 1 h:2\n")], false),
        ("kv", &[("m", "localforward=1 h:2\n")], true),
        ("remote", &[("m", "  REMOTEFORWARD 1 h:2\r\n")], true),
        ("dynamic", &[("m", "Host a\n\tDynamicForward 1080\n")], true),
        (
            "included in Host block",
            &[
                ("m", "Host nomatch\nInclude ~/.ssh/i\n"),
                (".ssh/i", "LocalForward 1 h:2\n"),
            ],
            true,
        ),
        (
            "included relative",
            &[("m", "Include i2\n"), (".ssh/i2", "DynamicForward 5\n")],
            true,
        ),
        (
            "include matches nothing",
            &[("m", "Include nothing*\n")],
            false,
        ),
        (
            "include without forward",
            &[("m", "Include i3\n"), (".ssh/i3", "User y\n")],
            false,
        ),
        (
            "loop",
            &[
                ("m", "Include ~/.ssh/loop\n"),
                (".ssh/loop", "Include ~/.ssh/loop\n"),
            ],
            true,
        ),
        // A quote left open is an error from 8.7 (argv_split); strdelim
        // before took `'x` as a name, which matches nothing.
        (
            "bad include quotes",
            &[("m", "Include 'x\n")],
            lab::client_at_least(8, 7),
        ),
    ];
    for (what, files, want) in cases {
        let case = home.join(what.replace(' ', "_"));
        for (name, body) in *files {
            write(&case.join(name), body);
        }
        let main = case.join("m");
        if files.is_empty() {
            write(&main, "");
        }
        let src = user_sources(&main, &case);
        assert_eq!(config::mentions_forward(&src), *want, "{what}");
    }
    // A -F file that cannot be read: let ssh say so.
    let src = user_sources(&home.join("missing"), home);
    assert!(config::mentions_forward(&src));
    // A missing ~/.ssh/config is normal.
    let src = Sources {
        user_required: false,
        ..user_sources(&home.join("missing"), home)
    };
    assert!(!config::mentions_forward(&src));
}

#[test]
fn include_depth_limit_matches_ssh() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let t = PrivateDir::new().unwrap();
    // chain(n): main includes c1, c1 includes c2 ... cn has the forward: depth n.
    let chain = |n: usize| -> PathBuf {
        let dir = t.path().join(format!("chain{n}"));
        let f = |i: usize| dir.join(format!("c{i}"));
        for i in 0..n {
            write(&f(i), &format!("Include {}\n", f(i + 1).display()));
        }
        write(&f(n), "LocalForward 7050 h:50\n");
        f(0)
    };
    let home = Some(t.path());
    assert!(ssh_g(Some(&chain(16)), "h", home).is_ok());
    assert!(ssh_g(Some(&chain(17)), "h", home).is_err());
    let src = |n| user_sources(&chain(n), t.path());
    assert!(config::mentions_forward(&src(16)));
    assert!(config::mentions_forward(&src(17)));
    let d = PrivateDir::new().unwrap();
    let drop = [fwd(Kind::Local, &["7050", "h:50"])];
    // The top file adds a level: 15 still fits, 16 would not.
    let top = config::rewrite(&src(15), &drop, d.path()).unwrap();
    let got = ssh_g(Some(&top), "h", home).unwrap();
    assert!(
        !got.iter().any(|l| l.starts_with("localforward")),
        "{got:#?}"
    );
    assert!(config::rewrite(&src(16), &drop, d.path()).is_err());
    assert!(config::rewrite(&src(17), &[], d.path()).is_err());
}
