//! RSA key pairs for the GitHub App tests, made at test time with the `openssl`
//! command (no private key is ever committed, not even a test one).

use std::io::Write;
use std::process::{Command, Stdio};

/// An RSA key pair in PEM, as GitHub hands an App's private key out.
#[derive(Clone)]
pub struct RsaKeyPair {
    /// The private key (`-----BEGIN RSA PRIVATE KEY-----`, PKCS#1, as GitHub's
    /// downloads are).
    pub private_pem: String,
    /// The public key (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeyPair").finish_non_exhaustive()
    }
}

impl RsaKeyPair {
    /// A fresh 2048-bit pair (GitHub's size, and the least `ring` signs with).
    ///
    /// # Panics
    /// When `openssl` is missing or fails: the message says to install it.
    pub fn generate() -> Self {
        // OpenSSL 3 writes PKCS#8 unless told `-traditional`; 1.1 knows no
        // such flag and writes PKCS#1 anyway.
        let private_pem = openssl(&["genrsa", "-traditional", "2048"], None)
            .or_else(|_| openssl(&["genrsa", "2048"], None))
            .unwrap_or_else(|e| panic!("{e}"));
        let public_pem =
            openssl(&["rsa", "-pubout"], Some(&private_pem)).unwrap_or_else(|e| panic!("{e}"));
        Self {
            private_pem,
            public_pem,
        }
    }
}

/// Runs `openssl ARGS` with `input` on its standard input; its standard output.
fn openssl(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run `openssl` ({e}): the GitHub App tests make their RSA keys with it; install it (apt-get install openssl)")
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(input) = input {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_pem_and_distinct() {
        let a = RsaKeyPair::generate();
        let b = RsaKeyPair::generate();
        assert!(a.private_pem.contains("PRIVATE KEY-----"));
        assert!(a.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_ne!(a.private_pem, b.private_pem);
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }
}
