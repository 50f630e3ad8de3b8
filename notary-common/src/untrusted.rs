//! Input that crosses a boundary (a client's trust directory, a source being imported, a
//! token's claims) read within bounds while it is read, and shown to an operator escaped.
//!
//! 1. [`read_regular_file`] opens without following a final symlink and without blocking
//!    (a FIFO is refused, not waited on), reads only regular files, and stops at `max` bytes
//!    whatever the file's size says (`tests: untrusted::tests::*`,
//!    `notary-tools/tests/hostile_import.rs::a_hostile_trust_directory_is_refused_cleanly`).
//! 2. [`escape`] writes every control character (ESC, BEL, CR, LF, DEL, C1 …) as a visible
//!    escape, so an untrusted string cannot move the cursor, forge a line or a table row
//!    (`tests: untrusted::tests::escapes_control_characters`).
//!    [`table`] escapes every cell the same way (`notary-tools/tests/hostile_import.rs`,
//!    `notary-tools/tests/admin.rs::an_audit_subject_cannot_forge_a_row`).
//! 3. [`strip_userinfo`] removes `user:password@` from a URL before it is stored or printed
//!    (`tests: untrusted::tests::strips_credentials_from_urls`).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file of a trust directory (or another untrusted folder) was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is a symbolic link (not followed).
    #[error("a symbolic link (not followed)")]
    Symlink,
    /// Not a regular file: a FIFO, a device, a socket, a folder.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than allowed.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The bound.
        max: u64,
    },
    /// Any other I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Read the regular file at `path`, at most `max` bytes (invariant 1).
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                ReadError::Symlink
            } else {
                ReadError::Io(e)
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(out)
}

/// `s` with every control character written as a visible escape (`\n`, `\u{1b}`), for a
/// terminal, a progress line or a table cell (invariant 2).
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Rows as aligned columns (the first row is the header), every cell escaped, each line ending
/// in a newline.
pub fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let cells: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.as_ref().iter().map(|c| escape(c)).collect())
        .collect();
    let n = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `url` without `user:password@` in its authority (invariant 3); anything that is not a
/// URL with an authority is returned as it is.
pub fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{tail}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("docker.io/a/b"), "docker.io/a/b");
        let forged = "x\n[2/2] y: imported (7 files)\x1b[2K\x07";
        let e = escape(forged);
        assert!(!e.chars().any(char::is_control), "{e}");
        assert_eq!(e, "x\\n[2/2] y: imported (7 files)\\u{1b}[2K\\u{7}");
        assert!(!escape("a\u{202e}b").contains('\u{202e}'));
    }

    #[test]
    fn tables_escape_and_align_cells() {
        let rows = vec![
            vec!["GUN".to_string(), "SUBJECT".to_string()],
            vec!["a".to_string(), "eve\n2026-01-01  delete  b".to_string()],
        ];
        let t = table(&rows);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert_eq!(t, "GUN  SUBJECT\na    eve\\n2026-01-01  delete  b\n");
    }

    #[test]
    fn strips_credentials_from_urls() {
        assert_eq!(
            strip_userinfo("http://user:pass@host:8080/x?y=1"),
            "http://host:8080/x?y=1"
        );
        assert_eq!(
            strip_userinfo("https://u@p@host/"),
            "https://host/",
            "the last @ ends the user info"
        );
        assert_eq!(
            strip_userinfo("https://host/a@b"),
            "https://host/a@b",
            "an @ in the path is not user info"
        );
        assert_eq!(strip_userinfo("trust-dir:/x"), "trust-dir:/x");
    }

    #[test]
    fn reads_only_bounded_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular_file(&f, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular_file(&f, 4),
            Err(ReadError::TooLarge { max: 4 })
        ));
        let link = d.path().join("l");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_regular_file(&link, 1 << 20),
            Err(ReadError::Symlink)
        ));
        assert!(matches!(
            read_regular_file(Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_regular_file(d.path(), 1 << 20),
            Err(ReadError::NotRegular)
        ));
    }
}
