//! Photos in an S3-compatible bucket (feature `s3`: AWS S3, MinIO, Ceph,
//! a cloud's object storage), for a city served by several dispatchers that
//! share no file system: every dispatcher reads the same bucket. Through
//! the `object_store` crate; credentials and the endpoint come from the
//! usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ALLOW_HTTP` for a local MinIO).
//!
//! The store's calls are async; the photo store's are blocking (made off
//! the async threads), so each call waits on the runtime it was opened in.
//! An object appears whole or not at all (S3's PUT), which is what a
//! half-written upload needs.

use std::io;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::photos::Backend;

#[derive(Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Where in the bucket photos go, e.g. `photos`.
    prefix: ObjectPath,
    runtime: tokio::runtime::Handle,
}

impl Bucket {
    /// The bucket `url` (`s3://BUCKET/PREFIX`), with the `AWS_*`
    /// environment; call it inside the runtime.
    pub fn open(url: &str) -> anyhow::Result<Bucket> {
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("photos bucket {url:?} is not an s3://BUCKET/PREFIX address");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "photos bucket {url:?} names no bucket");
        let store = AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
        Ok(Bucket { store: Arc::new(store), prefix: ObjectPath::from(prefix), runtime: tokio::runtime::Handle::current() })
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }
}

fn io_error(error: object_store::Error) -> io::Error {
    io::Error::other(error)
}

impl Backend for Bucket {
    fn exists(&self, name: &str) -> io::Result<bool> {
        match self.runtime.block_on(self.store.head(&self.path(name))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(io_error(error)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.runtime.block_on(self.store.put(&self.path(name), payload)).map(|_| ()).map_err(io_error)
    }

    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let read = self.runtime.block_on(async {
            let found = self.store.get(&self.path(name)).await?;
            found.bytes().await
        });
        match read {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(io_error(error)),
        }
    }

    fn delete(&self, name: &str) -> io::Result<bool> {
        if !self.exists(name)? {
            return Ok(false);
        }
        self.runtime.block_on(self.store.delete(&self.path(name))).map(|()| true).map_err(io_error)
    }

    fn list(&self) -> io::Result<Vec<(String, i64)>> {
        let listed: Vec<object_store::ObjectMeta> =
            self.runtime.block_on(self.store.list(Some(&self.prefix)).try_collect()).map_err(io_error)?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                Some((name, meta.last_modified.timestamp_millis()))
            })
            .collect())
    }

    /// Objects cannot be touched; a repeated upload keeps its first time.
    fn touch(&self, _name: &str) {}
}
