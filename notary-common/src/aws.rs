//! The AWS SDK's shared configuration as every client here builds it (the KMS key store, the
//! S3 publication tree): HTTPS on rustls with ring (the workspace's TLS stack, not aws-lc),
//! credentials from the AWS chain only (environment, shared config, instance role — never a
//! config file of ours), every operation bounded by the caller's timeout with the SDK's
//! retries inside it, and an optional endpoint for AWS-compatible services (moto in the tests).

use std::time::Duration;

/// Where and how long: what a client's caller decides.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings<'a> {
    /// The region (default: the chain's, e.g. `AWS_REGION`).
    pub region: Option<&'a str>,
    /// An AWS-compatible endpoint instead of AWS's.
    pub endpoint: Option<&'a str>,
    /// Longest one operation may take, retries included.
    pub operation_timeout: Duration,
    /// Longest a connection may take to open.
    pub connect_timeout: Duration,
}

/// The shared configuration clients are built from (`aws_sdk_*::Client::new(&config)`).
pub async fn sdk_config(s: &AwsSettings<'_>) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(s.operation_timeout)
        .connect_timeout(s.connect_timeout)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts);
    if let Some(r) = s.region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = s.endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}
