//! AWS KMS key store: timestamp and snapshot keys created in KMS, used there, never leaving it
//! (`storage.backend = "awskms"`; credentials from the AWS chain only). Tested against moto
//! run as a KMS server (`notary-tools/tests/kms_signer.rs`).
//!
//! 1. A key is an `ECC_NIST_P256` / `SIGN_VERIFY` KMS key tagged `notary-role` and
//!    `notary-gun`; its TUF key (type `ecdsa`, the DER public key KMS reports) is found again
//!    after a restart by the alias `alias/notary/key/<TUF key ID>`.
//! 2. The pending → active lifecycle of the other stores: a never-used key for the same role
//!    and GUN is handed out again, by the alias `alias/notary/pending/<sha256(role, gun)>`,
//!    removed at the key's first signature.
//! 3. A signature is KMS `Sign` (`ECDSA_SHA_256`) of the canonical bytes — as they are up to
//!    KMS's 4 KiB limit, else as their SHA-256 digest (message type `DIGEST`, which moto does
//!    not implement: larger messages are tested against real KMS only) — converted from DER to
//!    the raw `r‖s` Notary clients verify, and checked against the public key before use.
//! 4. Faults are clear: a key that is disabled or pending deletion is `Locked` (the operator
//!    must act; checked at a key's first use in the process, and by KMS at every signature), throttling and an unreachable or failing endpoint are `Unavailable` (the
//!    server answers 503 and the client retries; the SDK retries throttling itself), every call
//!    bounded by [`OPERATION_TIMEOUT`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec, Tag};
use notary_tuf::{PublicKey, Signature};
use sha2::{Digest, Sha256};

use crate::{CryptoError, CryptoService, KeyInfo};

/// Largest message KMS `Sign` takes as it is (`MessageType::Raw`).
pub const MAX_RAW_MESSAGE: usize = 4096;

/// Longest one KMS operation may take, the SDK's retries included (invariant 4).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the store's KMS is (`storage` in the signer's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// The region (default: the credential chain's).
    pub region: Option<String>,
    /// A KMS-compatible endpoint instead of AWS's.
    pub endpoint: Option<String>,
}

/// The AWS KMS key store (see the module).
pub struct KmsKeyStore {
    client: aws_sdk_kms::Client,
    /// Keys signed with in this process: TUF key ID → public key.
    active: std::sync::Mutex<std::collections::HashMap<String, PublicKey>>,
}

fn key_alias(key_id: &str) -> String {
    format!("alias/notary/key/{key_id}")
}

fn pending_alias(role: &str, gun: &str) -> String {
    let mut h = Sha256::new();
    h.update(role.as_bytes());
    h.update([0]);
    h.update(gun.as_bytes());
    format!("alias/notary/pending/{}", hex::encode(h.finalize()))
}

/// A KMS error as the store reports it (invariant 4).
fn kms_error<E>(op: &str, e: aws_sdk_kms::error::SdkError<E>) -> CryptoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let msg = format!("AWS KMS {op}: {}", DisplayErrorContext(&e));
    match code.as_str() {
        "NotFoundException" => CryptoError::NotFound(msg),
        "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
            CryptoError::Locked(format!(
                "{msg} (the key is disabled or pending deletion in KMS: enable it, cancel its deletion, or rotate the repository's key)"
            ))
        }
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            CryptoError::Unavailable(format!("{msg} (check the credentials and the key policy)"))
        }
        _ => CryptoError::Unavailable(msg),
    }
}

impl KmsKeyStore {
    /// Before a key's first signature in this process: its public key (kept), and its
    /// pending alias removed (invariant 2).
    async fn activate(&self, key_id: &str) -> Result<PublicKey, CryptoError> {
        let found = self
            .find(key_id)
            .await?
            .ok_or_else(|| CryptoError::NotFound(key_id.to_string()))?;
        if found.state != Some(KeyState::Enabled) {
            return Err(CryptoError::Locked(format!(
                "AWS KMS key for {key_id} is {} (the key is disabled or pending deletion in KMS: enable it, cancel its deletion, or rotate the repository's key)",
                found.state.as_ref().map_or("in an unknown state", |s| s.as_str())
            )));
        }
        let pending = pending_alias(&found.info.role, &found.info.gun);
        if self.describe(&pending).await?.map(|m| m.key_id) == Some(found.kms_id) {
            self.client
                .delete_alias()
                .alias_name(pending)
                .send()
                .await
                .map_err(|e| kms_error("DeleteAlias", e))?;
        }
        let public = found.info.public;
        notary_common::sync::lock(&self.active).insert(key_id.to_string(), public.clone());
        Ok(public)
    }

