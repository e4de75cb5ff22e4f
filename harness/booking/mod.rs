//! The simulated booking service (the system under test): a real axum server with Cal.com's
//! booking flow — booking creation, the Google Calendar event, Stripe payment and its later
//! webhook, seated bookings, mandatory reminders, and `BOOKING_CREATED` webhooks run by cron with
//! retries — instrumented with `tracing` and backed by a durable SQLite store. It does not know
//! it is being tested: it reads the virtual clock and the trace context from headers, as it
//! would read real ones. Its routes, headers, operation names and signing schemes are those of
//! the [`contract`](crate::contract).

mod bugs;
mod config;
pub mod conformance;
mod crash;
mod create;
mod front;
pub(crate) mod guard;
mod http;
mod jobs;
mod outbound;
mod payment;
mod routes;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{oneshot, watch};
use tracing::warn;

use crate::trace;
pub(crate) use outbound::peer_client;
use outbound::Outbound;
use store::Store;

use crate::contract::PlantedBug;
pub use bugs::PlantedBugs;
pub use config::{ServiceConfig, ServiceError};
pub(crate) use crash::CrashHook;
pub(crate) use create::{AttendeeResponses, BookingRequest};
pub(crate) use front::Front;
pub use guard::MAX_HEADER_BYTES;
pub(crate) use http::{REQUEST_ID_NAME, TRACEPARENT_NAME, TRACE_ID_NAME};
pub(crate) use store::{MemoryDatabase, StatusCounts, StoreError};

/// A running booking service on `127.0.0.1:<ephemeral port>`, or behind a [`Front`].
pub struct BookingService {
    addr: SocketAddr,
    server: Server,
    app: Arc<App>,
    router: Router,
}

/// Where a service listens.
enum Server {
    /// On a port of its own: stopping signals its server and waits until every connection to
    /// it has closed.
    Own {
        shutdown: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    },
    /// Behind a front, which outlives it: stopping leaves the front, then waits until its own
    /// requests in flight are done; the connections stay, for the next service.
    Behind(front::Behind),
}

impl BookingService {
    /// Starts the service on an ephemeral loopback port.
    pub async fn start(config: ServiceConfig) -> Result<Self, ServiceError> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`start`](Self::start) on a given address (`serve` uses a fixed port).
    pub(crate) async fn start_on(
        config: ServiceConfig,
        addr: SocketAddr,
    ) -> Result<Self, ServiceError> {
        Self::start_crashable(config, addr, None).await
    }

    /// [`start_on`](Self::start_on), honouring the crash points cron calls arm
    /// (`x-virtual-crash`) when given a `hook` to die by: a replay's runner, or `serve
    /// --contract`. Without one the header is ignored.
    pub(crate) async fn start_crashable(
        config: ServiceConfig,
        addr: SocketAddr,
        hook: Option<CrashHook>,
    ) -> Result<Self, ServiceError> {
        let (app, router) = build(config, hook, None)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let served = router.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, served)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(BookingService {
            addr,
            server: Server::Own {
                shutdown: Some(shutdown),
                task,
            },
            app,
            router,
        })
    }

    /// Starts the service behind `front`, where the service before it ran (it must have
    /// stopped), calling its peers with `peers` (a client from [`peer_client`], whose open
    /// connections the services behind one front share), and dying by `hook` as
    /// [`start_crashable`](Self::start_crashable) does.
    pub(crate) fn start_behind(
        config: ServiceConfig,
        front: &Front,
        peers: reqwest::Client,
        hook: Option<CrashHook>,
    ) -> Result<Self, ServiceError> {
        let (app, router) = build(config, hook, Some(peers))?;
        *front.behind().lock() = Some(router.clone());
        Ok(BookingService {
            addr: front.addr(),
            server: Server::Behind(front.behind().clone()),
            app,
            router,
        })
    }

    /// The service's routes, to drive it in-process (load runs, benchmarks): no socket between
    /// the caller and the service; its own calls to its peers still go over HTTP.
    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }

    /// The service's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &ServiceConfig {
        &self.app.config
    }

    /// `(status, count)` of the webhook jobs in the store.
    pub(crate) fn webhook_job_counts(&self) -> Result<StatusCounts, StoreError> {
        self.app.store.webhook_job_counts()
    }

    /// `(status, count)` of the payments in the store: `paid`, `failed`, `pending`.
    pub(crate) fn payment_counts(&self) -> Result<StatusCounts, StoreError> {
        self.app.store.payment_counts()
    }

    /// `(status, count)` of the reminders in the store.
    pub(crate) fn reminder_counts(&self) -> Result<StatusCounts, StoreError> {
        self.app.store.reminder_counts()
    }

    /// Failed jobs with their reasons: `(table, id, reason)`.
    pub(crate) fn failed_jobs(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.app.store.failed_jobs()
    }

    /// Rows per table.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        self.app.store.row_counts()
    }

    /// Bookings whose payment has been confirmed.
    pub fn paid_booking_count(&self) -> Result<i64, StoreError> {
        self.app.store.paid_booking_count()
    }

    /// Stops the server cleanly and drops every piece of in-memory state; the database stays.
    /// Requests in flight finish, or are abandoned after the configuration's
    /// `in_flight_grace` (a cron call can run many jobs; each outbound call has a 30 s guard of
    /// its own); then every job this process still holds is given back, for the next cron call
    /// to take at once.
    pub async fn stop(mut self) {
        let grace = self.app.config.in_flight_grace;
        if tokio::time::timeout(grace, self.server.drain(&self.app))
            .await
            .is_err()
        {
            self.app.abandon_requests();
            self.server.drain(&self.app).await;
        }
        match self.app.store.release_leases(self.app.config.generation) {
            Ok(0) => {}
            Ok(n) => warn!("Stopping with {n} unfinished job(s): their leases are released"),
            Err(e) => warn!("Stopping: the leases of unfinished jobs could not be released: {e}"),
        }
    }

    /// Stops the service as its process would die at a crash point: every request in flight
    /// is dropped where it waits (its open spans never close normally), nothing more is
    /// committed and no lease is given back; the database stays as the crash left it.
    pub(crate) async fn crash(mut self) {
        self.app.abandon_requests();
        self.server.drain(&self.app).await;
    }
}

