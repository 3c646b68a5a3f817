//! A Unix-socket proxy in front of the Docker engine that a test can cut and
//! restore, to prove what a service does when the engine goes away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinHandle};

/// The engine's socket.
const ENGINE_SOCKET: &str = "/var/run/docker.sock";

#[derive(Debug, Default)]
struct State {
    cut: bool,
    connections: Vec<AbortHandle>,
}

/// A proxy listening on its own socket; give services `DOCKER_HOST=`[`Self::docker_host`].
#[derive(Debug)]
pub struct DockerProxy {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl DockerProxy {
    /// Starts a proxy on a fresh socket in the temp directory.
    ///
    /// # Panics
    /// When the socket cannot be bound.
    pub fn start() -> Self {
        let path =
            std::env::temp_dir().join(format!("gha-docker-proxy-{}.sock", crate::unique_id()));
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Self {
            path,
            state,
            accept,
        }
    }

    /// `unix:///…` for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The engine becomes unreachable: open connections are dropped and new
    /// ones are closed at once.
    pub fn cut(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.cut = true;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    /// The engine is reachable again.
    pub fn restore(&self) {
        self.state.lock().expect("proxy state").cut = false;
    }

    /// The proxy's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, state: Arc<Mutex<State>>) {
    while let Ok((mut client, _)) = listener.accept().await {
        if state.lock().expect("proxy state").cut {
            drop(client);
            continue;
        }
        let task = tokio::spawn(async move {
            if let Ok(mut engine) = UnixStream::connect(ENGINE_SOCKET).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
            }
        });
        let mut state = state.lock().expect("proxy state");
        state.connections.retain(|c| !c.is_finished());
        state.connections.push(task.abort_handle());
    }
}