    /// The key with TUF key ID `key_id`: the KMS key behind its alias, checked to be that key.
    async fn find(&self, key_id: &str) -> Result<Option<Found>, CryptoError> {
        if key_id.len() != 64 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(meta) = self.describe(&key_alias(key_id)).await? else {
            return Ok(None);
        };
        let public = self.public_of(&meta.key_id).await?;
        if public.id() != key_id {
            return Ok(None);
        }
        let tags = self
            .client
            .list_resource_tags()
            .key_id(&meta.key_id)
            .send()
            .await
            .map_err(|e| kms_error("ListResourceTags", e))?;
        let tag = |k: &str| {
            tags.tags()
                .iter()
                .find(|t| t.tag_key() == k)
                .map(|t| t.tag_value().to_string())
                .unwrap_or_default()
        };
        Ok(Some(Found {
            kms_id: meta.key_id,
            state: meta.state,
            info: KeyInfo {
                public,
                role: tag("notary-role"),
                gun: tag("notary-gun"),
            },
        }))
    }

    /// A client of the KMS `config` names, credentials from the AWS chain.
    pub async fn open(config: &KmsConfig) -> Result<KmsKeyStore, CryptoError> {
        let shared = notary_common::aws::sdk_config(&notary_common::aws::AwsSettings {
            region: config.region.as_deref(),
            endpoint: config.endpoint.as_deref(),
            operation_timeout: OPERATION_TIMEOUT,
            connect_timeout: Duration::from_secs(3),
        })
        .await;
        if shared.region().is_none() {
            return Err(CryptoError::Config(
                "storage.region is required for awskms (or AWS_REGION in the environment)".into(),
            ));
        }
        Ok(KmsKeyStore {
            client: aws_sdk_kms::Client::new(&shared),
            active: Default::default(),
        })
    }

    /// The TUF key of the KMS key `kms_id` (an ID, ARN or alias).
    async fn public_of(&self, kms_id: &str) -> Result<PublicKey, CryptoError> {
        let out = self
            .client
            .get_public_key()
            .key_id(kms_id)
            .send()
            .await
            .map_err(|e| kms_error("GetPublicKey", e))?;
        let der = out
            .public_key()
            .ok_or_else(|| CryptoError::Internal("KMS GetPublicKey returned no key".into()))?;
        // The DER SubjectPublicKeyInfo is Notary's `ecdsa` key format; check it is P-256.
        use p256::pkcs8::DecodePublicKey;
        p256::PublicKey::from_public_key_der(der.as_ref()).map_err(|e| {
            CryptoError::Internal(format!("KMS key {kms_id} is not an ECDSA P-256 key: {e}"))
        })?;
        Ok(PublicKey::new("ecdsa", der.as_ref().to_vec()))
    }

    /// KMS `Sign` of `msg` with the key of TUF key ID `key_id`, by its alias: the DER signature
    /// KMS returns, one round trip (invariant 3). [`CryptoService::sign`] is this, then
    /// [`raw_signature`].
    pub async fn sign_der(&self, key_id: &str, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // KMS takes a message of up to 4 KiB as it is, a larger one as its SHA-256 digest: the
        // same signature (`ECDSA_SHA_256` hashes a raw message first).
        let raw_message = msg.len() <= MAX_RAW_MESSAGE;
        let out = self
            .client
            .sign()
            .key_id(key_alias(key_id))
            .message(Blob::new(if raw_message {
                msg.to_vec()
            } else {
                Sha256::digest(msg).to_vec()
            }))
            .message_type(if raw_message {
                MessageType::Raw
            } else {
                MessageType::Digest
            })
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| match kms_error("Sign", e) {
                CryptoError::NotFound(_) => CryptoError::NotFound(key_id.to_string()),
                other => other,
            })?;
        out.signature()
            .map(|der| der.as_ref().to_vec())
            .ok_or_else(|| CryptoError::Internal("KMS Sign returned no signature".into()))
    }

    /// The KMS key an alias (or ID) names and its state, if it exists.
    async fn describe(&self, alias: &str) -> Result<Option<Described>, CryptoError> {
        match self.client.describe_key().key_id(alias).send().await {
            Ok(out) => Ok(out.key_metadata().map(|m| Described {
                key_id: m.key_id().to_string(),
                state: m.key_state().cloned(),
            })),
            Err(e) if e.code() == Some("NotFoundException") => Ok(None),
            Err(e) => Err(kms_error("DescribeKey", e)),
        }
    }
}

