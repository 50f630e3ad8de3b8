//! A tree in an S3-compatible bucket, through the official AWS SDK (credentials from the
//! usual chain: environment, shared config, instance role; never from the config file).
//!
//! 1. An object is written by one PUT: whole or not at all. Each carries `Content-Type:
//!    application/json` and a `Cache-Control` a CDN in front can follow: long for files named
//!    by checksum or version, short for current files ([`CACHE_IMMUTABLE`], [`CACHE_CURRENT`]).
//! 2. A file held is the same as ours when its ETag is the MD5 of our bytes (a single PUT's).
//! 3. Every call is bounded: [`OPERATION_TIMEOUT`] per operation with the SDK's retries inside
//!    it, so an unreachable endpoint fails a round instead of holding it.
//!
//! Tested against moto run as a server (`notary-tools/tests/publication.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use md5::{Digest, Md5};

use super::{Held, Kind, PublicationError, Target};

/// `Cache-Control` of files named by checksum or version: their bytes never change.
pub(crate) const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of current files: a reader may see a change this much later.
pub(crate) const CACHE_CURRENT: &str = "public, max-age=10";
/// Longest one S3 operation may take, retries included (invariant 3).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Where in which bucket a tree is (`publish.s3` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// The bucket.
    pub bucket: String,
    /// An S3-compatible endpoint (path-style URLs), instead of AWS's.
    pub endpoint: Option<String>,
    /// The region (default: the credential chain's, else `us-east-1`).
    pub region: Option<String>,
    /// A key prefix (`notary/`): the tree is served from `https://host/notary/`.
    pub prefix: String,
}

/// A tree in a bucket.
pub struct Bucket {
    client: aws_sdk_s3::Client,
    config: BucketConfig,
}

fn s3_error<E: std::error::Error>(
    op: &'static str,
    key: &str,
) -> impl FnOnce(E) -> PublicationError {
    let key = key.to_string();
    move |e| PublicationError::S3 {
        op,
        key,
        msg: format!("{}", DisplayErrorContext(e)),
    }
}

impl Bucket {
    /// A client for the bucket (credentials from the environment's chain).
    pub async fn new(mut config: BucketConfig) -> Result<Bucket, PublicationError> {
        if config.bucket.is_empty() {
            return Err(PublicationError::Config("s3.bucket is empty".into()));
        }
        let prefix = config.prefix.trim_matches('/');
        config.prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        // The endpoint is set on the S3 client below, with path-style URLs.
        let shared = notary_common::aws::sdk_config(&notary_common::aws::AwsSettings {
            region: config.region.as_deref(),
            endpoint: None,
            operation_timeout: OPERATION_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
        })
        .await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            s3 = s3.region(aws_sdk_s3::config::Region::new("us-east-1"));
        }
        if let Some(e) = &config.endpoint {
            s3 = s3.endpoint_url(e).force_path_style(true);
        }
        Ok(Bucket {
            client: aws_sdk_s3::Client::from_conf(s3.build()),
            config,
        })
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.config.prefix)
    }

    async fn put_object(
        &self,
        key: &str,
        data: Bytes,
        cache: &str,
        content_type: &str,
    ) -> Result<(), PublicationError> {
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(cache)
            .body(ByteStream::from(data))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error("PutObject", key)(e))
    }
}

#[async_trait]
impl Target for Bucket {
    fn name(&self) -> String {
        let at = self.config.endpoint.as_deref().unwrap_or("aws");
        format!("s3 {at} {}/{}", self.config.bucket, self.config.prefix)
    }

    async fn prepare(&self) -> Result<(), PublicationError> {
        // The Go client's ping of `<server>/v2/` (invariant 6 of the module above): the
        // object `v2/` answers a path-style GET, `v2/index.html` a website endpoint.
        for path in ["v2/", "v2/index.html"] {
            self.put_object(&self.key(path), Bytes::new(), CACHE_CURRENT, "text/html")
                .await?;
        }
        Ok(())
    }

    async fn list(&self, dir: &str) -> Result<BTreeMap<String, Held>, PublicationError> {
        let prefix = self.key(dir);
        let mut out = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", &prefix)(e))?;
            for o in page.contents() {
                let Some(rel) = o.key().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                if rel.is_empty() || rel.ends_with('/') || rel == "index.html" {
                    continue;
                }
                out.insert(
                    rel.to_string(),
                    Held {
                        len: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(|t| t.trim_matches('"').to_ascii_lowercase()),
                    },
                );
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn holds(&self, _path: &str, held: &Held, data: &[u8]) -> Result<bool, PublicationError> {
        Ok(held.len == data.len() as u64
            && held.etag.as_deref() == Some(hex::encode(Md5::digest(data)).as_str()))
    }

    async fn put(&self, path: &str, data: Bytes, kind: Kind) -> Result<(), PublicationError> {
        let cache = match kind {
            Kind::Immutable => CACHE_IMMUTABLE,
            Kind::Current => CACHE_CURRENT,
        };
        self.put_object(&self.key(path), data, cache, "application/json")
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), PublicationError> {
        let key = self.key(path);
        self.client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error("DeleteObject", &key)(e))
    }
}
