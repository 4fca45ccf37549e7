//! Document blobs in an S3-compatible object store, everything else in the inner store:
//! a [`Store`] that delegates all but the blob methods.
//!
//! Objects, in the configured bucket under the optional prefix:
//! `blobs/<blob hex>/<index, 8 digits>` for each
//! ciphertext chunk and `blobs/<blob hex>/committed` (the chunk count, big-endian u32)
//! once the chunks hash to the blob id. Blob ids are content hashes, so a committed blob
//! is immutable: chunks sent for it again are ignored. The relay stores only ciphertext
//! here, as everywhere. Durability is the object store's: a PUT is acknowledged once the
//! store says it holds the object (docs/operator-guide.md says how to make SeaweedFS sync).

use super::{BlobChunk, BoxFuture, NotifyHook, ReadResult, Record, RecordHook, Table};
use super::{Snapshot, Store, StoreError};
use mes_protocol::ids::{Seq, VolumeId};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where the blobs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint URL (`http://127.0.0.1:8333`, `https://s3.eu-west-3.amazonaws.com`).
    pub endpoint: String,
    /// Bucket (it must exist).
    pub bucket: String,
    /// Region (any for SeaweedFS or MinIO).
    pub region: String,
    /// Key prefix, to share a bucket (`hub-a` puts objects under `hub-a/blobs/...`).
    pub prefix: Option<String>,
}

impl S3Options {
    /// The bucket at an endpoint, region `us-east-1`.
    pub fn new(endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        S3Options {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: "us-east-1".into(),
            prefix: None,
        }
    }

    /// The client; credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`,
    /// unsigned requests when there are none (a store open to the relay's network only).
    pub fn connect(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_skip_signature(std::env::var_os("AWS_ACCESS_KEY_ID").is_none())
            // A store that is away fails the request within seconds, as `Unavailable`
            // (devices retry), instead of holding it through minutes of retries.
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(5),
                backoff: Default::default(),
            })
            .with_client_options(
                // Replaces the client options: `allow_http` is set in them, here.
                object_store::ClientOptions::new()
                    .with_allow_http(self.endpoint.starts_with("http://"))
                    .with_connect_timeout(std::time::Duration::from_secs(2))
                    .with_timeout(std::time::Duration::from_secs(30)),
            )
            .build()
            .map_err(|e| StoreError::backend(format!("object store {}: {e}", self.endpoint)))?;
        Ok(match &self.prefix {
            Some(p) => Arc::new(object_store::prefix::PrefixStore::new(s3, p.as_str())),
            None => Arc::new(s3),
        })
    }
}

/// The inner store with blobs in an object store.
pub struct ObjectBlobs {
    inner: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    /// Chunk counts of committed blobs (immutable, so never stale).
    committed: Mutex<HashMap<[u8; 32], u32>>,
}

fn chunk_path(blob: &[u8; 32], index: u32) -> Path {
    Path::from(format!("blobs/{}/{index:08}", hex::encode(blob)))
}

fn committed_path(blob: &[u8; 32]) -> Path {
    Path::from(format!("blobs/{}/committed", hex::encode(blob)))
}

/// A request the object store did not answer (network, server away: `Generic`) may be
/// tried again; anything it answered is a backend failure.
fn failed(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::Generic { .. } => {
            StoreError::unavailable(format!("object store: {e}"))
        }
        other => StoreError::backend(format!("object store: {other}")),
    }
}

impl ObjectBlobs {
    /// Blobs in `objects`, the rest in `inner`.
    pub fn new(inner: Arc<dyn Store>, objects: Arc<dyn ObjectStore>) -> Self {
        ObjectBlobs {
            inner,
            objects,
            committed: Mutex::new(HashMap::new()),
        }
    }

    /// The object's bytes, `None` when there is no such object.
    async fn fetch(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        match self.objects.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(failed)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// The chunk count of a committed blob.
    async fn count(&self, blob: &[u8; 32]) -> Result<Option<u32>, StoreError> {
        if let Some(n) = self.committed.lock().expect("committed blobs").get(blob) {
            return Ok(Some(*n));
        }
        let Some(v) = self.fetch(&committed_path(blob)).await? else {
            return Ok(None);
        };
        let n = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| {
            StoreError::backend(format!(
                "blob {} marker of {} bytes",
                hex::encode(blob),
                v.len()
            ))
        })?);
        self.committed
            .lock()
            .expect("committed blobs")
            .insert(*blob, n);
        Ok(Some(n))
    }
}

