//! Our server + our signer with the PKCS#11 backend on a SoftHSM2 token (Debian `softhsm2`).
#![cfg(feature = "system-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "84736251";

/// A fresh SoftHSM2 token in its own folder; returns the SOFTHSM2_CONF path.
fn init_token(dir: &Path, label: &str) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            "12345678",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util (Debian package softhsm2) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm_backed_signer_full_flow_and_keys_never_leave_the_token() {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} missing: install softhsm2"
    );
    let tmp = tempfile::tempdir().unwrap();
    let conf = init_token(tmp.path(), "notary-test");
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let storage = serde_json::json!({"backend": "pkcs11", "pkcs11_uri": format!("pkcs11:token=notary-test?module-path={MODULE}")});
    let env = vec![
        ("SOFTHSM2_CONF".to_string(), conf.display().to_string()),
        ("NOTARY_SIGNER_PKCS11_PIN".to_string(), PIN.to_string()),
    ];
    let mut signer =
        SignerProc::start_with(workspace_bin("notary-signer"), storage, env, &tls).await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;

    let gun = "example.com/hsm/repo";
    let owner = s.notary("owner");
    full_flow(&owner, &s.notary("fresh"), gun, s.tmp());
    let f = write_file(s.tmp(), "a.txt", b"signed in an HSM\n");
    // The same pending key is handed out until it is used.
    let (_, k1) = s
        .get(&s.tuf("example.com/hsm/other", "timestamp.key"))
        .await;
    let (_, k2) = s
        .get(&s.tuf("example.com/hsm/other", "timestamp.key"))
        .await;
    assert_eq!(k1, k2);

    // Keys stay in the token across a signer restart.
    signer.restart().await;
    owner.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    assert!(s.notary("fresh2").ok(&["list", gun]).contains("v3"));
    signer.stop();

    // Look into the token: the private keys are sensitive and were never extractable.
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    std::env::set_var("SOFTHSM2_CONF", &conf); // only this test loads SoftHSM in this process
    let ctx = Pkcs11::new(MODULE).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == "notary-test")
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    session
        .login(
            UserType::User,
            Some(&cryptoki::types::AuthPin::from(PIN.to_string())),
        )
        .unwrap();
    let keys = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert!(
        keys.len() >= 3,
        "timestamp (old and new) and snapshot keys: {}",
        keys.len()
    );
    for k in keys {
        let attrs = session
            .get_attributes(
                k,
                &[
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                ],
            )
            .unwrap();
        assert_eq!(attrs.len(), 4);
        for a in attrs {
            match a {
                Attribute::Extractable(v) => assert!(!v, "extractable"),
                Attribute::Sensitive(v)
                | Attribute::NeverExtractable(v)
                | Attribute::AlwaysSensitive(v) => assert!(v, "{a:?}"),
                other => panic!("{other:?}"),
            }
        }
        // The private value cannot be read.
        let value = session.get_attributes(k, &[AttributeType::Value]);
        assert!(
            value.is_err() || value.as_ref().unwrap().is_empty(),
            "{value:?}"
        );
    }
}
