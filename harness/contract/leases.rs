//! What a service promises about its cron-run jobs when its process dies mid-job: leases on
//! virtual time, re-claims after a lease expires, the limit on them, and the crash points a
//! replay can arm to kill the service inside a job (CONTRACT.md §6.5).
//!
//! A claim leases each job it takes to the claiming process (its `TRACE_HARNESS_GENERATION`)
//! until a virtual instant; a later cron call takes a job whose lease has expired and runs it
//! again, in the same trace. So a delivery that reached its subscriber before a crash is sent
//! again after the lease: delivery is at least once, never exactly once.

use std::time::Duration;

use serde::Deserialize;

/// How long one job of a claim is leased for: a claim of `n` jobs leases each until its
/// instant plus `n ×` this, the longest the claiming cron call may take to reach and finish
/// them all. One webhook job takes at most 4 attempts' 10 s timeouts and 3.5 minutes of
/// backoff (4 m 10 s), so a live process never loses a lease to another cron call.
pub const JOB_LEASE: Duration = Duration::from_secs(5 * 60);

/// The most times one job is claimed. A job whose lease ran out (or was released) after its
/// last claim is not run again: the next cron call that takes it ends it `failed`, with
/// [`abandoned_reason`], in the job's span.
pub const MAX_JOB_CLAIMS: u32 = 3;

/// The instant a claim at `now_us` of `claimed` jobs leases them until, in virtual
/// microseconds.
pub fn lease_until_us(now_us: u64, claimed: usize) -> u64 {
    let per_job = u64::try_from(JOB_LEASE.as_micros()).unwrap_or(u64::MAX);
    now_us.saturating_add(per_job.saturating_mul(claimed as u64))
}

/// How a re-claimed job came back: its lease expired (the holder died, or never finished),
/// or the holder released it when it stopped cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// The lease ran out with the job still `running`.
    Expired,
    /// The holder stopped (SIGTERM, a restart step) with the job unfinished and gave it back.
    Released,
}

/// The warning a re-run job's span opens with: `Re-run after expired lease (attempt 2,
/// previous holder process 0)`. `attempt` is the claim's number, 2 for the first re-run.
pub fn rerun_message(how: Reclaim, attempt: u32, previous_holder: u64) -> String {
    let how = match how {
        Reclaim::Expired => "expired",
        Reclaim::Released => "released",
    };
    format!(
        "Re-run after {how} lease (attempt {attempt}, previous holder process {previous_holder})"
    )
}

/// Why a job claimed [`MAX_JOB_CLAIMS`] times without finishing ends failed:
/// `claimed 3 times without finishing (last holder process 2)`.
pub fn abandoned_reason(last_holder: u64) -> String {
    format!("claimed {MAX_JOB_CLAIMS} times without finishing (last holder process {last_holder})")
}

/// A point inside a cron-run job where a replay can make the service die
/// (`cron = "webhooks", crash = "after_send"`). The service learns it from the cron call's
/// [`CRASH`](super::headers::CRASH) header and, for the `job`-th job the call runs, dies there:
/// it stops at once, answers nothing, commits nothing more and exports no span still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// The claim is committed (every job of the call `running`, leased to this process) and
    /// the job has not started: a webhook job's span is not open, a reminder's e-mail not
    /// sent. The jobs before it in the call have finished and are committed.
    AfterClaim,
    /// The peer has answered the job's first send (the subscriber's first delivery attempt,
    /// or the reminder's e-mail; any answer, a timeout or refusal included), before the answer
    /// is logged, retried or committed. A delivery the subscriber accepted is then sent again
    /// after the lease expires.
    AfterSend,
    /// The job's outcome is decided and logged (every attempt made), and not yet committed:
    /// the process dies just before the transaction that records it.
    BeforeCommit,
}

impl CrashPoint {
    /// Every point, in the order a job passes them.
    pub const ALL: [CrashPoint; 3] = [
        CrashPoint::AfterClaim,
        CrashPoint::AfterSend,
        CrashPoint::BeforeCommit,
    ];

    /// The point's name, as scenarios and the crash header write it.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterClaim => "after_claim",
            CrashPoint::AfterSend => "after_send",
            CrashPoint::BeforeCommit => "before_commit",
        }
    }

    /// The point called `name`, if any.
    pub fn from_name(name: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A crash armed on one cron call: die at `point` of the `job`-th job (1-based) it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArmedCrash {
    /// Where in the job.
    pub point: CrashPoint,
    /// Which job of the call, counting from 1 in the order the call runs them (webhook jobs
    /// oldest first; reminders by booking, then seat).
    pub job: u32,
}

impl ArmedCrash {
    /// The crash header's value: `after_send` for the first job, `after_send; job=2` else.
    pub fn header_value(self) -> String {
        match self.job {
            1 => self.point.name().to_owned(),
            n => format!("{}; job={n}", self.point.name()),
        }
    }

    /// Reads the crash header's value; `None` if it is not one [`header_value`] writes.
    ///
    /// [`header_value`]: ArmedCrash::header_value
    pub fn from_header(value: &str) -> Option<ArmedCrash> {
        let mut parts = value.split(';').map(str::trim);
        let point = CrashPoint::from_name(parts.next()?)?;
        let job = match parts.next() {
            None => 1,
            Some(job) => job.strip_prefix("job=")?.parse().ok().filter(|n| *n >= 1)?,
        };
        match parts.next() {
            None => Some(ArmedCrash { point, job }),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_headers_round_trip_and_anything_else_arms_nothing() {
        for point in CrashPoint::ALL {
            for job in [1, 2, 17] {
                let armed = ArmedCrash { point, job };
                assert_eq!(ArmedCrash::from_header(&armed.header_value()), Some(armed));
            }
            let read: CrashPoint = serde_json::from_value(point.name().into()).unwrap();
            assert_eq!(read, point);
        }
        assert_eq!(
            ArmedCrash::from_header("after_send"),
            Some(ArmedCrash {
                point: CrashPoint::AfterSend,
                job: 1
            })
        );
        for bad in [
            "",
            "after-send",
            "after_send; job=0",
            "after_send; job=x",
            "after_send; run=2",
            "after_send; job=2; x",
        ] {
            assert_eq!(ArmedCrash::from_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_lease_covers_every_job_of_its_claim() {
        assert_eq!(lease_until_us(0, 1), 300_000_000);
        assert_eq!(lease_until_us(60_000_000, 3), 960_000_000);
        assert_eq!(lease_until_us(u64::MAX - 1, 2), u64::MAX);
        assert_eq!(
            rerun_message(Reclaim::Expired, 2, 0),
            "Re-run after expired lease (attempt 2, previous holder process 0)"
        );
        assert_eq!(
            abandoned_reason(2),
            "claimed 3 times without finishing (last holder process 2)"
        );
    }
}
