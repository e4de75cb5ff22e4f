//! What one thread keeps from replay to replay of the in-process service: the runtime replays
//! run on, the front every replay's service starts behind, and the HTTP clients (the caller's
//! and the service's own, to its peers) with the connections they keep open.
//!
//! A replay still starts from nothing that matters to it: a new store and dispatcher, a new
//! database, new mock state, a new service process. What carries over is transport only:
//! sockets that would otherwise be bound, connected and closed once or more per replay, each
//! closed one then waiting a minute in TIME_WAIT (`benches/NOTES.md`). The mocks come from
//! wiremock's pool, which keeps its servers across replays the same way, so the service's
//! connections to them are kept too.

use std::cell::RefCell;

use super::ReplayError;
use crate::booking::{self, Front, ServiceError};

/// One thread's runtime, front and clients.
pub(super) struct Host {
    /// A current-thread runtime: every task of a replay runs on this thread, under the
    /// replay's dispatcher.
    pub(super) runtime: tokio::runtime::Runtime,
    /// Where each replay's service listens, served on `runtime`.
    pub(super) front: Front,
    /// The caller's client: the replay's requests to the service.
    pub(super) caller: reqwest::Client,
    /// The service's client to its peers (the mocks), shared by every service behind `front`.
    pub(super) peers: reqwest::Client,
}

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
}

impl Host {
    fn new() -> Result<Host, ReplayError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplayError::Runtime)?;
        let front = runtime
            .block_on(Front::bind())
            .map_err(ServiceError::from)?;
        Ok(Host {
            runtime,
            front,
            caller: reqwest::Client::builder()
                .build()
                .map_err(|e| ReplayError::Client(e.to_string()))?,
            peers: booking::peer_client()?,
        })
    }

    /// Runs `f` with this thread's host, made on first use. A replay that panics takes the
    /// host with it: the next one on this thread starts a new runtime, front and clients
    /// rather than share whatever the panic left half done.
    pub(super) fn with<R>(f: impl FnOnce(&Host) -> R) -> Result<R, ReplayError> {
        let host = match HOST.with(|cell| cell.borrow_mut().take()) {
            Some(host) => host,
            None => Host::new()?,
        };
        let result = f(&host);
        HOST.with(|cell| *cell.borrow_mut() = Some(host));
        Ok(result)
    }
}
