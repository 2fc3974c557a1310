//! Photos people upload (completion feedback, field reports): checked by
//! content, stripped of a JPEG's EXIF block (where the GPS position is)
//! unless the policy keeps it, and stored content-addressed: the file is
//! named by the sha256 of the stored bytes, so an upload repeated after a
//! lost answer or a restart mid-upload stores nothing twice and gets the
//! same reference.
//!
//! One directory holds them: `photos/` beside the SQLite journal by
//! default; with Redis, a directory every dispatcher of the city shares
//! (`--photos-dir`, e.g. a network mount), or an S3-compatible bucket
//! (`photo_bucket`, feature `s3`), behind the [`Backend`] trait. How long
//! photos are kept: `photo_retention`.
//!
//! A photo is written to a temporary file, synced, renamed into place and
//! the directory synced before the upload is answered: an answered photo
//! survives a crash or power loss, and a half-written one is never seen
//! under its name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The largest photo taken, in bytes (10 MiB): a phone's camera photo, or
/// one scaled down by the app, fits.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

/// What a photo reference looks like: `sha256:` and 64 lowercase hex digits.
const PREFIX: &str = "sha256:";

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the photo is {size} bytes; at most {MAX_PHOTO_BYTES} bytes (10 MiB) are taken: scale it down and send it again")]
    TooLarge { size: usize },
    #[error("the upload is empty; send the image file's bytes")]
    Empty,
    #[error("the upload is not a JPEG, PNG, WebP or HEIC image (read from its first bytes); send a photo in one of those")]
    NotAnImage,
    #[error("photo reference {0:?} is not one UploadPhoto returned (sha256: and 64 hex digits)")]
    BadReference(String),
    #[error("no photo {0} is stored here; upload it first (UploadPhoto), then name the photo_ref it returns")]
    NotFound(String),
    #[error("the photo store could not be written or read: {0}")]
    Io(#[from] std::io::Error),
}

/// A stored photo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub photo_ref: String,
    pub content_type: &'static str,
    pub size: usize,
    /// The JPEG's EXIF block was removed.
    pub location_removed: bool,
    /// The same photo was stored before.
    pub already_stored: bool,
}

/// The photos of one dispatcher (or of a city, on a shared store): the
/// checks, EXIF removal and naming here; the bytes in a [`Backend`].
#[derive(Clone, Debug)]
pub struct PhotoStore {
    backend: Arc<dyn Backend>,
    /// Keep a JPEG's EXIF block (with any GPS position) as uploaded.
    keep_exif: bool,
}

/// Where photo files are kept, each under its name (64 hex digits): a local
/// directory (the default, or one every dispatcher shares on a network
/// mount), or an S3-compatible bucket (feature `s3`). Calls block: the
/// store is used off the async threads.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Whether a photo of this name is kept.
    fn exists(&self, name: &str) -> std::io::Result<bool>;
    /// Keeps `bytes` under `name`, durably, before returning; a reader
    /// never sees part of them.
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// The bytes kept under `name`; `None` when none are.
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Deletes what is kept under `name`; `false` when nothing was.
    fn delete(&self, name: &str) -> std::io::Result<bool>;
    /// Every name kept with when it was stored (Unix ms).
    fn list(&self) -> std::io::Result<Vec<(String, i64)>>;
    /// Marks `name` as stored now (a repeated upload), where the store can.
    fn touch(&self, name: &str);
}

/// Photos in a directory: written to a temporary file, synced, renamed into
/// place, and the directory synced.
#[derive(Debug)]
struct Directory {
    dir: PathBuf,
}

impl Backend for Directory {
    fn exists(&self, name: &str) -> std::io::Result<bool> {
        Ok(self.dir.join(name).exists())
    }

    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        // A unique temporary name: two uploads of one photo at once each
        // write their own, and the second rename replaces equal bytes.
        let temporary = self.dir.join(format!(".upload-{name}-{}", std::process::id() as u64 ^ nanos()));
        let written = (|| {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, self.dir.join(name))?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }

    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn delete(&self, name: &str) -> std::io::Result<bool> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn list(&self) -> std::io::Result<Vec<(String, i64)>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let modified = entry.metadata()?.modified()?;
            let stored_ms = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis());
            names.push((name, i64::try_from(stored_ms).unwrap_or(i64::MAX)));
        }
        Ok(names)
    }

    fn touch(&self, name: &str) {
        let _ = fs::File::options()
            .append(true)
            .open(self.dir.join(name))
            .and_then(|file| file.set_modified(std::time::SystemTime::now()));
    }
}

