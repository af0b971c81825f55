//! What the system tells about another process: its arguments, its executable, its parent.
//!
//! Linux reads `/proc/PID/cmdline`, `/proc/PID/exe` and `/proc/PID/stat`;
//! macOS asks the KERN_PROCARGS2 sysctl, proc_pidpath and
//! proc_pidinfo(PROC_PIDTBSDINFO), as `ps` and `lsof` do; FreeBSD the
//! KERN_PROC_ARGS, KERN_PROC_PATHNAME and KERN_PROC_PID sysctls. Elsewhere
//! nothing is known and every answer is `None`: callers go on without it.
//! Another user's process may answer `None` too (the system refuses).

use std::ffi::OsString;
#[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd"))]
use std::path::Path;

/// The file identity (device, inode) of `p`, following symlinks.
#[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd"))]
fn identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// NUL-terminated words as the kernel keeps argv (`/proc/PID/cmdline`,
/// KERN_PROC_ARGS): a missing last NUL (a truncated or rewritten argv) still
/// ends the last word.
#[cfg(any(target_os = "linux", target_os = "freebsd", test))]
fn nul_words(raw: &[u8]) -> Vec<OsString> {
    use std::os::unix::ffi::OsStringExt;
    if raw.is_empty() {
        return Vec::new();
    }
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|&b| b == 0)
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect()
}

/// The KERN_PROCARGS2 buffer (xnu bsd/kern/kern_sysctl.c sysctl_procargsx):
/// `int argc`, the exec path and its NUL padding, then argc NUL-terminated
/// words (the environment follows; it is not read). `None` when the buffer
/// is shorter than it says.
#[cfg(any(target_vendor = "apple", test))]
fn procargs2_words(buf: &[u8]) -> Option<Vec<OsString>> {
    use std::os::unix::ffi::OsStringExt;
    let (argc, rest) = buf.split_first_chunk::<4>()?;
    let argc = usize::try_from(i32::from_ne_bytes(*argc)).ok()?;
    let path_end = rest.iter().position(|&b| b == 0)?;
    let mut rest = &rest[path_end..];
    while let [0, tail @ ..] = rest {
        rest = tail;
    }
    let mut words = Vec::with_capacity(argc.min(256));
    for _ in 0..argc {
        let end = rest.iter().position(|&b| b == 0)?;
        words.push(OsString::from_vec(rest[..end].to_vec()));
        rest = &rest[end + 1..];
    }
    Some(words)
}

#[cfg(target_os = "linux")]
mod sys {
    use super::*;

    pub fn args(pid: i32) -> Option<Vec<OsString>> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .map(|raw| nul_words(&raw))
    }

    pub fn exe(pid: i32) -> Option<(u64, u64)> {
        identity(Path::new(&format!("/proc/{pid}/exe")))
    }

    pub fn parent(pid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

#[cfg(target_vendor = "apple")]
mod sys {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// KERN_PROCARGS2 into a KERN_ARGMAX buffer, as `ps` reads it: the
    /// kernel copies the top of the process's stack, sized by the buffer.
    pub fn args(pid: i32) -> Option<Vec<OsString>> {
        let mut argmax: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>();
        let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
        // SAFETY: an int answer into an int of the length given.
        if unsafe { sysctl(&mut mib, (&raw mut argmax).cast(), &mut len) } != 0 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(argmax).ok().filter(|&n| n > 0)?];
        let mut len = buf.len();
        let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
        // SAFETY: the buffer is `len` bytes; the kernel says how many it wrote.
        if unsafe { sysctl(&mut mib, buf.as_mut_ptr().cast(), &mut len) } != 0 {
            return None;
        }
        buf.truncate(len);
        procargs2_words(&buf)
    }

    pub fn exe(pid: i32) -> Option<(u64, u64)> {
        let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
        // SAFETY: the buffer is as long as we say.
        let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
        let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
        identity(Path::new(std::ffi::OsStr::from_bytes(&buf[..n])))
    }

    pub fn parent(pid: i32) -> Option<i32> {
        // SAFETY: proc_bsdinfo is plain data; proc_pidinfo fills at most
        // the size we give and returns how much it wrote.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::proc_bsdinfo>() as libc::c_int;
        let got = unsafe {
            libc::proc_pidinfo(pid, libc::PROC_PIDTBSDINFO, 0, (&raw mut info).cast(), size)
        };
        (got == size).then(|| info.pbi_ppid as i32)
    }

    /// sysctl(3) reading `mib` into `buf` of `*len` bytes.
    unsafe fn sysctl(mib: &mut [libc::c_int], buf: *mut libc::c_void, len: &mut usize) -> i32 {
        let n = mib.len() as libc::c_uint;
        // SAFETY: the caller's buffer holds `*len` bytes.
        unsafe { libc::sysctl(mib.as_mut_ptr(), n, buf, len, std::ptr::null_mut(), 0) }
    }
}