/// KMS's DER signature of `msg` as the raw `r‖s` Notary clients verify, checked against the
/// key's `public` key before use (invariant 3: an alias moved to another key is caught here).
/// This is all the store itself does per signature besides the KMS call.
pub fn raw_signature(
    key_id: &str,
    public: &PublicKey,
    msg: &[u8],
    der: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let sig = p256::ecdsa::Signature::from_der(der)
        .map_err(|e| CryptoError::Internal(format!("KMS returned an unreadable signature: {e}")))?;
    let raw = sig.to_bytes().to_vec();
    if !public.verify("ecdsa", msg, &raw) {
        return Err(CryptoError::Internal(format!(
            "KMS signed with a key that does not match {key_id}"
        )));
    }
    Ok(raw)
}

/// What DescribeKey says of a key.
struct Described {
    key_id: String,
    state: Option<KeyState>,
}

/// A key of the store found by its TUF key ID.
struct Found {
    kms_id: String,
    state: Option<KeyState>,
    info: KeyInfo,
}

#[async_trait]
impl CryptoService for KmsKeyStore {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        if algorithm != notary_tuf::keys::ECDSA {
            return Err(CryptoError::Unsupported(format!(
                "{algorithm} (the AWS KMS store makes ECDSA P-256 keys)"
            )));
        }
        let pending = pending_alias(role, gun);
        if let Some(meta) = self.describe(&pending).await? {
            return self.public_of(&meta.key_id).await;
        }
        let tag = |k: &str, v: &str| {
            Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| CryptoError::Internal(e.to_string()))
        };
        let created = self
            .client
            .create_key()
            .key_spec(KeySpec::EccNistP256)
            .key_usage(KeyUsageType::SignVerify)
            .description(format!("notary {role} key of {gun}"))
            .tags(tag("notary-role", role)?)
            .tags(tag("notary-gun", gun)?)
            .send()
            .await
            .map_err(|e| kms_error("CreateKey", e))?;
        let kms_id = created
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| CryptoError::Internal("KMS CreateKey returned no key".into()))?;
        let public = self.public_of(&kms_id).await?;
        for alias in [key_alias(&public.id()), pending] {
            self.client
                .create_alias()
                .alias_name(alias)
                .target_key_id(&kms_id)
                .send()
                .await
                .map_err(|e| kms_error("CreateAlias", e))?;
        }
        Ok(public)
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        Ok(self.find(key_id).await?.map(|f| f.info))
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        // A key signed with before in this process: one KMS call (`Sign`, by alias).
        let known = notary_common::sync::lock(&self.active).get(key_id).cloned();
        let public = match known {
            Some(p) => p,
            None => self.activate(key_id).await?,
        };
        let der = self.sign_der(key_id, msg).await?;
        let raw = raw_signature(key_id, &public, msg, &der).inspect_err(|_| {
            notary_common::sync::lock(&self.active).remove(key_id);
        })?;
        Ok(Signature {
            keyid: key_id.to_string(),
            method: "ecdsa".into(),
            sig: raw,
        })
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        let Some(found) = self.find(key_id).await? else {
            return Ok(());
        };
        let kms_id = found.kms_id;
        let pending = pending_alias(&found.info.role, &found.info.gun);
        if self.describe(&pending).await?.map(|m| m.key_id).as_deref() == Some(kms_id.as_str()) {
            let _ = self.client.delete_alias().alias_name(pending).send().await;
        }
        notary_common::sync::lock(&self.active).remove(key_id);
        self.client
            .delete_alias()
            .alias_name(key_alias(key_id))
            .send()
            .await
            .map_err(|e| kms_error("DeleteAlias", e))?;
        // KMS never deletes at once: the shortest waiting period it allows.
        self.client
            .schedule_key_deletion()
            .key_id(&kms_id)
            .pending_window_in_days(7)
            .send()
            .await
            .map_err(|e| kms_error("ScheduleKeyDeletion", e))?;
        Ok(())
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.client
            .list_aliases()
            .limit(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| kms_error("ListAliases", e))
    }
}