impl PhotoStore {
    /// Opens (creating it) the directory of photos.
    pub fn open(dir: &Path, keep_exif: bool) -> std::io::Result<PhotoStore> {
        fs::create_dir_all(dir)?;
        Ok(PhotoStore { backend: Arc::new(Directory { dir: dir.to_path_buf() }), keep_exif })
    }

    /// Photos kept by `backend` (e.g. `photo_bucket::Bucket`, feature `s3`).
    pub fn with_backend(backend: Arc<dyn Backend>, keep_exif: bool) -> PhotoStore {
        PhotoStore { backend, keep_exif }
    }

    /// Checks and stores `bytes` (blocking: call it off the async threads).
    pub fn store(&self, bytes: &[u8]) -> Result<Stored, PhotoError> {
        if bytes.is_empty() {
            return Err(PhotoError::Empty);
        }
        if bytes.len() > MAX_PHOTO_BYTES {
            return Err(PhotoError::TooLarge { size: bytes.len() });
        }
        let content_type = content_type(bytes).ok_or(PhotoError::NotAnImage)?;
        let stripped = if content_type == "image/jpeg" && !self.keep_exif { without_exif(bytes) } else { None };
        let location_removed = stripped.is_some();
        let kept: &[u8] = stripped.as_deref().unwrap_or(bytes);
        let hex = hex_of(&Sha256::digest(kept));
        let photo_ref = format!("{PREFIX}{hex}");
        if self.backend.exists(&hex)? {
            // Stored again: the time a photo no incident names yet is kept
            // from (retention) starts again, so a retried upload is not
            // deleted before the report naming it arrives.
            self.backend.touch(&hex);
            return Ok(Stored { photo_ref, content_type, size: kept.len(), location_removed, already_stored: true });
        }
        self.backend.put(&hex, kept)?;
        Ok(Stored { photo_ref, content_type, size: kept.len(), location_removed, already_stored: false })
    }

    /// A stored photo's type and bytes (blocking).
    pub fn read(&self, photo_ref: &str) -> Result<(&'static str, Vec<u8>), PhotoError> {
        let name = name_of(photo_ref)?;
        let Some(bytes) = self.backend.get(&name)? else {
            return Err(PhotoError::NotFound(photo_ref.to_string()));
        };
        Ok((content_type(&bytes).unwrap_or("application/octet-stream"), bytes))
    }

    /// Checks that every reference names a stored photo.
    pub fn check_stored(&self, photo_refs: &[String]) -> Result<(), PhotoError> {
        for photo_ref in photo_refs {
            if !self.backend.exists(&name_of(photo_ref)?)? {
                return Err(PhotoError::NotFound(photo_ref.clone()));
            }
        }
        Ok(())
    }

    /// Deletes a stored photo (blocking); `false` when it was not stored.
    pub fn delete(&self, photo_ref: &str) -> Result<bool, PhotoError> {
        Ok(self.backend.delete(&name_of(photo_ref)?)?)
    }

    /// Every stored photo with when it was stored (Unix ms; blocking).
    /// Temporary files of uploads under way are not photos yet.
    pub fn list(&self) -> Result<Vec<(String, pingji_engine::ids::Millis)>, PhotoError> {
        let listed = self.backend.list()?;
        Ok(listed
            .into_iter()
            .map(|(name, stored_ms)| (format!("{PREFIX}{name}"), pingji_engine::ids::Millis(stored_ms)))
            .filter(|(photo_ref, _)| name_of(photo_ref).is_ok())
            .collect())
    }
}

/// The name a photo is kept under: the 64 hex digits of its reference.
fn name_of(photo_ref: &str) -> Result<String, PhotoError> {
    let hex = photo_ref.trim().strip_prefix(PREFIX).unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) {
        return Err(PhotoError::BadReference(photo_ref.chars().take(100).collect()));
    }
    Ok(hex.to_string())
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.subsec_nanos().into())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The image type, read from the first bytes (magic numbers), never from
/// what the client says.
pub fn content_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        return Some("image/png");
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    // ISO base media: a box `ftyp` at offset 4 with a HEIF brand.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = &bytes[8..12];
        if [b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"].iter().any(|heif| brand == *heif) {
            return Some("image/heic");
        }
    }
    None
}