#[cfg(target_os = "freebsd")]
mod sys {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    pub fn args(pid: i32) -> Option<Vec<OsString>> {
        let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_ARGS, pid];
        Some(nul_words(&sysctl(&mut mib)?))
    }

    pub fn exe(pid: i32) -> Option<(u64, u64)> {
        let mut mib = [
            libc::CTL_KERN,
            libc::KERN_PROC,
            libc::KERN_PROC_PATHNAME,
            pid,
        ];
        let path = sysctl(&mut mib)?;
        let path = path.split(|&b| b == 0).next()?;
        identity(Path::new(std::ffi::OsStr::from_bytes(path)))
    }

    pub fn parent(pid: i32) -> Option<i32> {
        let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
        // SAFETY: kinfo_proc is plain data, filled by the kernel up to `len`.
        let mut info: libc::kinfo_proc = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::kinfo_proc>();
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                mib.len() as libc::c_uint,
                (&raw mut info).cast(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        let whole =
            len >= std::mem::offset_of!(libc::kinfo_proc, ki_ppid) + size_of::<libc::pid_t>();
        (rc == 0 && whole).then_some(info.ki_ppid)
    }

    /// A sysctl's whole answer: asked for its size first.
    fn sysctl(mib: &mut [libc::c_int]) -> Option<Vec<u8>> {
        let mut len = 0;
        // SAFETY: a size query (no buffer), then a read into a buffer of
        // the length passed; the kernel writes at most that and says how much.
        unsafe {
            let ask = |buf: *mut libc::c_void, len: &mut usize| {
                libc::sysctl(
                    mib.as_ptr(),
                    mib.len() as libc::c_uint,
                    buf,
                    len,
                    std::ptr::null(),
                    0,
                )
            };
            if ask(std::ptr::null_mut(), &mut len) != 0 || len == 0 {
                return None;
            }
            let mut buf = vec![0u8; len];
            if ask(buf.as_mut_ptr().cast(), &mut len) != 0 {
                return None;
            }
            buf.truncate(len);
            Some(buf)
        }
    }
}

#[cfg(not(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd")))]
mod sys {
    use super::*;

    pub fn args(_pid: i32) -> Option<Vec<OsString>> {
        None
    }

    pub fn exe(_pid: i32) -> Option<(u64, u64)> {
        None
    }

    pub fn parent(_pid: i32) -> Option<i32> {
        None
    }
}

/// The process's argv, `argv[0]` included.
pub fn args(pid: i32) -> Option<Vec<OsString>> {
    sys::args(pid)
}

/// The file identity (device, inode) of the process's executable.
pub fn exe(pid: i32) -> Option<(u64, u64)> {
    sys::exe(pid)
}

/// The process's parent pid.
pub fn parent(pid: i32) -> Option<i32> {
    sys::parent(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn nul_separated_words() {
        let table: &[(&[u8], &[&str])] = &[
            (
                b"ssh\0-L\x003131:h:22\0grav\0",
                &["ssh", "-L", "3131:h:22", "grav"],
            ),
            (b"ssh\0grav", &["ssh", "grav"]),
            (b"ssh\0\0grav\0", &["ssh", "", "grav"]),
            (b"\0", &[""]),
            (b"", &[]),
        ];
        for (raw, want) in table {
            assert_eq!(nul_words(raw), os(want), "{raw:?}");
        }
    }

    fn procargs2(argc: i32, path: &[u8], pad: usize, rest: &[u8]) -> Vec<u8> {
        let mut buf = argc.to_ne_bytes().to_vec();
        buf.extend_from_slice(path);
        buf.extend(std::iter::repeat_n(0, pad));
        buf.extend_from_slice(rest);
        buf
    }

    /// As xnu lays it out: argc, exec path, NUL padding to a word boundary,
    /// the words, then the environment (never read).
    #[test]
    fn procargs2_layout() {
        let env = b"HOME=/Users/me\0PATH=/usr/bin\0";
        let words = [b"ssh\0-fN\0grav\0".as_slice(), env].concat();
        let buf = procargs2(3, b"/usr/bin/ssh", 4, &words);
        assert_eq!(procargs2_words(&buf), Some(os(&["ssh", "-fN", "grav"])));
        // One NUL after the path is padding enough.
        let buf = procargs2(1, b"/usr/bin/ssh", 1, b"ssh\0");
        assert_eq!(procargs2_words(&buf), Some(os(&["ssh"])));
        // An empty word in argv stays a word.
        let buf = procargs2(3, b"/bin/sh", 1, b"sh\0\0x\0");
        assert_eq!(procargs2_words(&buf), Some(os(&["sh", "", "x"])));
        let buf = procargs2(0, b"/bin/sh", 1, b"");
        assert_eq!(procargs2_words(&buf), Some(vec![]));
    }

    /// A buffer shorter than it claims is no answer, never a panic.
    #[test]
    fn procargs2_truncated() {
        let table: &[&[u8]] = &[
            b"",
            b"\x01\x00",
            &procargs2(2, b"/usr/bin/ssh", 1, b"ssh\0"),
            &procargs2(1, b"/usr/bin/ssh", 1, b"ssh"),
            &procargs2(1, b"/usr/bin/ssh", 0, b""),
            &procargs2(-1, b"/usr/bin/ssh", 1, b"ssh\0"),
        ];
        for buf in table {
            assert_eq!(procargs2_words(buf), None, "{buf:?}");
        }
    }

    /// This very process, as the system describes it: what this platform's
    /// `sys` answers (Linux: /proc) is checked against std's own view.
    #[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd"))]
    #[test]
    fn this_process() {
        let me = std::process::id() as i32;
        assert_eq!(args(me), Some(std::env::args_os().collect()));
        let exe = std::env::current_exe().unwrap();
        assert_eq!(super::exe(me), identity(&exe));
        assert!(super::exe(me).is_some());
        assert_eq!(parent(me), Some(nix::unistd::getppid().as_raw()));
        // A pid nobody has.
        assert_eq!(args(i32::MAX), None);
        assert_eq!(parent(i32::MAX), None);
    }
}
