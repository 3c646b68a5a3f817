//! GitHub Apps: JWTs checked as GitHub checks them, installation look-ups, installation
//! tokens that open only their own account and expire, and installation budgets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::RsaKeyPair;

use crate::helpers::{TestSim, start_with, wait_for};

/// The App id every test here registers.
pub(crate) const APP_ID: u64 = 424_242;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT signed with `key`, with the given claims.
pub(crate) fn jwt(key: &RsaKeyPair, iss: Value, iat: i64, exp: i64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iat": iat, "exp": exp, "iss": iss}),
        &EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A JWT as an App should make one: `iat` a minute ago, `exp` nine minutes on.
pub(crate) fn good_jwt(key: &RsaKeyPair) -> String {
    jwt(key, json!(APP_ID.to_string()), now() - 60, now() + 540)
}

/// A simulator with App [`APP_ID`] (public key of `key`) installed on `octo` and `acme`.
pub(crate) async fn start_with_app(key: &RsaKeyPair) -> TestSim {
    let dir = std::env::temp_dir().join(format!("sim-app-{}", test_support::unique_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = dir.join("app.pub.pem");
    std::fs::write(&public, &key.public_pem).unwrap();
    let t = start_with(|c| {
        c.app_id = Some(APP_ID);
        c.app_public_key_file = Some(public.clone());
        c.app_installations = vec!["octo".into(), "acme".into()];
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
    t
}

impl TestSim {
    /// A GitHub-surface request with `credential` as its bearer.
    pub(crate) fn as_bearer(
        &self,
        credential: &str,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(credential)
            .header("accept", "application/vnd.github+json")
    }

    /// The status `credential` gets for `method path`.
    pub(crate) async fn status(&self, credential: &str, method: Method, path: &str) -> StatusCode {
        self.as_bearer(credential, method, path)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `PATCH /_sim/settings` with `body`, which must be accepted.
    pub(crate) async fn patch_settings(&self, body: Value) {
        let r = self
            .raw(Method::PATCH, "/_sim/settings")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// A fresh installation token of `installation`: `(token, expires_at)`.
    pub(crate) async fn installation_token(
        &self,
        jwt: &str,
        installation: u64,
    ) -> (String, String) {
        let r = self
            .as_bearer(
                jwt,
                Method::POST,
                &format!("/app/installations/{installation}/access_tokens"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["expires_at"].as_str().unwrap().to_owned(),
        )
    }

    /// The id of the App's installation found through `path` (`/orgs/acme/installation`…).
    pub(crate) async fn installation_id(&self, jwt: &str, path: &str) -> u64 {
        let r = self.as_bearer(jwt, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["app_id"], APP_ID);
        body["id"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn installation_tokens_open_their_own_account_only() {
    let key = RsaKeyPair::generate();
    let t = start_with_app(&key).await;
    let jwt = good_jwt(&key);
    let octo = t
        .installation_id(&jwt, "/repos/octo/app/installation")
        .await;
    let acme = t.installation_id(&jwt, "/orgs/acme/installation").await;
    assert_ne!(octo, acme, "one installation per account");
    assert_eq!(
        t.installation_id(&jwt, "/users/octo/installation").await,
        octo
    );
    assert_eq!(
        t.installation_id(&jwt, "/repos/acme/web/installation")
            .await,
        acme
    );
    // Not an organization, not installed, unknown.
    for path in [
        "/orgs/octo/installation",
        "/repos/ghost/app/installation",
        "/app/installations/1/access_tokens",
    ] {
        let method = if path.ends_with("access_tokens") {
            Method::POST
        } else {
            Method::GET
        };
        let r = t.as_bearer(&jwt, method, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let (token, expires_at) = t.installation_token(&jwt, octo).await;
    assert!(token.starts_with("ghs_"), "GitHub's prefix");
    let expires_at = chrono::DateTime::parse_from_rfc3339(&expires_at).unwrap();
    let lifetime = expires_at.timestamp() - now();
    assert!((3590..=3600).contains(&lifetime), "an hour: {lifetime}");
    let r = t
        .as_bearer(&token, Method::GET, "/repos/octo/app/actions/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-ratelimit-limit"],
        "5000",
        "GitHub's rule for 1 repository"
    );
    // Another account's runners are out of its reach, as are the App routes.
    for (method, path) in [
        (Method::GET, "/orgs/acme/actions/runners"),
        (Method::GET, "/repos/acme/web/actions/runners"),
        (
            Method::POST,
            "/orgs/acme/actions/runners/registration-token",
        ),
    ] {
        let r = t.as_bearer(&token, method, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        t.status(&token, Method::GET, "/app/installations").await,
        StatusCode::UNAUTHORIZED
    );

    let stats = t.stats().await;
    assert_eq!(stats["installation_tokens_issued"][octo.to_string()], 1);
    assert_eq!(stats["installation_tokens_issued_total"], 1);
    let apps: Value = t
        .raw(Method::GET, "/_sim/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps[0]["id"], APP_ID);
    assert_eq!(apps[0]["installations"].as_array().unwrap().len(), 2);
    assert!(!apps.to_string().contains(&token), "no token in /_sim/apps");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn jwts_are_checked_as_github_checks_them() {
    let key = RsaKeyPair::generate();
    let other = RsaKeyPair::generate();
    let t = start_with_app(&key).await;
    let n = now();
    let undecodable = "A JSON web token could not be decoded";
    let cases = [
        (
            "signed with another key",
            jwt(&other, json!(APP_ID), n - 60, n + 540),
            undecodable,
        ),
        (
            "an unknown App",
            jwt(&key, json!(APP_ID + 1), n - 60, n + 540),
            undecodable,
        ),
        (
            "issued in the future",
            jwt(&key, json!(APP_ID), n + 120, n + 540),
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ),
        (
            "living more than ten minutes",
            jwt(&key, json!(APP_ID), n - 60, n + 600),
            "'Expiration time' claim ('exp') is too far in the future",
        ),
        (
            "expired",
            jwt(&key, json!(APP_ID), n - 700, n - 100),
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ),
        (
            "not a JWT at all",
            "eyJub3Q.eyJhIGp3dA.x".to_owned(),
            undecodable,
        ),
    ];
    for (what, jwt, message) in cases {
        let r = t
            .as_bearer(&jwt, Method::GET, "/app/installations")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(r.headers().contains_key("x-ratelimit-remaining"), "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], message, "{what}");
    }
    // Accepted: the App id as a number or a string, or the App's client id; a small
    // clock skew.
    let apps: Value = t
        .raw(Method::GET, "/_sim/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = apps[0]["client_id"].as_str().unwrap().to_owned();
    assert!(client_id.starts_with("Iv23li"), "{client_id}");
    for iss in [json!(APP_ID), json!(APP_ID.to_string()), json!(client_id)] {
        let jwt = jwt(&key, iss.clone(), n + 10, n + 540);
        let r = t
            .as_bearer(&jwt, Method::GET, "/app/installations")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "iss {iss}");
        let installations: Value = r.json().await.unwrap();
        assert_eq!(installations.as_array().unwrap().len(), 2);
    }
    // A JWT opens the App routes only; a token opens none of them.
    let jwt = good_jwt(&key);
    assert_eq!(
        t.status(&jwt, Method::GET, "/repos/octo/app/actions/runners")
            .await,
        StatusCode::FORBIDDEN
    );
    let r = t
        .gh(Method::GET, "/repos/octo/app/installation")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn installation_tokens_expire_after_their_lifetime() {
    let key = RsaKeyPair::generate();
    let t = start_with_app(&key).await;
    t.patch_settings(json!({"installation_token_lifetime_seconds": 2}))
        .await;
    let jwt = good_jwt(&key);
    let octo = t.installation_id(&jwt, "/orgs/acme/installation").await;
    let (token, expires_at) = t.installation_token(&jwt, octo).await;
    let expires_at = chrono::DateTime::parse_from_rfc3339(&expires_at).unwrap();
    assert!(expires_at.timestamp() - now() <= 2);
    let runners = "/orgs/acme/actions/runners";
    assert_eq!(t.status(&token, Method::GET, runners).await, StatusCode::OK);
    let refused = wait_for("the token to expire", Duration::from_secs(10), || async {
        let r = t
            .as_bearer(&token, Method::GET, runners)
            .send()
            .await
            .unwrap();
        (r.status() == StatusCode::UNAUTHORIZED).then_some(r)
    })
    .await;
    assert!(
        chrono::Utc::now() >= expires_at,
        "refused only once expired"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["message"], "Bad credentials");
    // A new one works again.
    let (fresh, _) = t.installation_token(&jwt, octo).await;
    assert_eq!(t.status(&fresh, Method::GET, runners).await, StatusCode::OK);
    assert_eq!(
        t.stats().await["installation_tokens_issued"][octo.to_string()],
        2
    );
    t.sim.shutdown().await;
}

#[tokio::test]
async fn each_installation_has_budgets_of_its_own() {
    let key = RsaKeyPair::generate();
    let t = start_with_app(&key).await;
    t.patch_settings(json!({"installation_rate_limit_per_hour": 2}))
        .await;
    let jwt = good_jwt(&key);
    let octo = t.installation_id(&jwt, "/users/octo/installation").await;
    let acme = t.installation_id(&jwt, "/orgs/acme/installation").await;
    let (octo_token, _) = t.installation_token(&jwt, octo).await;
    let (acme_token, _) = t.installation_token(&jwt, acme).await;
    let list = |token: &str, path: &str| t.as_bearer(token, Method::GET, path).send();
    for _ in 0..2 {
        let r = list(&octo_token, "/repos/octo/app/actions/runners")
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = list(&octo_token, "/repos/octo/app/actions/runners")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("installation ID {octo}")),
        "{message}"
    );
    // The other installation and the personal token still have theirs.
    let r = list(&acme_token, "/orgs/acme/actions/runners")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1");
    let r = t
        .gh(Method::GET, "/repos/octo/app/actions/runners")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // `/rate_limit` with an installation token shows that installation's budget.
    let r = list(&octo_token, "/rate_limit").await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resources"]["core"]["remaining"], 0);
    t.sim.shutdown().await;
}

#[tokio::test]
async fn apps_and_installations_through_the_control_api() {
    let key = RsaKeyPair::generate();
    let t = start_with(|_| {}).await;
    let create = |body: Value| t.raw(Method::POST, "/_sim/apps").json(&body).send();
    for bad in [
        json!({"id": 5, "public_key_pem": "not a key"}),
        json!({"id": 0, "public_key_pem": key.public_pem}),
        json!({"id": 5, "public_key_pem": key.public_pem, "installations": ["ghost"]}),
        json!({"public_key_pem": key.public_pem}),
    ] {
        let r = create(bad.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r =
        create(json!({"id": APP_ID, "public_key_pem": key.public_pem, "installations": ["acme"]}))
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let app: Value = r.json().await.unwrap();
    assert_eq!(app["installations"][0]["account"], "acme");
    let r = create(json!({"id": APP_ID, "public_key_pem": key.public_pem}))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "registered twice"
    );
    let jwt = good_jwt(&key);
    let r = t
        .as_bearer(&jwt, Method::GET, "/repos/octo/app/installation")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "not installed on octo yet"
    );
    let install = |app: u64, account: &str| {
        t.raw(Method::POST, &format!("/_sim/apps/{app}/installations"))
            .json(&json!({"account": account}))
            .send()
    };
    let r = install(APP_ID, "octo").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let installed: Value = r.json().await.unwrap();
    assert_eq!(
        t.installation_id(&jwt, "/repos/octo/app/installation")
            .await,
        installed["id"].as_u64().unwrap()
    );
    assert_eq!(
        install(1, "octo").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        install(APP_ID, "ghost").await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    t.sim.shutdown().await;
}
