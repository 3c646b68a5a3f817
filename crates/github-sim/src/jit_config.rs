//! The JIT runner configuration: base64 of a JSON map of runner files, each base64 JSON.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// What a runner needs from its JIT configuration to connect back.
#[derive(Debug, Clone)]
pub struct JitConfig {
    /// `agentId` in `.runner`.
    pub runner_id: u64,
    /// `agentName` in `.runner`.
    pub runner_name: String,
    /// `serverUrl` in `.runner`: where the runner protocol is served.
    pub server_url: String,
    /// `gitHubUrl` in `.runner`.
    pub github_url: String,
    /// The per-runner secret in `.credentials`.
    pub secret: SecretString,
}

/// Why an encoded configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JitConfigError {
    /// Not base64.
    #[error("the JIT configuration is not valid base64")]
    Base64,
    /// Not the expected JSON.
    #[error("the JIT configuration is malformed: {0}")]
    Malformed(&'static str),
}

fn b64_json(value: &Value) -> String {
    STANDARD.encode(value.to_string())
}

impl JitConfig {
    /// Encodes the configuration as GitHub's `encoded_jit_config`.
    pub fn encode(&self, work_folder: &str) -> String {
        let runner = json!({
            "agentId": self.runner_id,
            "agentName": self.runner_name,
            "poolId": crate::world::DEFAULT_GROUP_ID,
            "poolName": crate::world::DEFAULT_GROUP_NAME,
            "serverUrl": self.server_url,
            "gitHubUrl": self.github_url,
            "workFolder": work_folder,
            "ephemeral": true,
            "disableUpdate": true,
        });
        let credentials = json!({
            "scheme": "OAuth",
            "data": {
                "clientId": uuid::Uuid::new_v4().to_string(),
                "authorizationUrl": format!("{}/_runner/connect", self.server_url),
                "requireFipsCryptography": "False",
                "secret": self.secret.expose_secret(),
            },
        });
        let rsa = json!({
            "d": crate::world::random_hex(64),
            "dp": crate::world::random_hex(32),
            "dq": crate::world::random_hex(32),
            "exponent": "AQAB",
            "inverseQ": crate::world::random_hex(32),
            "modulus": crate::world::random_hex(64),
            "p": crate::world::random_hex(32),
            "q": crate::world::random_hex(32),
        });
        let files: BTreeMap<&str, String> = BTreeMap::from([
            (".runner", b64_json(&runner)),
            (".credentials", b64_json(&credentials)),
            (".credentials_rsaparams", b64_json(&rsa)),
        ]);
        STANDARD.encode(serde_json::to_string(&files).unwrap_or_default())
    }

    /// Decodes an `encoded_jit_config`.
    ///
    /// # Errors
    /// Not base64, or the files are missing or malformed.
    pub fn decode(encoded: &str) -> Result<Self, JitConfigError> {
        let outer = STANDARD
            .decode(encoded.trim())
            .map_err(|_| JitConfigError::Base64)?;
        let files: BTreeMap<String, String> = serde_json::from_slice(&outer)
            .map_err(|_| JitConfigError::Malformed("not a JSON map of files"))?;
        let file = |name: &'static str| -> Result<Value, JitConfigError> {
            let content = files.get(name).ok_or(JitConfigError::Malformed(name))?;
            let raw = STANDARD
                .decode(content)
                .map_err(|_| JitConfigError::Malformed(name))?;
            serde_json::from_slice(&raw).map_err(|_| JitConfigError::Malformed(name))
        };
        let runner = file(".runner")?;
        let credentials = file(".credentials")?;
        file(".credentials_rsaparams")?;
        let missing = JitConfigError::Malformed(".runner");
        Ok(Self {
            runner_id: runner["agentId"].as_u64().ok_or(missing)?,
            runner_name: runner["agentName"]
                .as_str()
                .ok_or(JitConfigError::Malformed(".runner"))?
                .to_owned(),
            server_url: runner["serverUrl"]
                .as_str()
                .ok_or(JitConfigError::Malformed(".runner"))?
                .trim_end_matches('/')
                .to_owned(),
            github_url: runner["gitHubUrl"].as_str().unwrap_or_default().to_owned(),
            secret: credentials["data"]["secret"]
                .as_str()
                .ok_or(JitConfigError::Malformed(".credentials"))?
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_the_real_file_names() {
        let config = JitConfig {
            runner_id: 7,
            runner_name: "r".into(),
            server_url: "http://sim:9000".into(),
            github_url: "https://github.com/o/r".into(),
            secret: "s3cret".into(),
        };
        let encoded = config.encode("_work");
        let outer: BTreeMap<String, String> =
            serde_json::from_slice(&STANDARD.decode(&encoded).unwrap()).unwrap();
        assert_eq!(
            outer.keys().collect::<Vec<_>>(),
            [".credentials", ".credentials_rsaparams", ".runner"]
        );
        let decoded = JitConfig::decode(&encoded).unwrap();
        assert_eq!(decoded.runner_id, 7);
        assert_eq!(decoded.server_url, "http://sim:9000");
        assert_eq!(decoded.secret.expose_secret(), "s3cret");
        assert!(!format!("{decoded:?}").contains("s3cret"));
        assert!(JitConfig::decode("%%%").is_err());
        assert!(JitConfig::decode(&STANDARD.encode("{}")).is_err());
    }
}