impl Server {
    /// Takes no more requests, and returns once those in flight are done.
    async fn drain(&mut self, app: &App) {
        match self {
            Server::Own { shutdown, task } => {
                if let Some(shutdown) = shutdown.take() {
                    let _ = shutdown.send(());
                }
                let _ = task.await;
            }
            Server::Behind(behind) => {
                behind.lock().take();
                let _ = app.busy.subscribe().wait_for(|n| *n == 0).await;
            }
        }
    }
}

/// The service's state and routes, without a listener.
fn build(
    config: ServiceConfig,
    crash_hook: Option<CrashHook>,
    peers: Option<reqwest::Client>,
) -> Result<(Arc<App>, Router), ServiceError> {
    let propagate = !config.bugs.has(PlantedBug::DropTraceparent);
    let peers = match peers {
        Some(client) => client,
        None => peer_client()?,
    };
    let app = Arc::new(App {
        store: Store::open(&config.database, config.store_latency)?,
        ids: ServiceIds::new(config.seed, config.generation),
        outbound: Outbound::new(peers, propagate),
        config,
        crash_hook,
        abandoned: watch::Sender::new(false),
        busy: watch::Sender::new(0),
    });
    Ok((app.clone(), routes::router(app)))
}

/// The service as a plain `Router`, for driving it in-process (`tower::ServiceExt::oneshot`)
/// where a test or benchmark wants the handlers to run in its own task.
pub fn router(config: ServiceConfig) -> Result<Router, ServiceError> {
    build(config, None, None).map(|(_, router)| router)
}

/// What every handler shares: the configuration, the store, the id streams, the HTTP client.
struct App {
    config: ServiceConfig,
    store: Store,
    ids: ServiceIds,
    outbound: Outbound,
    /// How to die at an armed crash point; `None`: crash points are ignored.
    crash_hook: Option<CrashHook>,
    /// Set once the service abandons its requests in flight (a crash, or a stop that waited
    /// long enough): every request's middleware drops its handler then.
    abandoned: watch::Sender<bool>,
    /// Requests in flight, counted by their middleware: what a service behind a front waits
    /// for when it stops.
    busy: watch::Sender<usize>,
}

impl App {
    /// Drops every request in flight where it waits, and every one that arrives from now on.
    fn abandon_requests(&self) {
        self.abandoned.send_replace(true);
    }
}

/// Request ids and booking uids, each from its own seeded stream so that neither depends on
/// the other (or on whether tracing is on).
struct ServiceIds {
    requests: Mutex<ChaCha8Rng>,
    uids: Mutex<ChaCha8Rng>,
}

impl ServiceIds {
    fn new(seed: u64, generation: u64) -> Self {
        // The first process draws what it always drew; each restart draws from a fresh stream.
        let restarted = match generation {
            0 => 0,
            n => trace::splitmix64(n ^ 0x4745_4e45),
        };
        let stream = |salt: u64| {
            Mutex::new(ChaCha8Rng::seed_from_u64(trace::splitmix64(
                seed ^ salt ^ restarted,
            )))
        };
        ServiceIds {
            requests: stream(0x5245_5155),
            uids: stream(0x5549_4453),
        }
    }

    fn draw(rng: &Mutex<ChaCha8Rng>, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    fn request_id(&self) -> String {
        Self::draw(&self.requests, 10)
    }

    fn booking_uid(&self) -> String {
        Self::draw(&self.uids, 16)
    }
}
