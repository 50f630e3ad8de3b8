//! The gRPC services (`proto.KeyManagement`, `proto.Signer`, `grpc.health.v1.Health`) over any
//! [`CryptoService`], with the Go signer's status codes and messages (docs/signer-protocol.md).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::grpc::proto::{
    self, key_management_server::KeyManagement, signer_server::Signer, CreateKeyRequest,
    GetKeyInfoResponse, KeyId, SignatureRequest, Void,
};
use crate::{CryptoError, CryptoService};

/// Health service names the Go server checks.
pub const HEALTH_KEY_MANAGEMENT: &str = "grpc.health.v1.Health.KeyManagement";
/// The health service name of signing.
pub const HEALTH_SIGNER: &str = "grpc.health.v1.Health.Signer";

/// The gRPC `KeyManagement` and `Signer` services over a key store.
pub struct SignerService {
    crypto: Arc<dyn CryptoService>,
}

impl SignerService {
    /// The services over `crypto`.
    pub fn new(crypto: Arc<dyn CryptoService>) -> Self {
        SignerService { crypto }
    }
}

/// The `keyInfo` every response carries (the Go server dereferences it without checks).
pub(crate) fn key_info(id: &str, algorithm: &str) -> proto::KeyInfo {
    proto::KeyInfo {
        key_id: Some(KeyId { id: id.into() }),
        algorithm: Some(proto::Algorithm {
            algorithm: algorithm.into(),
        }),
    }
}

/// Key type for a TUF signature method.
fn key_type_of_method(method: &str) -> &'static str {
    match method {
        "eddsa" => notary_tuf::keys::ED25519,
        "rsapss" => notary_tuf::keys::RSA,
        _ => notary_tuf::keys::ECDSA,
    }
}

#[tonic::async_trait]
impl KeyManagement for SignerService {
    async fn create_key(
        &self,
        req: Request<CreateKeyRequest>,
    ) -> Result<Response<proto::PublicKey>, Status> {
        let r = req.into_inner();
        match self.crypto.create_key(&r.role, &r.gun, &r.algorithm).await {
            Ok(pk) => {
                tracing::info!(key_id = %pk.id(), gun = %r.gun, role = %r.role, algorithm = %r.algorithm, "key created or reused");
                Ok(Response::new(proto::PublicKey {
                    key_info: Some(key_info(&pk.id(), &pk.keytype)),
                    public_key: pk.public,
                }))
            }
            Err(CryptoError::Unsupported(_)) => Err(Status::unknown(format!(
                "algorithm {} not supported for create key",
                r.algorithm
            ))),
            Err(e) => {
                tracing::error!(error = %e, "key creation failed");
                Err(unavailable_or(e, "Key creation failed"))
            }
        }
    }

    async fn delete_key(&self, req: Request<KeyId>) -> Result<Response<Void>, Status> {
        let id = req.into_inner().id;
        match self.crypto.delete_key(&id).await {
            Ok(()) | Err(CryptoError::NotFound(_)) => Ok(Response::new(Void {})),
            Err(e) => {
                tracing::error!(error = %e, key_id = %id, "key deletion failed");
                Err(unavailable_or(
                    e,
                    &format!("Key deletion for KeyID {id} failed"),
                ))
            }
        }
    }

    async fn get_key_info(
        &self,
        req: Request<KeyId>,
    ) -> Result<Response<GetKeyInfoResponse>, Status> {
        let id = req.into_inner().id;
        // Served from the public part: no passphrase or HSM login needed (docs/signer-protocol.md).
        match self.crypto.get_key(&id).await {
            Ok(Some(info)) => Ok(Response::new(GetKeyInfoResponse {
                key_info: Some(key_info(&info.public.id(), &info.public.keytype)),
                public_key: info.public.public,
                role: info.role,
            })),
            Ok(None) | Err(CryptoError::NotFound(_)) => {
                Err(Status::not_found(format!("key {id} not found")))
            }
            Err(e) => {
                tracing::error!(error = %e, key_id = %id, "key lookup failed");
                Err(unavailable_or(e, &format!("key {id} lookup failed")))
            }
        }
    }
}

#[tonic::async_trait]
impl Signer for SignerService {
    async fn sign(
        &self,
        req: Request<SignatureRequest>,
    ) -> Result<Response<proto::Signature>, Status> {
        let r = req.into_inner();
        // The Go signer crashes here; we answer.
        let id = r
            .key_id
            .map(|k| k.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Status::invalid_argument("missing key ID"))?;
        match self.crypto.sign(&id, &r.content).await {
            Ok(sig) => Ok(Response::new(proto::Signature {
                key_info: Some(key_info(&id, key_type_of_method(&sig.method))),
                algorithm: Some(proto::Algorithm {
                    algorithm: sig.method,
                }),
                content: sig.sig,
            })),
            Err(CryptoError::NotFound(_)) => {
                Err(Status::not_found(format!("signing key not found: {id}")))
            }
            Err(e) => {
                tracing::error!(error = %e, key_id = %id, "signing failed");
                Err(unavailable_or(e, &format!("Signing failed for KeyID {id}")))
            }
        }
    }
}

fn unavailable_or(e: CryptoError, msg: &str) -> Status {
    match e {
        CryptoError::Unavailable(_) => Status::unavailable(msg.to_string()),
        // The operator's to fix (a passphrase): said as it is, so the server can say it too.
        CryptoError::Locked(m) => Status::failed_precondition(format!("{msg}: {m}")),
        _ => Status::internal(msg.to_string()),
    }
}

/// The health service, SERVING while the key store answers and NOT_SERVING while it does not
/// (checked every `period`; the Go signer always says SERVING).
pub async fn health_service(
    crypto: Arc<dyn CryptoService>,
    period: Duration,
) -> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    for name in [HEALTH_KEY_MANAGEMENT, HEALTH_SIGNER] {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::time::sleep(period).await;
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(5), crypto.health()).await,
                Ok(Ok(()))
            );
            if ok != serving {
                serving = ok;
                tracing::warn!(serving, "key store health changed");
                let st = if ok {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                for name in [HEALTH_KEY_MANAGEMENT, HEALTH_SIGNER] {
                    reporter.set_service_status(name, st).await;
                }
            }
        }
    });
    service
}
