//! HTTPS with a private CA, as a GitHub Enterprise Server may have: the simulator serves
//! the PEM certificate and key it is given, and only clients trusting the CA get in.

use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use github_sim::{SimConfig, spawn};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{REPO, TestSim, USER_AGENT};

/// A CA and a leaf for `127.0.0.1` and `localhost` it signed, written as PEM files into a
/// directory of their own (removed on drop).
struct TestPki {
    dir: PathBuf,
    ca_pem: String,
}

impl TestPki {
    fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "github-sim test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let dir = std::env::temp_dir().join(format!("github-sim-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Self {
            dir,
            ca_pem: ca_cert.pem(),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn serves_https_only_to_clients_trusting_the_ca() {
    let pki = TestPki::new();
    let mut config = SimConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.repos = vec!["octo/app".into()];
    config.tls_cert_file = Some(pki.dir.join("cert.pem"));
    config.tls_key_file = Some(pki.dir.join("key.pem"));
    let sim = spawn(config).await.expect("simulator starts");
    assert!(sim.is_tls());
    let base = sim.url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    let trusting = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let t = TestSim {
        sim,
        client: trusting,
        base: base.clone(),
    };
    let r = t.gh(Method::GET, "/rate_limit").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let _: Value = r.json().await.unwrap();

    // URLs the simulator writes are https too.
    for i in 0..2 {
        t.jit(REPO, &format!("tls-{i}"), &["x"]).await;
    }
    let r = t
        .gh(
            Method::GET,
            &format!("/api/v3{REPO}/actions/runners?per_page=1"),
        )
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("<{base}/api/v3{REPO}/actions/runners?")),
        "{link}"
    );

    let untrusting = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .build()
        .unwrap();
    let error = untrusting
        .get(format!("{base}/rate_limit"))
        .send()
        .await
        .unwrap_err();
    let text = chain(&error);
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    // HTTPS only: plain HTTP on the port gets no HTTP answer.
    let plain = base.replacen("https://", "http://", 1);
    let answer = untrusting.get(format!("{plain}/rate_limit")).send().await;
    assert!(answer.is_err(), "{answer:?}");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start() {
    let pki = TestPki::new();
    let mut config = SimConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.tls_cert_file = Some(pki.dir.join("cert.pem"));
    let only_cert = spawn(config.clone()).await.unwrap_err();
    assert!(only_cert.to_string().contains("both"), "{only_cert}");
    config.tls_key_file = Some(pki.dir.join("missing.pem"));
    let missing = spawn(config.clone()).await.unwrap_err();
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
    // The key of another certificate.
    std::fs::write(
        pki.dir.join("other.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    config.tls_key_file = Some(pki.dir.join("other.pem"));
    let mismatch = spawn(config).await.unwrap_err();
    assert!(mismatch.to_string().contains("does not fit"), "{mismatch}");
}
