//! Where artifact bytes live: a directory (the default, `<data>/artifacts`)
//! or a bucket of an S3-compatible object store, chosen by
//! `--artifacts-url` (`file:///PATH` or `s3://BUCKET[/PREFIX]`).
//!
//! Either way an artifact is stored under its SHA-1 (`ab/cdef…`), written
//! whole before any row points at it, and never changed: storing bytes that
//! are there already does nothing, so every write is idempotent. Uploads are
//! received into the data directory's `tmp/` first (hashed and size-checked
//! there), then committed. In a bucket an object only becomes visible when
//! its upload completes (one `PUT`, or a multipart upload's final
//! `CompleteMultipartUpload`), so an interrupted upload leaves nothing a
//! reader could see.
//!
//! The bucket's endpoint, region and credentials come from the standard
//! `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`; `AWS_ALLOW_HTTP=true` for a plain-HTTP
//! endpoint), read by the `object_store` crate, so AWS, Garage, MinIO and
//! Ceph all work.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use dpxdt_core::ArtifactId;
use futures_util::{Stream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::artifacts::ArtifactDir;

/// Objects up to this size go up in one `PUT`; larger ones in parts of it.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// A stream of an artifact's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;

/// Where the artifacts of a server are kept, as `--artifacts-url` names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArtifactsUrl {
    /// `<data>/artifacts` (the default).
    #[default]
    DataDir,
    /// `file:///PATH`: the directory `PATH`.
    Dir(PathBuf),
    /// `s3://BUCKET[/PREFIX]`.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Keys start with this (no leading or trailing `/`; may be empty).
        prefix: String,
    },
}

