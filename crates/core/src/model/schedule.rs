//! A checked cron schedule in an IANA time zone.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use indexmap::IndexMap;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Serialize;

use crate::spec::Catchup;

/// How late a tick may be found and still count as on time rather than missed.
pub const ON_TIME: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Ticks a scheduler should still run after a pause, and how many it skips.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    pub ticks: Vec<Zoned>,
    pub dropped: usize,
    /// The latest tick at or before `now`, run or not: where the schedule now stands.
    pub latest: Option<Zoned>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    /// The cron as written.
    pub cron: String,
    /// IANA name of the zone the cron is read in.
    pub timezone: String,
    pub catchup: Catchup,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, serde_json::Value>,
    #[serde(skip)]
    parsed: Cron,
    #[serde(skip)]
    tz: TimeZone,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        (&self.cron, &self.timezone, self.catchup, &self.params)
            == (&other.cron, &other.timezone, other.catchup, &other.params)
    }
}

/// Parses a cron expression: 5 fields, an optional leading seconds field, or a nickname.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| e.to_string())
}

/// Looks up an IANA time zone by name.
pub fn parse_timezone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| e.to_string())
}

impl Schedule {
    pub fn new(
        cron: &str,
        timezone: &str,
        catchup: Catchup,
        params: IndexMap<String, serde_json::Value>,
    ) -> Result<Self, String> {
        Ok(Self {
            parsed: parse_cron(cron)?,
            tz: parse_timezone(timezone)?,
            cron: cron.to_owned(),
            timezone: timezone.to_owned(),
            catchup,
            params,
        })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first fire time strictly after `after`, in the schedule's zone. Wall-clock times that
    /// a DST change skips fire once at the first valid instant after the gap; repeated wall
    /// times fire once, following Vixie cron.
    pub fn next_after(&self, after: Timestamp) -> Option<Zoned> {
        self.parsed
            .find_next_occurrence(&after.to_zoned(self.tz.clone()), false)
            .ok()
    }

    /// The next `n` fire times strictly after `after`.
    pub fn next_times(&self, after: Timestamp, n: usize) -> Vec<Zoned> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = after;
        while out.len() < n {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            cursor = next.timestamp();
            out.push(next);
        }
        out
    }

    /// The ticks due between the last scheduled tick (`last`, exclusive) and `now` (inclusive)
    /// that the catch-up policy says to run: with `none` only a tick that is on time (at most
    /// [`ON_TIME`] old), with `latest` the most recent, with `all` every one. At most `cap` are
    /// returned (the most recent); `dropped` counts the rest.
    pub fn missed(&self, last: Timestamp, now: Timestamp, cap: usize) -> Missed {
        let mut ticks = Vec::new();
        let mut dropped = 0;
        let mut latest = None;
        let mut cursor = last;
        while let Some(next) = self.next_after(cursor) {
            if next.timestamp() > now {
                break;
            }
            cursor = next.timestamp();
            latest = Some(next.clone());
            match self.catchup {
                Catchup::None => {
                    let age = now.as_millisecond() - next.timestamp().as_millisecond();
                    dropped += ticks.len();
                    ticks.clear();
                    if i128::from(age) <= ON_TIME.as_millis() {
                        ticks.push(next);
                    } else {
                        dropped += 1;
                    }
                }
                Catchup::Latest => {
                    dropped += ticks.len();
                    ticks = vec![next];
                }
                Catchup::All => {
                    ticks.push(next);
                    if ticks.len() > cap {
                        ticks.remove(0);
                        dropped += 1;
                    }
                }
            }
        }
        Missed {
            ticks,
            dropped,
            latest,
        }
    }

    /// Every fire time in `[start, end]` (both inclusive), in the schedule's zone, DST rules
    /// as [`Schedule::next_after`]. Stops after `limit` ticks: `Err(limit)` then says the range
    /// holds more, so callers can refuse a range without enumerating all of it.
    pub fn ticks_between(
        &self,
        start: Timestamp,
        end: Timestamp,
        limit: usize,
    ) -> Result<Vec<Zoned>, usize> {
        let mut out = Vec::new();
        if end < start {
            return Ok(out);
        }
        // `next_after` is exclusive; one millisecond back makes `start` itself a candidate.
        let mut cursor = start - jiff::SignedDuration::from_millis(1);
        while let Some(next) = self.next_after(cursor) {
            if next.timestamp() > end {
                break;
            }
            if out.len() == limit {
                return Err(limit);
            }
            cursor = next.timestamp();
            out.push(next);
        }
        Ok(out)
    }

    /// The cron in words, e.g. "At 02:00".
    pub fn describe(&self) -> String {
        self.parsed.describe()
    }
}
