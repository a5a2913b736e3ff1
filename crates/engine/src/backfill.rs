//! Backfills: one run per schedule tick over a range of logical dates, all created in one
//! transaction and admitted at most `parallelism` at a time (their own admission group).

use baton_core::ids::{BackfillId, RunId};
use baton_core::model::{Pipeline, resolve_params};
use baton_core::spec::Overlap;
use baton_store::{Admission, BackfillRecord, Store};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use crate::clock::now_ms;
use crate::launch::{RunRequest, new_run};

/// A backfill never creates more runs than this; a wider range is refused.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// A request to backfill a pipeline over `[start, end]`.
#[derive(Debug)]
pub struct BackfillRequest<'a> {
    pub pipeline: &'a Pipeline,
    /// The definition's source text, which every run is pinned to.
    pub source: &'a str,
    pub path: Option<String>,
    pub base_dir: String,
    /// Params of every run, over the schedule's own `params`.
    pub params: Map<String, Value>,
    /// Which of the pipeline's schedules gives the ticks.
    pub schedule: usize,
    /// RFC 3339, a local date-time, or a date (`2026-01-01`) read in the schedule's zone; a
    /// date as `end` means the end of that day.
    pub start: String,
    pub end: String,
    /// Runs active at once; by default the pipeline's `max_active_runs`, else 1.
    pub parallelism: Option<u32>,
    pub idempotency_key: Option<String>,
}

/// What `create_backfill` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBackfill {
    pub id: BackfillId,
    /// False when the idempotency key matched an earlier backfill, returned instead.
    pub new: bool,
    /// The runs created, in tick order (none when not new).
    pub runs: Vec<RunId>,
}

/// Why a backfill was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    #[error(
        "pipeline `{0}` has no schedule to backfill\n(hint: a backfill runs the ticks of a `schedule:`; add one, or trigger runs by hand)"
    )]
    NoSchedule(String),
    #[error(
        "pipeline `{pipeline}` has no schedule {index}\n(hint: it has {count}, numbered from 0)"
    )]
    NoSuchSchedule {
        pipeline: String,
        index: usize,
        count: usize,
    },
    #[error(
        "`{field}` is not a time: `{value}`\n(hint: use RFC 3339 such as `2026-01-01T00:00:00Z`, or a date such as `2026-01-01`)"
    )]
    BadTime { field: &'static str, value: String },
    #[error("the range ends (`{end}`) before it starts (`{start}`)")]
    EndBeforeStart { start: String, end: String },
    #[error(
        "the range holds more than {limit} ticks of `{cron}`\n(hint: narrow the range, or split it into several backfills)"
    )]
    TooManyTicks { limit: usize, cron: String },
    #[error("the range holds no tick of `{cron}` ({timezone})")]
    NoTicks { cron: String, timezone: String },
    #[error("`parallelism` must be at least 1")]
    ZeroParallelism,
    #[error("{0}")]
    Params(String),
    #[error("{0}")]
    Store(#[from] baton_store::Error),
}

/// Reads a range bound: an instant, or a wall-clock date-time or date in `tz`. A date as the
/// end of the range means the last instant of that day, so `end: 2026-01-03` includes it.
fn parse_bound(
    field: &'static str,
    text: &str,
    tz: &TimeZone,
    end: bool,
) -> Result<Timestamp, BackfillError> {
    let bad = || BackfillError::BadTime {
        field,
        value: text.to_owned(),
    };
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        // A date alone parses as a date-time at midnight; only a bare date means a whole day.
        let whole_day = end && !text.trim().contains(['T', 't', ' ']);
        let local = if whole_day {
            dt.date()
                .tomorrow()
                .map_err(|_| bad())?
                .to_datetime(jiff::civil::Time::midnight())
        } else {
            dt
        };
        let at = local.to_zoned(tz.clone()).map_err(|_| bad())?.timestamp();
        return Ok(if whole_day {
            at - jiff::SignedDuration::from_millis(1)
        } else {
            at
        });
    }
    Err(bad())
}