impl FromStr for ArtifactsUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<ArtifactsUrl, String> {
        let bad = |why: &str| {
            format!("artifacts URL {s:?}: {why} (expected file:///PATH or s3://BUCKET[/PREFIX])")
        };
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("the path must be absolute, as in file:///srv/dpxdt"));
            }
            return Ok(ArtifactsUrl::Dir(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(bad(
                    "the bucket name must be 3 to 63 lower-case letters, digits, '-' or '.'",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..")
                || prefix.contains("//")
                || prefix.bytes().any(|b| b.is_ascii_control())
            {
                return Err(bad("the prefix has an empty, '.' or '..' part"));
            }
            return Ok(ArtifactsUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        Err(bad("unknown scheme"))
    }
}

impl fmt::Display for ArtifactsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactsUrl::DataDir => f.write_str("the data directory"),
            ArtifactsUrl::Dir(p) => write!(f, "file://{}", p.display()),
            ArtifactsUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            ArtifactsUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How to reach the bucket of an `s3://` artifacts URL. Unset fields fall
/// back to the standard `AWS_*` variables, read by `object_store` (which
/// also knows session tokens, web identity and container credentials).
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The store's URL, e.g. `http://127.0.0.1:3900` (AWS when unset).
    pub endpoint: Option<String>,
    /// The region, e.g. `garage` or `eu-west-1`.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (otherwise refused: credentials would
    /// travel unencrypted). `AWS_ALLOW_HTTP=true` sets it too.
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

/// Where a store's artifacts are and how to reach them.
#[derive(Debug, Clone, Default)]
pub struct ArtifactsConfig {
    /// `--artifacts-url`.
    pub url: ArtifactsUrl,
    /// For an `s3://` URL.
    pub s3: S3Settings,
}

impl From<ArtifactsUrl> for ArtifactsConfig {
    fn from(url: ArtifactsUrl) -> ArtifactsConfig {
        ArtifactsConfig {
            url,
            s3: S3Settings::default(),
        }
    }
}

/// The artifact bytes of a store: cheap to clone.
#[derive(Clone)]
pub enum Blobs {
    /// Files in a directory.
    Dir(ArtifactDir),
    /// Objects in a bucket.
    S3(Arc<Bucket>),
}

impl fmt::Debug for Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Blobs {
    /// Opens the artifacts `url` names for the data directory `data_dir`
    /// (whose `tmp/` receives uploads in every case). With `clean`, temp
    /// files a crash left behind are removed.
    pub fn open(data_dir: &Path, config: &ArtifactsConfig, clean: bool) -> io::Result<Blobs> {
        let tmp = data_dir.join("tmp");
        match &config.url {
            ArtifactsUrl::DataDir => Ok(Blobs::Dir(ArtifactDir::open(data_dir, clean)?)),
            ArtifactsUrl::Dir(root) => Ok(Blobs::Dir(ArtifactDir::open_at(root, &tmp, clean)?)),
            ArtifactsUrl::S3 { bucket, prefix } => {
                ArtifactDir::clean_tmp(&tmp, clean)?;
                let bucket = Bucket::open(bucket, prefix, &config.s3, tmp)?;
                Ok(Blobs::S3(Arc::new(bucket)))
            }
        }
    }

    /// The error for a failure to store bytes: for a bucket, a
    /// [`StoreError::Unavailable`] that names it (a store that is down or
    /// misconfigured now may answer soon, so the client is told to retry;
    /// the cause goes to the log); for a directory, the I/O error as it is.
    pub fn store_failed(&self, e: io::Error) -> super::StoreError {
        match self {
            Blobs::Dir(_) => super::StoreError::Io(e),
            Blobs::S3(b) => {
                // The detail (addresses, the store's own words) is for the
                // operator's log, not for whoever holds a build key.
                tracing::error!(store = %b.shown, error = %e, "the artifact store failed");
                super::StoreError::Unavailable(format!(
                    "the artifact store {} did not take the bytes; try again later",
                    b.shown
                ))
            }
        }
    }

    /// Where the bytes are, for people: a directory or `s3://…`.
    pub fn describe(&self) -> String {
        match self {
            Blobs::Dir(d) => d.root().display().to_string(),
            Blobs::S3(b) => b.shown.clone(),
        }
    }

    /// A fresh path in the temp directory for an upload being received.
    pub fn temp_path(&self) -> PathBuf {
        match self {
            Blobs::Dir(d) => d.temp_path(),
            Blobs::S3(b) => super::artifacts::fresh_temp_path(&b.tmp),
        }
    }

    /// Puts a complete, fsynced temp file in place as `id` (it may be there
    /// already), then removes the temp file.
    pub fn commit_temp(&self, temp: &Path, id: &ArtifactId) -> io::Result<()> {
        match self {
            Blobs::Dir(d) => d.commit_temp(temp, id),
            Blobs::S3(b) => {
                let (bucket, temp_owned, key) = (b.clone(), temp.to_path_buf(), b.key(id));
                b.wait(async move { bucket.put_file(&temp_owned, &key).await })?;
                std::fs::remove_file(temp)
            }
        }
    }

    /// Sends the temp file of `id` to a bucket ahead of
    /// [`commit_temp`](Blobs::commit_temp), which then only has to see it
    /// there: so the slow part of an upload happens outside the store's
    /// hold. Nothing to do for a directory.
    pub async fn stage(&self, temp: &Path, id: &ArtifactId) -> io::Result<()> {
        match self {
            Blobs::Dir(_) => Ok(()),
            Blobs::S3(b) => {
                let (bucket, temp, key) = (b.clone(), temp.to_path_buf(), b.key(id));
                b.spawn(async move { bucket.put_file(&temp, &key).await })
                    .await
            }
        }
    }

    /// Stores `bytes` and returns their id.
    pub fn write_bytes(&self, bytes: &[u8]) -> io::Result<ArtifactId> {
        match self {
            Blobs::Dir(d) => d.write_bytes(bytes),
            Blobs::S3(b) => {
                let id = ArtifactId::of_bytes(bytes);
                let (bucket, key) = (b.clone(), b.key(&id));
                let payload = PutPayload::from(bytes.to_vec());
                b.wait(async move {
                    if !bucket.exists(&key).await? {
                        bucket.put_whole(&key, payload).await?;
                    }
                    Ok(())
                })?;
                Ok(id)
            }
        }
    }

    /// Whether the bytes of `id` are stored.
    pub fn exists(&self, id: &ArtifactId) -> io::Result<bool> {
        match self {
            Blobs::Dir(d) => Ok(d.path(id).exists()),
            Blobs::S3(b) => {
                let (bucket, key) = (b.clone(), b.key(id));
                b.wait(async move { bucket.exists(&key).await })
            }
        }
    }

    /// [`exists`](Blobs::exists), from async code.
    pub async fn exists_async(&self, id: &ArtifactId) -> io::Result<bool> {
        match self {
            Blobs::Dir(d) => tokio::fs::try_exists(d.path(id)).await,
            Blobs::S3(b) => {
                let (bucket, key) = (b.clone(), b.key(id));
                b.spawn(async move { bucket.exists(&key).await }).await
            }
        }
    }

    /// All bytes of `id`, from blocking code.
    pub fn read(&self, id: &ArtifactId) -> io::Result<Vec<u8>> {
        match self {
            Blobs::Dir(d) => std::fs::read(d.path(id)),
            Blobs::S3(b) => {
                let (bucket, key) = (b.clone(), b.key(id));
                b.wait(async move { bucket.read(&key, u64::MAX).await })
                    .map(|r| r.unwrap_or_default())
            }
        }
    }

    /// All bytes of `id` when it has at most `max` of them (else `None`).
    pub async fn read_small(&self, id: &ArtifactId, max: u64) -> io::Result<Option<Vec<u8>>> {
        match self {
            Blobs::Dir(d) => {
                let path = d.path(id);
                if tokio::fs::metadata(&path).await?.len() > max {
                    return Ok(None);
                }
                tokio::fs::read(&path).await.map(Some)
            }
            Blobs::S3(b) => {
                let (bucket, key) = (b.clone(), b.key(id));
                b.spawn(async move { bucket.read(&key, max).await }).await
            }
        }
    }

    /// The size and a stream of the bytes of `id`.
    pub async fn stream(&self, id: &ArtifactId) -> io::Result<(u64, ByteStream)> {
        match self {
            Blobs::Dir(d) => {
                let file = tokio::fs::File::open(d.path(id)).await?;
                let len = file.metadata().await?.len();
                let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.truncate(n);
                    Ok(Some((Bytes::from(buf), file)))
                });
                Ok((len, Box::pin(chunks)))
            }
            Blobs::S3(b) => b.stream(b.key(id)).await,
        }
    }

    /// Removes the bytes of `id` (nothing when they are gone already).
    pub fn delete(&self, id: &ArtifactId) -> io::Result<()> {
        let gone = match self {
            Blobs::Dir(d) => std::fs::remove_file(d.path(id)),
            Blobs::S3(b) => {
                let (bucket, key) = (b.clone(), b.key(id));
                b.wait(async move { bucket.delete(&key).await })
            }
        };
        match gone {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Every artifact stored, in no particular order (for checks and copies;
    /// it walks the whole store).
    pub fn list(&self) -> io::Result<Vec<ArtifactId>> {
        match self {
            Blobs::Dir(d) => {
                let mut out = Vec::new();
                for shard in std::fs::read_dir(d.root())? {
                    let shard = shard?;
                    if !shard.file_type()?.is_dir() {
                        continue;
                    }
                    let head = shard.file_name().to_string_lossy().into_owned();
                    for file in std::fs::read_dir(shard.path())? {
                        let tail = file?.file_name().to_string_lossy().into_owned();
                        if let Ok(id) = ArtifactId::parse(&format!("{head}{tail}")) {
                            out.push(id);
                        }
                    }
                }
                Ok(out)
            }
            Blobs::S3(b) => {
                let bucket = b.clone();
                b.wait(async move {
                    let mut out = Vec::new();
                    let mut objects = bucket.store.list(Some(&bucket.prefix));
                    while let Some(meta) = objects.next().await {
                        let meta = meta.map_err(|e| s3_error(&bucket.shown, e))?;
                        let parts: Vec<_> = meta.location.parts().collect();
                        if let [.., head, tail] = parts.as_slice() {
                            let name = format!("{}{}", head.as_ref(), tail.as_ref());
                            if let Ok(id) = ArtifactId::parse(&name) {
                                out.push(id);
                            }
                        }
                    }
                    Ok(out)
                })
            }
        }
    }

    /// Writes, reads back and removes a probe where artifacts go (and, for
    /// a bucket, where uploads are received): the health check.
    pub fn probe(&self) -> io::Result<()> {
        let temp = self.temp_path();
        let written = super::artifacts::private_file(&temp).and_then(|mut f| {
            io::Write::write_all(&mut f, b"dpxdt health probe")?;
            f.sync_all()
        });
        let removed = std::fs::remove_file(&temp);
        written.and(removed).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", temp.display()))
        })?;
        if let Blobs::S3(b) = self {
            let bucket = b.clone();
            b.wait(async move {
                let key = bucket
                    .prefix
                    .clone()
                    .join("health")
                    .join(format!("probe-{}", super::sessions::random_token(8)));
                bucket
                    .put_whole(&key, PutPayload::from_static(b"dpxdt health probe"))
                    .await?;
                let back = bucket.read(&key, 1024).await?;
                bucket.delete(&key).await?;
                if back.as_deref() != Some(b"dpxdt health probe".as_slice()) {
                    return Err(io::Error::other("the probe object read back differently"));
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// A bucket of an S3-compatible store, with the runtime its requests run on
/// (so blocking code, such as work done while holding the database, can
/// wait for them without an async context of its own).
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    shown: String,
    tmp: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropping a runtime may block, which async code must not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn s3_error(shown: &str, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("{shown}: not found"))
        }
        e => io::Error::other(format!("{shown}: {e}")),
    }
}

impl Bucket {
    fn open(bucket: &str, prefix: &str, settings: &S3Settings, tmp: PathBuf) -> io::Result<Bucket> {
        let shown = ArtifactsUrl::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
        .to_string();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"));
        let allow_http = settings.allow_http || env("AWS_ALLOW_HTTP").as_deref() == Some("true");
        // A request to the bucket gives up after a few quick tries: an
        // upload that waits minutes for a store that is down holds its
        // client and a worker; a 503 tells the client to come back.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(15),
            ..Default::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry);
        if let Some(endpoint) = &endpoint {
            if endpoint.starts_with("http://") && !allow_http {
                return Err(io::Error::other(format!(
                    "{shown}: the endpoint {endpoint} is plain HTTP, which sends credentials \
                     unencrypted; set AWS_ALLOW_HTTP=true to use it anyway"
                )));
            }
            builder = builder.with_endpoint(endpoint).with_allow_http(allow_http);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| io::Error::other(format!("{shown}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dpxdt-s3")
            .enable_all()
            .build()?;
        Ok(Bucket {
            store: Arc::new(store),
            prefix: Key::from(prefix),
            shown,
            tmp,
            runtime: Some(runtime),
        })
    }

    fn key(&self, id: &ArtifactId) -> Key {
        let hex = id.as_str();
        self.prefix.clone().join(&hex[..2]).join(&hex[2..])
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .map(|rt| rt.handle())
            .expect("the runtime lives as long as the bucket")
    }

    /// Runs `work` on the bucket's runtime and waits for it from async code.
    async fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        self.handle()
            .spawn(work)
            .await
            .map_err(|e| io::Error::other(format!("{}: {e}", self.shown)))?
    }

    /// Runs `work` on the bucket's runtime and blocks this thread until it
    /// is done (from blocking code only).
    fn wait<T: Send + 'static>(
        &self,
        work: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv()
            .map_err(|_| io::Error::other(format!("{}: the request was dropped", self.shown)))?
    }

    async fn exists(&self, key: &Key) -> io::Result<bool> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_error(&self.shown, e)),
        }
    }

    async fn put_whole(&self, key: &Key, payload: PutPayload) -> io::Result<()> {
        self.store
            .put(key, payload)
            .await
            .map(drop)
            .map_err(|e| s3_error(&self.shown, e))
    }

    /// Uploads the file at `path` as `key` unless the key exists: in one
    /// `PUT` when small, else as a multipart upload read from the file part
    /// by part (aborted on failure, so no part lingers).
    async fn put_file(&self, path: &Path, key: &Key) -> io::Result<()> {
        if self.exists(key).await? {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        if len <= PART_SIZE as u64 {
            let bytes = tokio::fs::read(path).await?;
            return self.put_whole(key, PutPayload::from(bytes)).await;
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| s3_error(&self.shown, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: io::Result<()> = async {
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(2)
                    .await
                    .map_err(|e| s3_error(&self.shown, e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| s3_error(&self.shown, e)),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// The bytes of `key` when at most `max` (else `None`).
    async fn read(&self, key: &Key, max: u64) -> io::Result<Option<Vec<u8>>> {
        let got = self
            .store
            .get(key)
            .await
            .map_err(|e| s3_error(&self.shown, e))?;
        if got.meta.size > max {
            return Ok(None);
        }
        let bytes = got.bytes().await.map_err(|e| s3_error(&self.shown, e))?;
        Ok(Some(bytes.to_vec()))
    }

    async fn delete(&self, key: &Key) -> io::Result<()> {
        self.store
            .delete(key)
            .await
            .map_err(|e| s3_error(&self.shown, e))
    }

    /// The object's size and its bytes as they arrive. The download runs on
    /// the bucket's runtime and hands chunks over a short channel, so the
    /// reader may be on any runtime.
    async fn stream(self: &Arc<Self>, key: Key) -> io::Result<(u64, ByteStream)> {
        let bucket = self.clone();
        let got = self
            .spawn(async move {
                bucket
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| s3_error(&bucket.shown, e))
            })
            .await?;
        let len = got.meta.size;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let shown = self.shown.clone();
        self.handle().spawn(async move {
            let mut chunks = got.into_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| s3_error(&shown, e));
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        Ok((len, Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_urls_parse_or_say_what_is_wrong() {
        assert_eq!(
            "file:///srv/art".parse::<ArtifactsUrl>(),
            Ok(ArtifactsUrl::Dir("/srv/art".into()))
        );
        assert_eq!(
            "s3://shots".parse::<ArtifactsUrl>(),
            Ok(ArtifactsUrl::S3 {
                bucket: "shots".into(),
                prefix: "".into()
            })
        );
        let url: ArtifactsUrl = "s3://team-shots/dpxdt/prod/".parse().unwrap();
        assert_eq!(url.to_string(), "s3://team-shots/dpxdt/prod");
        for (bad, says) in [
            ("file://relative/path", "absolute"),
            ("s3://", "bucket name"),
            ("s3://Upper", "bucket name"),
            ("s3://ok-bucket/a/../b", "'..'"),
            ("s3://ok-bucket/a//b", "empty"),
            ("gs://bucket", "unknown scheme"),
            ("/srv/art", "unknown scheme"),
        ] {
            let err = bad.parse::<ArtifactsUrl>().unwrap_err();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }
}
