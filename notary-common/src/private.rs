//! Files that hold keys or databases are private whatever the process umask: folders 0700,
//! key files and databases 0600 (certificates 0644). Used by both binaries for everything they
//! create (`notary-tools/tests/hardening.rs::files_are_private_whatever_the_umask`).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Create `dir` (and missing parents) 0700 whatever the umask; an existing folder is left as
/// it is (it may be `.` or shared with other services: its files are made private instead).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Write `data` to `path` with `mode` (0600 for secrets, 0644 for certificates), replacing it.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Make the SQLite database at `path` (and its WAL and shared-memory files, which SQLite
/// creates with the database's mode) 0600, creating it empty if missing.
pub fn sqlite_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        ));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
