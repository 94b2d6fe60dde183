//! Connections to the PostgreSQL server: a small pool of them, TLS when the
//! URL asks for it, and reconnection with jittered backoff after an outage.
//!
//! No pool crate: the agent makes a few calls per tick, so a semaphore of
//! `pool` permits and a list of idle clients are all it needs. A client
//! whose connection ended (the server restarted, the network dropped) is
//! closed and left behind; the next call connects anew. After a failed
//! connect, calls fail at once (naming the last error) until a pause drawn
//! by `retry::Backoff` has passed: agents that lost the server together do
//! not all knock at once when it comes back, and a tick never waits for a
//! connect that just failed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_postgres::Client;
use tracing::{info, warn};

use super::config::{CONNECT_TIMEOUT, PostgresConfig, Tls};
use super::schema;
use crate::db::Error;
use crate::retry::{Backoff, Retry};

/// The pauses between connection attempts after a failure.
const RECONNECT: Backoff = Backoff {
    first: Duration::from_millis(500),
    cap: Duration::from_secs(10),
    attempts: u32::MAX,
};

/// Whether the server is reachable, as the latest connect found it.
#[derive(Debug)]
struct Health {
    retry: Retry,
    /// No connect before this instant; `None`: connect freely.
    next_attempt: Option<Instant>,
    /// The latest failure, repeated by the calls that wait for the pause.
    last_error: String,
    /// Whether the tables were found (or created) through this handle.
    schema_ready: bool,
}

/// A pool of connections to one server.
pub(super) struct Pool {
    options: PostgresConfig,
    /// The URL without its password, for errors and logs.
    pub(super) shown: String,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Client>>>,
    health: Mutex<Health>,
    /// The longest a connect may take (`limit_waits`), in ms.
    connect_ms: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// A client taken from the pool; it goes back when dropped, unless its
/// connection ended.
pub(super) struct Pooled {
    client: Option<Client>,
    idle: Arc<Mutex<Vec<Client>>>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
        }
    }
}

impl Pool {
    /// A pool that connects on first use (opening it reaches nothing, so an
    /// agent starts while the server is down).
    pub(super) fn new(options: &PostgresConfig) -> Pool {
        Pool {
            shown: options.shown_url(),
            permits: Arc::new(Semaphore::new(options.pool.max(1))),
            idle: Arc::new(Mutex::new(Vec::new())),
            health: Mutex::new(Health {
                retry: RECONNECT.start(None),
                next_attempt: None,
                last_error: String::new(),
                schema_ready: false,
            }),
            connect_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(CONNECT_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            ),
            options: options.clone(),
        }
    }

    /// An error of this server.
    pub(super) fn error(&self, detail: impl Into<String>) -> Error {
        Error::Postgres {
            url: self.shown.clone(),
            detail: detail.into(),
        }
    }

    /// Bounds a connect to `budget` (at most `CONNECT_TIMEOUT`).
    pub(super) fn limit_connect(&self, budget: Duration) {
        let ms = u64::try_from(budget.min(CONNECT_TIMEOUT).as_millis()).unwrap_or(u64::MAX);
        self.connect_ms
            .store(ms.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets that the tables exist, so the next call creates them again
    /// (one was dropped under the agent).
    pub(super) fn schema_lost(&self) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .schema_ready = false;
    }

    /// A connected client whose database has the tables: an idle one, or a
    /// new connection (which creates the tables if nobody did yet).
    ///
    /// # Errors
    /// `Error::Postgres` when connecting fails, or failed a moment ago and
    /// the backoff pause is not over.
    pub(super) async fn get(&self) -> Result<Pooled, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| self.error("the connection pool is closed"))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|client| !client.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect().await?,
        };
        let mut pooled = Pooled {
            client: Some(client),
            idle: Arc::clone(&self.idle),
            _permit: permit,
        };
        let ready = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .schema_ready;
        if !ready {
            schema::ensure(&mut pooled)
                .await
                .map_err(|error| self.error(detail(&error)))?;
            self.health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .schema_ready = true;
        }
        Ok(pooled)
    }

    /// Opens a new connection, unless the pause after a failure is running.
    async fn connect(&self) -> Result<Client, Error> {
        {
            let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = health.next_attempt
                && Instant::now() < at
            {
                return Err(self.error(format!(
                    "{} (next connection attempt in {} ms)",
                    health.last_error,
                    at.saturating_duration_since(Instant::now()).as_millis()
                )));
            }
        }
        let budget =
            Duration::from_millis(self.connect_ms.load(std::sync::atomic::Ordering::Relaxed));
        let outcome = match tokio::time::timeout(budget, self.open()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("cannot connect within {} ms", budget.as_millis())),
        };
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(client) => {
                if health.next_attempt.take().is_some() {
                    info!(url = %self.shown, "connected to the postgresql server again");
                }
                health.retry.reset();
                Ok(client)
            }
            Err(problem) => {
                let pause = health.retry.next_delay().unwrap_or(RECONNECT.cap);
                health.next_attempt = Some(Instant::now() + pause);
                health.last_error.clone_from(&problem);
                // A reconnect is due: the tables may be gone with the server.
                health.schema_ready = false;
                warn!(url = %self.shown, error = %problem, pause_ms = pause.as_millis(), "cannot connect to the postgresql server");
                Err(self.error(problem))
            }
        }
    }

    /// Connects once, with TLS when the URL asks for it, and runs the
    /// connection on the runtime.
    async fn open(&self) -> Result<Client, String> {
        let password = std::env::var("PGPASSWORD").ok();
        let target = self.options.target(password.as_deref())?;
        match target.tls {
            Tls::Off => {
                let (client, connection) = target
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|error| detail(&error))?;
                spawn_connection(connection, self.shown.clone());
                Ok(client)
            }
            Tls::Verified { root_cert } => {
                let tls = tls_connector(root_cert.as_deref())?;
                let (client, connection) = target
                    .config
                    .connect(tls)
                    .await
                    .map_err(|error| detail(&error))?;
                spawn_connection(connection, self.shown.clone());
                Ok(client)
            }
        }
    }
}

/// Drives a connection until it ends, logging why it did.
fn spawn_connection<C>(connection: C, shown: String)
where
    C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            warn!(url = %shown, error = %detail(&error), "a postgresql connection ended");
        }
    });
}

/// A rustls connector trusting the system's roots and `root_cert`.
fn tls_connector(
    root_cert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is not a reason to fail.
        let _ = roots.add(cert);
    }
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("cannot read sslrootcert `{}`: {error}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|error| {
                format!("cannot read sslrootcert `{}`: {error}", path.display())
            })?;
            roots
                .add(cert)
                .map_err(|error| format!("sslrootcert `{}`: {error}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("tls: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A driver error in one line, its causes and the server's message
/// included; never the password (the driver does not quote it).
pub(super) fn detail(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
    }
    crate::error::chain(error)
}
