//! Crash points, test-only like the virtual clock: a cron call whose `x-virtual-crash` header
//! arms one ([`ArmedCrash`]) makes the service die at that point of that job, so a replay can
//! show what its leases do when a process dies mid-job (CONTRACT.md §6.5).
//!
//! The service honours the header only when whoever started it gave it a way to die, a
//! [`CrashHook`]: the replay's runner (in-process: it is told, and stops the service as a
//! restart does, dropping every request still in flight) or `serve --contract` (it exports what
//! has closed and exits at once). A plain `serve` has none and ignores the header. Dying is
//! never skipping code: at the armed point the job's task calls the hook and then waits
//! forever, and nothing after that point runs in this process.

use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;

use super::http::header;
use crate::contract::headers::CRASH;
use crate::contract::{ArmedCrash, CrashPoint};

/// What the service calls when it reaches an armed crash point, before it stops doing
/// anything: the runner is told, or the process exits.
pub(crate) type CrashHook = Arc<dyn Fn(ArmedCrash) + Send + Sync>;

/// The crash armed on one cron call, if any, with the hook to die by.
pub(super) struct CronCrash {
    armed: Option<(ArmedCrash, CrashHook)>,
}

tokio::task_local! {
    /// The crash armed on the job running in this task, for [`reached`] to find wherever the
    /// job's code reaches a point (the send is in `outbound.rs`).
    static ARMED: (ArmedCrash, CrashHook);
}

impl CronCrash {
    /// The crash a cron call's headers arm; none without a hook or a readable header.
    pub(super) fn of(hook: Option<&CrashHook>, headers: &HeaderMap) -> CronCrash {
        let armed = hook.and_then(|hook| {
            let armed = ArmedCrash::from_header(header(headers, CRASH)?)?;
            Some((armed, hook.clone()))
        });
        CronCrash { armed }
    }

    /// Before the call's `n`-th job (1-based) starts: dies here if armed `after_claim` for it.
    pub(super) async fn job_starts(&self, n: u32) {
        if let Some((armed, hook)) = &self.armed {
            if armed.job == n && armed.point == CrashPoint::AfterClaim {
                match die(*armed, hook).await {}
            }
        }
    }

    /// Runs the `n`-th job's `work` where [`reached`] finds its crash, if it is the armed one.
    pub(super) async fn run<F: Future>(&self, n: u32, work: F) -> F::Output {
        match &self.armed {
            Some((armed, hook)) if armed.job == n => {
                ARMED.scope((*armed, hook.clone()), work).await
            }
            _ => work.await,
        }
    }
}

/// The current job has reached `point`: dies if its crash is armed there; otherwise nothing.
pub(super) async fn reached(point: CrashPoint) {
    let armed = ARMED
        .try_with(|(armed, hook)| (armed.point == point).then(|| (*armed, hook.clone())))
        .ok()
        .flatten();
    if let Some((armed, hook)) = armed {
        match die(armed, &hook).await {}
    }
}

/// Calls the hook and never returns: whoever the hook tells stops the service, dropping this
/// task where it waits.
async fn die(armed: ArmedCrash, hook: &CrashHook) -> std::convert::Infallible {
    hook(armed);
    std::future::pending().await
}
