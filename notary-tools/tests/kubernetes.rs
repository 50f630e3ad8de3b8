//! The Kubernetes manifests in `deploy/kubernetes/`, validated offline: the example overlay is
//! built with `kubectl kustomize` (where kubectl is installed) and every resource checked
//! against the Kubernetes 1.31 schemas, strictly (PyPI's `kubernetes-validate`); the properties
//! the deployment relies on are asserted; the config files load with our config loaders. Nothing
//! is applied to a cluster here (docs/operations.md says what that leaves unchecked).
#![cfg(feature = "system-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(path)
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--help").output().is_ok()
}

/// The resources of a YAML stream, as JSON (through Python's yaml, which kubernetes-validate
/// brings).
fn resources(yaml: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(yaml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate(files: &[PathBuf]) -> String {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.31.0"])
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate: {text}");
    text
}

fn find<'a>(all: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_manifests_validate_and_say_what_the_deployment_needs() {
    if !has("kubernetes-validate") {
        eprintln!("skipped: kubernetes-validate is not installed (`pip install kubernetes-validate`; `bash scripts/test.sh` installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tmp.path().join("example.yaml");
    let files = if has("kubectl") {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(deploy("overlays/example"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&built, &out.stdout).unwrap();
        vec![built.clone()]
    } else {
        eprintln!("kubectl is not installed: validating the base manifests without kustomize");
        vec![deploy("base/server.yaml"), deploy("base/signer.yaml")]
    };
    let report = validate(&files);
    for kind in [
        "deployment/notary-server",
        "statefulset/notary-signer",
        "poddisruptionbudget/notary-server",
        "poddisruptionbudget/notary-signer",
        "service/notary-server",
        "service/notary-signer",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{kind}: {report}"
        );
    }

    let all: Vec<serde_json::Value> = files.iter().flat_map(|f| resources(f)).collect();
    let server = find(&all, "Deployment", "notary-server");
    let spec = &server["spec"]["template"]["spec"];
    assert_eq!(server["spec"]["replicas"], 3);
    assert!(spec["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["topologyKey"] == "topology.kubernetes.io/zone"));
    let c = &spec["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"],
        "/_notary_server/health"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The grace period covers the pre-stop pause and the server's own drain.
    let drain = notary_server::serve::Limits::default()
        .shutdown_grace
        .as_secs();
    let pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() > drain + pause);
    assert_eq!(c["env"][0]["name"], "NOTARY_SERVER_STORAGE_DB_URL");
    assert!(c["env"][0]["valueFrom"]["secretKeyRef"].is_object());
    let signer = find(&all, "StatefulSet", "notary-signer");
    assert_eq!(signer["spec"]["replicas"], 2);
    assert_eq!(
        signer["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            ["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(
        find(&all, "PodDisruptionBudget", "notary-server")["spec"]["maxUnavailable"],
        1
    );

    // The config files are what our binaries load, and the server lists both signers by the
    // names the StatefulSet gives them.
    notary_server::config::Config::load(&deploy("base/server.json")).unwrap();
    let server_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deploy("base/server.json")).unwrap()).unwrap();
    let signers = signer["spec"]["replicas"].as_u64().unwrap();
    let mut named: Vec<String> = vec![format!(
        "{}:{}",
        server_json["trust_service"]["hostname"].as_str().unwrap(),
        server_json["trust_service"]["port"].as_str().unwrap()
    )];
    named.extend(
        server_json["trust_service"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let expected: Vec<String> = (0..signers)
        .map(|i| format!("notary-signer-{i}.notary-signer:7899"))
        .collect();
    assert_eq!(named, expected);
    notary_signer::config::Config::load(&deploy("base/signer.json")).unwrap();
}
