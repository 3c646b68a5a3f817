//! [`DockerError`]: every way a call to the container engine can fail, in
//! words that name the cause (a socket the orchestrator may not open is not
//! "retry shortly").

/// Why a call to the engine failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    /// The engine did not answer (socket missing, connection refused, timeout).
    #[error("the Docker engine is unreachable ({operation}): {message}")]
    Unavailable {
        /// What we were doing.
        operation: &'static str,
        /// What failed, with its causes.
        message: String,
    },
    /// The socket exists but the orchestrator's user may not open it: a
    /// configuration fault that waiting does not cure.
    #[error(
        "permission denied on the Docker socket {socket} ({operation}): the orchestrator's user is not in the group that owns it; set DOCKER_GID to that group's id, which `stat -c %g {socket}` prints on the Docker host (Docker Desktop: 0), and recreate the orchestrator (docker compose up -d)"
    )]
    PermissionDenied {
        /// What we were doing.
        operation: &'static str,
        /// The socket we tried to open.
        socket: String,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A name is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A runner's own Docker engine did not come up.
    #[error("runner {runner}: {message}")]
    EngineFailed {
        /// The runner.
        runner: String,
        /// What happened.
        message: String,
    },
    /// Any other answer of the engine.
    #[error("Docker refused {operation} ({status}): {message}")]
    Api {
        /// What we were doing.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
}

impl DockerError {
    /// Whether the engine could not be reached at all (as opposed to
    /// refusing one call): `/health` and `/readyz` then fail.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DockerError::Unavailable { .. } | DockerError::PermissionDenied { .. }
        )
    }
}

/// `error` and its causes, joined: a client's "client error (Connect)"
/// alone hides that the socket was missing or refused.
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether `error` was caused by an I/O error of kind `kind`.
pub(crate) fn caused_by_io(
    error: &(dyn std::error::Error + 'static),
    kind: std::io::ErrorKind,
) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_named() {
        let error = Outer(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(caused_by_io(&error, std::io::ErrorKind::PermissionDenied));
        assert!(!caused_by_io(&error, std::io::ErrorKind::NotFound));
        let text = with_causes(&error);
        assert!(text.starts_with("client error (Connect): "), "{text}");
        assert!(text.to_lowercase().contains("permission denied"), "{text}");
    }

    #[test]
    fn permission_denied_names_the_fix() {
        let error = DockerError::PermissionDenied {
            operation: "version",
            socket: "/var/run/docker.sock".into(),
        };
        let text = error.to_string();
        assert!(text.contains("DOCKER_GID"), "{text}");
        assert!(text.contains("stat -c %g /var/run/docker.sock"), "{text}");
        assert!(error.is_unreachable());
    }
}
