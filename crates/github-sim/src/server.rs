//! Start-up and shutdown: binds the listener, starts the background tasks, [`RunningSim`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, app};
use crate::config::SimConfig;
use crate::connection::{ConnectionHandle, SimListener};
use crate::settings::Settings;
use crate::tls;
use crate::webhooks::{Outbox, deliver_all};
use crate::world::World;

/// A running simulator; dropping it leaves the tasks running, [`RunningSim::shutdown`] stops them.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    /// `https` when serving TLS, else `http`.
    scheme: &'static str,
    public_url: String,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// The bound address (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, `http://ADDR`, or `https://ADDR` when serving TLS (the GHES form is
    /// this plus `/api/v3`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, reachable(self.addr))
    }

    /// Whether the simulator serves HTTPS (with `tls_cert_file`/`tls_key_file`).
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// The public base URL: runner stand-ins use it, and it is the base of `url` fields and
    /// `Link` headers (from `--public-url`, else [`RunningSim::url`]).
    pub fn public_url(&self) -> String {
        self.public_url.clone()
    }

    /// Stops serving, ends long polls and background tasks, and waits for them.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// An unspecified listen address is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Registers `--app-id` with its public key and installs it on `--app-installation`s.
fn register_app(world: &mut World, config: &SimConfig) -> io::Result<()> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let (Some(app_id), Some(key_file)) = (config.app_id, &config.app_public_key_file) else {
        if config.app_id.is_some() || !config.app_installations.is_empty() {
            return Err(invalid(
                "give app_id with app_public_key_file (and installations only with both)".into(),
            ));
        }
        return Ok(());
    };
    let pem = std::fs::read(key_file)
        .map_err(|e| invalid(format!("--app-public-key-file {}: {e}", key_file.display())))?;
    world.apps.add_app(app_id, &pem).map_err(invalid)?;
    for owner in &config.app_installations {
        world.install_app(app_id, owner.trim()).map_err(invalid)?;
    }
    Ok(())
}

/// Binds `config.listen` and serves the simulator in background tasks: HTTPS only when
/// `tls_cert_file` and `tls_key_file` are set, else HTTP.
///
/// # Errors
/// The address cannot be bound, a `--repo`/`--org` value is malformed, only one of the TLS
/// files is given, or they cannot be read or do not fit, or the App's key cannot be read or
/// an installation names an unknown owner (`InvalidInput`).
pub async fn spawn(config: SimConfig) -> io::Result<RunningSim> {
    let acceptor = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "give both tls_cert_file and tls_key_file, or neither",
            ));
        }
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let api_url = format!("{scheme}://{}", reachable(addr));
    let public_url = config.public_url.as_deref().map_or_else(
        || api_url.clone(),
        |u| {
            u.trim_end_matches('/')
                .replace("{port}", &addr.port().to_string())
        },
    );
    let (outbox, receiver) = match config.webhook_url {
        Some(_) => {
            let (outbox, receiver) = Outbox::channel();
            (outbox, Some(receiver))
        }
        None => (Outbox::disabled(), None),
    };
    let mut world = World::new(
        &config.orgs,
        &config.repos,
        Settings::from_config(&config),
        public_url.clone(),
        outbox,
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    register_app(&mut world, &config)?;
    if let Some(url) = &config.webhook_url {
        world.emit_ping(url);
    }
    let world = Arc::new(Mutex::new(world));
    let offline_after = Duration::from_millis(config.runner_offline_after_ms.max(100));
    let cancel = CancellationToken::new();
    let state = AppState {
        world: world.clone(),
        tokens: Arc::new(config.tokens.clone()),
        public_url: public_url.clone().into(),
        in_flight: Arc::new(AtomicUsize::new(0)),
        poll_max: (offline_after / 2).min(Duration::from_secs(5)),
        cancel: cancel.clone(),
    };

    let listener = match acceptor {
        Some(acceptor) => SimListener::tls(listener, acceptor)?,
        None => SimListener::Plain(listener),
    };
    let mut tasks = Vec::new();
    let shutdown = cancel.clone();
    tasks.push(tokio::spawn(async move {
        let service = app(state).into_make_service_with_connect_info::<ConnectionHandle>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "server failed");
        }
    }));

    let reaper_world = world.clone();
    let reaper_cancel = cancel.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval((offline_after / 10).max(Duration::from_millis(20)));
        loop {
            tokio::select! {
                () = reaper_cancel.cancelled() => return,
                _ = tick.tick() => {
                    reaper_world.lock().unwrap_or_else(|e| e.into_inner()).reap(offline_after);
                }
            }
        }
    }));

    if let (Some(receiver), Some(url)) = (receiver, config.webhook_url.clone()) {
        tasks.push(tokio::spawn(deliver_all(
            receiver,
            world,
            url,
            config.webhook_secret.clone(),
            cancel.clone(),
        )));
    }

    tracing::info!(%addr, %public_url, "github-sim started");
    Ok(RunningSim {
        addr,
        scheme,
        public_url,
        cancel,
        tasks,
    })
}