/// The JPEG without its EXIF segments (APP1 starting `Exif\0\0`, which hold
/// the GPS position among camera details); `None` when it has none. The
/// whole APP1 segment goes (not only the GPS IFD): simpler to get right,
/// and nothing the command room needs is in it. Orientation goes with it,
/// so a phone app should rotate the pixels before uploading.
fn without_exif(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut kept = Vec::with_capacity(jpeg.len());
    kept.extend_from_slice(&jpeg[..2]); // SOI
    let mut at = 2;
    let mut removed = false;
    // Segments up to the start of scan; after it, entropy-coded data.
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xDA {
            break;
        }
        // Markers without a length (fill bytes, RSTn, TEM).
        if marker == 0xFF || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            kept.push(jpeg[at]);
            at += 1;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        let end = at + 2 + length;
        if length < 2 || end > jpeg.len() {
            // Not a well-formed segment: keep the rest as it is.
            break;
        }
        let is_exif = marker == 0xE1 && jpeg[at + 4..end].starts_with(b"Exif\0\0");
        if is_exif {
            removed = true;
        } else {
            kept.extend_from_slice(&jpeg[at..end]);
        }
        at = end;
    }
    if !removed {
        return None;
    }
    kept.extend_from_slice(&jpeg[at..]);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG's first segments: SOI, an APP1 EXIF block with `gps`, an APP0,
    /// then a start of scan and data.
    fn jpeg_with_exif(gps: &[u8]) -> Vec<u8> {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(gps);
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend_from_slice(&[0xFF, 0xE1]);
        jpeg.extend_from_slice(&u16::try_from(exif.len() + 2).expect("small").to_be_bytes());
        jpeg.extend_from_slice(&exif);
        jpeg.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0x00]);
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0xD9]);
        jpeg
    }

    #[test]
    fn the_type_is_read_from_the_bytes() {
        assert_eq!(content_type(&jpeg_with_exif(b"")), Some("image/jpeg"));
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(content_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(content_type(b"\0\0\0\x18ftypheic\0\0\0\0"), Some("image/heic"));
        assert_eq!(content_type(b"%PDF-1.7"), None);
        assert_eq!(content_type(b"GIF89a"), None);
    }

    #[test]
    fn exif_is_removed_and_the_rest_kept() {
        let jpeg = jpeg_with_exif(b"GPS 30.2741N 120.1551E");
        let stripped = without_exif(&jpeg).expect("had exif");
        assert!(!stripped.windows(4).any(|window| window == b"Exif"));
        assert!(!stripped.windows(3).any(|window| window == b"GPS"));
        assert!(stripped.windows(4).any(|window| window == b"JFIF"));
        assert!(stripped.ends_with(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0xD9]));
        assert_eq!(without_exif(&stripped), None);
    }

    #[test]
    fn the_same_photo_is_stored_once_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = PhotoStore::open(dir.path(), false).expect("opens");
        let jpeg = jpeg_with_exif(b"GPS");
        let first = store.store(&jpeg).expect("stored");
        assert!(first.location_removed && !first.already_stored);
        let again = store.store(&jpeg).expect("stored again");
        assert_eq!(again.photo_ref, first.photo_ref);
        assert!(again.already_stored);
        let (kind, bytes) = store.read(&first.photo_ref).expect("read");
        assert_eq!(kind, "image/jpeg");
        assert_eq!(bytes.len(), first.size);
        assert_eq!(fs::read_dir(dir.path()).expect("lists").count(), 1, "one file, no temporary left");
        assert!(matches!(store.store(b"not an image"), Err(PhotoError::NotAnImage)));
        assert!(matches!(store.read("sha256:../../etc/passwd"), Err(PhotoError::BadReference(_))));
        assert!(matches!(store.check_stored(&[format!("sha256:{}", "0".repeat(64))]), Err(PhotoError::NotFound(_))));
    }
}
