//! GitHub Enterprise Server behind a private CA: the simulator serves HTTPS
//! with a certificate from a CA made in the test. With `GITHUB_CA_FILE` the
//! orchestrator works; without it, it says clearly what to set.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use github_sim::SimConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

use crate::helpers::{Options, TOKEN, TestEnv};

/// A fresh folder for one test's certificates.
fn cert_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gha-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes a CA (`ca.pem`) and a certificate it signed for `ip`
/// (`server.pem`, `server.key`) in `dir`.
fn make_certificates(dir: &Path, ip: IpAddr) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gha-runners test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec![ip.to_string(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

/// Options that serve the simulator over TLS with certificates made in `dir`.
fn tls_options(dir: &Path, env: Vec<(&'static str, String)>) -> Options {
    let dir = dir.to_owned();
    Options {
        env,
        sim: Some(Arc::new(move |config: &mut SimConfig| {
            make_certificates(&dir, config.listen.ip());
            config.tls_cert_file = Some(dir.join("server.pem"));
            config.tls_key_file = Some(dir.join("server.key"));
        })),
        ..Options::default()
    }
}

/// A client of the simulator's control API that trusts the test's CA.
fn sim_client(dir: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_given_the_orchestrator_works_over_tls() {
    let dir = cert_dir();
    let env = TestEnv::start_with(tls_options(
        &dir,
        vec![(
            "GITHUB_CA_FILE",
            dir.join("ca.pem").to_string_lossy().into_owned(),
        )],
    ))
    .await;
    assert!(env.sim_url().starts_with("https://"), "{}", env.sim_url());
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["github"]["reachable"], true, "{health}");
    let id = env.create(1).await.remove(0);
    let sim = sim_client(&dir);
    let registrations: Value = sim
        .get(format!("{}/_sim/runners", env.sim_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registrations[0]["name"], id.as_str(), "{registrations}");
    let (status, body) = env.delete(&format!("/runners/{id}?force=true")).await;
    assert!(status < 300, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_error_says_what_to_set() {
    let dir = cert_dir();
    let env = TestEnv::start_with(tls_options(&dir, Vec::new())).await;
    let (status, health) = env.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["github"]["reachable"], false, "{health}");
    let error = health["github"]["error"].as_str().unwrap();
    assert!(
        error.contains("certificate") && error.contains("GITHUB_CA_FILE"),
        "{error}"
    );
    let (status, body) = env.post("/runners/create", json!({"count": 1})).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("GITHUB_CA_FILE"), "{message}");
    assert!(env.containers().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_or_empty_ca_file_stops_the_start() {
    let dir = cert_dir();
    let not_pem = dir.join("not-a-ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    for (path, expected) in [(dir.join("missing.pem"), "cannot read"), (not_pem, "PEM")] {
        let output = Command::new(env!("CARGO_BIN_EXE_gha-orchestrator"))
            .env_clear()
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "acme/app")
            .env("GITHUB_CA_FILE", &path)
            .env("ORCHESTRATOR_PORT", "0")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("GITHUB_CA_FILE") && stderr.contains(expected),
            "{stderr}"
        );
        assert!(!stderr.contains(TOKEN));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