/// Creates a backfill and all its runs (queued, trigger `backfill`, one per tick, logical date
/// the tick). The same idempotency key returns the earlier backfill and creates nothing. The
/// caller drives the runs; the store admits at most `parallelism` of them at once.
pub async fn create_backfill(
    store: &dyn Store,
    req: BackfillRequest<'_>,
) -> Result<CreatedBackfill, BackfillError> {
    let p = req.pipeline;
    let schedule = match p.schedules.get(req.schedule) {
        Some(s) => s,
        None if p.schedules.is_empty() => return Err(BackfillError::NoSchedule(p.id.to_string())),
        None => {
            return Err(BackfillError::NoSuchSchedule {
                pipeline: p.id.to_string(),
                index: req.schedule,
                count: p.schedules.len(),
            });
        }
    };
    let tz = schedule.time_zone();
    let start = parse_bound("start", &req.start, tz, false)?;
    let end = parse_bound("end", &req.end, tz, true)?;
    if end < start {
        return Err(BackfillError::EndBeforeStart {
            start: req.start,
            end: req.end,
        });
    }
    let ticks = schedule
        .ticks_between(start, end, MAX_BACKFILL_RUNS)
        .map_err(|limit| BackfillError::TooManyTicks {
            limit,
            cron: schedule.cron.clone(),
        })?;
    if ticks.is_empty() {
        return Err(BackfillError::NoTicks {
            cron: schedule.cron.clone(),
            timezone: schedule.timezone.clone(),
        });
    }
    let parallelism = req
        .parallelism
        .or(p.concurrency.max_active_runs)
        .unwrap_or(1);
    if parallelism == 0 {
        return Err(BackfillError::ZeroParallelism);
    }
    // The ticks stand for the schedule's runs: its params, then the request's over them.
    let mut params: Map<String, Value> = schedule.params.clone().into_iter().collect();
    params.extend(req.params);
    let params = resolve_params(&p.params, params)
        .map_err(|problems| BackfillError::Params(problems.join("\n")))?;

    let id = BackfillId::from_string(format!(
        "bf_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    let created_at = now_ms();
    // Monotonic ids: runs are admitted in id order, which is then tick order.
    let mut ids = ulid::Generator::new();
    let mut runs = Vec::with_capacity(ticks.len());
    for tick in &ticks {
        let run_id = ids
            .generate()
            .map(|u| RunId::from_string(u.to_string().to_lowercase()))
            .unwrap_or_else(|_| RunId::from_string(ulid::Ulid::new().to_string().to_lowercase()));
        let run = new_run(
            RunRequest {
                pipeline: p,
                source: req.source,
                path: req.path.clone(),
                base_dir: req.base_dir.clone(),
                params: params.clone(),
                trigger: baton_core::state::RunTrigger::Backfill,
                logical_date: Some(tick.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
                idempotency_key: Some(format!(
                    "backfill:{id}:{}",
                    tick.timestamp().as_millisecond()
                )),
                admission: Some(Admission {
                    group: id.admission_group(),
                    limit: parallelism,
                    overlap: Overlap::Queue,
                }),
                backfill_id: Some(id.clone()),
                no_cache: false,
            },
            run_id,
            created_at,
        )
        .map_err(|e| BackfillError::Params(e.to_string()))?;
        runs.push(run);
    }
    let record = BackfillRecord {
        id: id.clone(),
        namespace: p.id.namespace.to_string(),
        pipeline: p.id.name.to_string(),
        version: p.version.to_string(),
        schedule: u32::try_from(req.schedule).unwrap_or(u32::MAX),
        start: req.start,
        end: req.end,
        parallelism,
        params: Value::Object(params),
        runs: u64::try_from(runs.len()).unwrap_or(u64::MAX),
        idempotency_key: req.idempotency_key,
        created_at,
    };
    let stored = store.create_backfill(&record, &runs).await?;
    if stored != id {
        return Ok(CreatedBackfill {
            id: stored,
            new: false,
            runs: Vec::new(),
        });
    }
    Ok(CreatedBackfill {
        id,
        new: true,
        runs: runs.into_iter().map(|r| r.id).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_instants_dates_and_local_times() {
        let tz = TimeZone::get("Europe/Berlin").expect("zone");
        let at = |text, end| parse_bound("start", text, &tz, end).map(|t| t.to_string());
        assert_eq!(
            at("2026-01-01T05:00:00Z", false).expect("rfc 3339"),
            "2026-01-01T05:00:00Z"
        );
        assert_eq!(
            at("2026-01-01", false).expect("date"),
            "2026-01-01T00:00:00+01:00[Europe/Berlin]"
                .parse::<jiff::Zoned>()
                .expect("zoned")
                .timestamp()
                .to_string()
        );
        // A date as the end is the whole day.
        assert_eq!(
            at("2026-01-01", true).expect("date"),
            "2026-01-01T22:59:59.999Z"
        );
        assert_eq!(
            at("2026-07-01T06:30:00", true).expect("local"),
            "2026-07-01T04:30:00Z"
        );
        assert!(matches!(
            at("yesterday", false),
            Err(BackfillError::BadTime { field: "start", .. })
        ));
    }
}
