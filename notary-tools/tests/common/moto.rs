//! moto, the AWS service mock from PyPI, run as a real HTTP server (`python3 -m moto.server`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// moto (PyPI) run as a server on a free port: S3 and KMS endpoints for the tests.
pub(crate) struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-p",
                &port.to_string(),
                "-H",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto must be installed (PyPI moto[server]); .ci/run installs it");
        wait_for_port(port, "moto");
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Moto {
    /// Make `bucket`, readable by anyone under `notary/` as docs/static-publication.md says
    /// (boto3, which moto brings, stands in for the operator's tooling), and give this
    /// process's children the credential chain's first link (moto accepts any).
    pub(crate) fn bucket(&self, bucket: &str) {
        credentials();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/notary/*"}}]}}"#
        );
        let setup = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1'); \
                     s3.create_bucket(Bucket='{bucket}'); s3.put_bucket_policy(Bucket='{bucket}', Policy='{policy}')",
                    self.url
                ),
            ])
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "bucket set-up: {}",
            output_text(&setup)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Give this process's children the AWS credential chain's first link (moto accepts any).
pub(crate) fn credentials() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
}

impl Moto {
    /// Run `code` in Python with a boto3 `client` of `service` on this moto; its output.
    pub(crate) fn boto3(&self, service: &str, code: &str) -> String {
        credentials();
        let out = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import boto3, base64, json\nclient = boto3.client('{service}', endpoint_url='{}', region_name='us-east-1')\n{code}",
                    self.url
                ),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "boto3: {}", output_text(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}
