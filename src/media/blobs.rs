//! Where pictures' bytes live, behind one trait: files on local disk for
//! the embedded default, the database when several nodes share PostgreSQL
//! (`TANDEM_MEDIA_STORE`). Calls run on the database executor's threads,
//! inside the transaction that writes the picture's row, so a database
//! store commits bytes and row together; the disk store writes its file
//! (and fsyncs it) before the row commits, so a committed row always has
//! its bytes.

use std::io::Write;
use std::path::PathBuf;

use crate::storage::DbConn;

/// A picture's bytes by key (`<id>` or `<id>.thumb`).
pub trait BlobStore: Send + Sync {
    fn put(&self, conn: &mut DbConn, key: &str, bytes: &[u8]) -> anyhow::Result<()>;
    fn get(&self, conn: &mut DbConn, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Removes the bytes if there are any.
    fn delete(&self, conn: &mut DbConn, key: &str) -> anyhow::Result<()>;
    fn name(&self) -> &'static str;
}

/// Files under one directory, one per key.
pub struct DiskBlobs {
    dir: PathBuf,
}

impl DiskBlobs {
    pub fn open(dir: PathBuf) -> anyhow::Result<DiskBlobs> {
        std::fs::create_dir_all(&dir)?;
        Ok(DiskBlobs { dir })
    }

    /// Keys are made here from ids, never from a request: no path escapes.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }
}

impl BlobStore for DiskBlobs {
    fn put(&self, _: &mut DbConn, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        // Written aside, flushed, then renamed: a reader never sees half a file.
        let tmp = self.path(&format!("{key}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(key))?;
        Ok(())
    }

    fn get(&self, _: &mut DbConn, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, _: &mut DbConn, key: &str) -> anyhow::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        "disk"
    }
}

/// Rows of `media_blobs`, in the caller's transaction.
pub struct DatabaseBlobs;

impl BlobStore for DatabaseBlobs {
    fn put(&self, conn: &mut DbConn, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        Ok(super::store::put_blob(conn, key, bytes)?)
    }

    fn get(&self, conn: &mut DbConn, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(super::store::get_blob(conn, key)?)
    }

    fn delete(&self, conn: &mut DbConn, key: &str) -> anyhow::Result<()> {
        Ok(super::store::delete_blob(conn, key)?)
    }

    fn name(&self) -> &'static str {
        "database"
    }
}