impl Store for ObjectBlobs {
    fn append<'a>(
        &'a self,
        volume: VolumeId,
        bundles: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(Seq, Seq), StoreError>> {
        self.inner.append(volume, bundles)
    }

    fn read(
        &self,
        volume: VolumeId,
        after: Seq,
        max: usize,
    ) -> BoxFuture<'_, Result<ReadResult, StoreError>> {
        self.inner.read(volume, after, max)
    }

    fn head(&self, volume: VolumeId) -> BoxFuture<'_, Result<Seq, StoreError>> {
        self.inner.head(volume)
    }

    fn put_snapshot<'a>(
        &'a self,
        volume: VolumeId,
        upto: Seq,
        snapshot: Vec<u8>,
        prune: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put_snapshot(volume, upto, snapshot, prune)
    }

    fn get_snapshot(
        &self,
        volume: VolumeId,
    ) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        self.inner.get_snapshot(volume)
    }

    fn remove_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.remove_record(kind, key)
    }

    fn put_record<'a>(
        &'a self,
        kind: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put_record(kind, key, value)
    }

    fn get_record<'a>(
        &'a self,
        kind: Table,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.inner.get_record(kind, key)
    }

    fn scan_records<'a>(
        &'a self,
        kind: Table,
        prefix: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        self.inner.scan_records(kind, prefix)
    }

    fn put_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.count(blob).await?.is_some() {
                return Ok(());
            }
            self.objects
                .put(&chunk_path(blob, index), PutPayload::from(data.to_vec()))
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn commit_blob<'a>(
        &'a self,
        blob: [u8; 32],
        chunks: u32,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if let Some(n) = self.count(&blob).await? {
                return Ok(n == chunks);
            }
            let mut hasher = blake3::Hasher::new();
            for i in 0..chunks {
                match self.fetch(&chunk_path(&blob, i)).await? {
                    Some(c) => {
                        hasher.update(&c);
                    }
                    None => return Ok(false),
                }
            }
            if *hasher.finalize().as_bytes() != blob {
                for i in 0..chunks {
                    match self.objects.delete(&chunk_path(&blob, i)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(failed(e)),
                    }
                }
                return Ok(false);
            }
            self.objects
                .put(
                    &committed_path(&blob),
                    PutPayload::from(chunks.to_be_bytes().to_vec()),
                )
                .await
                .map_err(failed)?;
            self.committed
                .lock()
                .expect("committed blobs")
                .insert(blob, chunks);
            Ok(true)
        })
    }

    fn remove_blob_chunks<'a>(
        &'a self,
        blob: &'a [u8; 32],
        from: u32,
        to: u32,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let kept = self.count(blob).await?.unwrap_or(0);
            for i in from.max(kept)..to {
                match self.objects.delete(&chunk_path(blob, i)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            Ok(())
        })
    }

    fn remove_volume(&self, volume: VolumeId) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.remove_volume(volume)
    }

    fn remove_blob<'a>(&'a self, blob: &'a [u8; 32]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            use futures_util::StreamExt;
            // The commit mark first: a blob half erased is no longer served.
            match self.objects.delete(&committed_path(blob)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed(e)),
            }
            self.committed.lock().expect("committed blobs").remove(blob);
            let dir = Path::from(format!("blobs/{}", hex::encode(blob)));
            let mut listed = self.objects.list(Some(&dir));
            let mut paths = Vec::new();
            while let Some(meta) = listed.next().await {
                paths.push(meta.map_err(failed)?.location);
            }
            for p in paths {
                match self.objects.delete(&p).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            // A store that also kept chunks (none today) loses them too.
            self.inner.remove_blob(blob).await
        })
    }

    fn get_blob_chunk<'a>(
        &'a self,
        blob: &'a [u8; 32],
        index: u32,
    ) -> BoxFuture<'a, Result<Option<BlobChunk>, StoreError>> {
        Box::pin(async move {
            let Some(count) = self.count(blob).await? else {
                return Ok(None);
            };
            if index >= count {
                return Ok(None);
            }
            Ok(self
                .fetch(&chunk_path(blob, index))
                .await?
                .map(|c| (c, index + 1 == count)))
        })
    }

    fn set_notify(&self, hook: NotifyHook) {
        self.inner.set_notify(hook);
    }

    fn set_record_hook(&self, hook: RecordHook) {
        self.inner.set_record_hook(hook);
    }
}
