//! Cron schedules against an independent reference: a brute-force scan of wall-clock minutes
//! that applies the Open Cron Pattern Specification's DST rules, checked on real transitions
//! and on random patterns.

use baton_core::model::Schedule;
use baton_core::spec::Catchup;
use indexmap::IndexMap;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;

/// One field of a 5-field cron: the values it allows, and whether it was a wildcard.
#[derive(Debug, Clone)]
struct Field {
    text: String,
    values: Vec<u32>,
    wildcard: bool,
}

impl Field {
    fn any(lo: u32, hi: u32) -> Self {
        Self {
            text: "*".into(),
            values: (lo..=hi).collect(),
            wildcard: true,
        }
    }
    fn list(values: Vec<u32>) -> Self {
        let text = values
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Self {
            text,
            values,
            wildcard: false,
        }
    }
    fn step(lo: u32, hi: u32, step: u32) -> Self {
        Self {
            text: format!("*/{step}"),
            values: (lo..=hi).step_by(step as usize).collect(),
            wildcard: true,
        }
    }
    fn has(&self, v: u32) -> bool {
        self.values.contains(&v)
    }
}

#[derive(Debug, Clone)]
struct Cron {
    minute: Field,
    hour: Field,
    dom: Field,
    dow: Field,
}

impl Cron {
    fn text(&self) -> String {
        format!(
            "{} {} {} * {}",
            self.minute.text, self.hour.text, self.dom.text, self.dow.text
        )
    }

    /// OCPS: a job is fixed-time when minute and hour are single values.
    fn fixed(&self) -> bool {
        !self.minute.wildcard
            && self.minute.values.len() == 1
            && !self.hour.wildcard
            && self.hour.values.len() == 1
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.dom.has(d.day().unsigned_abs().into());
        let dow = self
            .dow
            .has(d.weekday().to_sunday_zero_offset().unsigned_abs().into());
        // Vixie cron: when both day fields are restricted, either may match.
        match (self.dom.wildcard, self.dow.wildcard) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first `n` fire times after `after`, by scanning every wall-clock minute.
    fn reference(&self, tz: &TimeZone, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out: Vec<Timestamp> = Vec::new();
        let mut day = after.to_zoned(tz.clone()).date().yesterday().expect("date");
        for _ in 0..800 {
            if self.day_matches(day) {
                for &h in &self.hour.values {
                    for &m in &self.minute.values {
                        let civil =
                            DateTime::from_parts(day, jiff::civil::time(h as i8, m as i8, 0, 0));
                        let amb = tz.to_ambiguous_zoned(civil);
                        match amb.offset() {
                            AmbiguousOffset::Unambiguous { offset } => {
                                out.push(offset.to_timestamp(civil).expect("instant"));
                            }
                            // In a gap a fixed-time job runs when the gap ends; others skip.
                            AmbiguousOffset::Gap {
                                after: off_after, ..
                            } => {
                                if self.fixed() {
                                    let probe = off_after.to_timestamp(civil).expect("instant");
                                    let end =
                                        tz.following(probe).next().expect("transition").timestamp();
                                    out.push(end);
                                }
                            }
                            // In a repeated hour a fixed-time job runs once, others twice.
                            AmbiguousOffset::Fold {
                                before,
                                after: off_after,
                            } => {
                                out.push(before.to_timestamp(civil).expect("instant"));
                                if !self.fixed() {
                                    out.push(off_after.to_timestamp(civil).expect("instant"));
                                }
                            }
                        }
                    }
                }
            }
            day = day.tomorrow().expect("date");
            out.sort();
            out.dedup();
            if out.iter().filter(|t| **t > after).count() >= n {
                break;
            }
        }
        out.into_iter().filter(|t| *t > after).take(n).collect()
    }
}

/// The reference's answer for a cron written as text (only the shapes the tables use).
fn reference_for(minute: Field, hour: Field, tz: &str, after: &str, n: usize) -> Vec<String> {
    let cron = Cron {
        minute,
        hour,
        dom: Field::any(1, 31),
        dow: Field::any(0, 6),
    };
    let tz = TimeZone::get(tz).expect("zone");
    cron.reference(&tz, ts(after), n)
        .into_iter()
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect()
}

fn schedule(cron: &str, tz: &str) -> Schedule {
    Schedule::new(cron, tz, Catchup::Latest, IndexMap::new()).expect("valid schedule")
}

fn rfc3339(times: &[jiff::Zoned]) -> Vec<String> {
    times
        .iter()
        .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn spring_forward_fixed_time_runs_once_at_the_end_of_the_gap() {
    // Europe/Berlin skips 02:00-03:00 on 2026-03-29.
    let s = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        rfc3339(&s.next_times(ts("2026-03-27T12:00:00Z"), 4)),
        vec![
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ]
    );
    assert_eq!(
        reference_for(
            Field::list(vec![30]),
            Field::list(vec![2]),
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            4
        ),
        rfc3339(&s.next_times(ts("2026-03-27T12:00:00Z"), 4))
    );
}

#[test]
fn fall_back_fixed_time_runs_once_but_intervals_run_in_both_hours() {
    // Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
    let fixed = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        rfc3339(&fixed.next_times(ts("2026-10-24T12:00:00Z"), 2)),
        vec!["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    let every_half_hour = schedule("*/30 2 * * *", "Europe/Berlin");
    assert_eq!(
        rfc3339(&every_half_hour.next_times(ts("2026-10-24T23:00:00Z"), 4)),
        vec![
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
        ]
    );
    assert_eq!(
        reference_for(
            Field::step(0, 59, 30),
            Field::list(vec![2]),
            "Europe/Berlin",
            "2026-10-24T23:00:00Z",
            4
        ),
        rfc3339(&every_half_hour.next_times(ts("2026-10-24T23:00:00Z"), 4))
    );
    assert_eq!(
        reference_for(
            Field::list(vec![30]),
            Field::list(vec![2]),
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            2
        ),
        rfc3339(&fixed.next_times(ts("2026-10-24T12:00:00Z"), 2))
    );
}

#[test]
fn catch_up_policies() {
    let now = ts("2026-01-10T12:00:00Z");
    let last = ts("2026-01-05T12:00:00Z");
    let daily = |c| Schedule::new("0 2 * * *", "UTC", c, IndexMap::new()).expect("valid");
    let none = daily(Catchup::None).missed(last, now, 100);
    assert_eq!((none.ticks.len(), none.dropped), (0, 5));
    // An on-time tick runs under every policy.
    let on_time = daily(Catchup::None).missed(last, ts("2026-01-10T02:00:30Z"), 100);
    assert_eq!(rfc3339(&on_time.ticks), vec!["2026-01-10T02:00:00+00:00"]);
    assert_eq!(on_time.dropped, 4);
    let latest = daily(Catchup::Latest).missed(last, now, 100);
    assert_eq!(rfc3339(&latest.ticks), vec!["2026-01-10T02:00:00+00:00"]);
    assert_eq!(latest.dropped, 4);
    let all = daily(Catchup::All).missed(last, now, 3);
    assert_eq!(
        rfc3339(&all.ticks),
        vec![
            "2026-01-08T02:00:00+00:00",
            "2026-01-09T02:00:00+00:00",
            "2026-01-10T02:00:00+00:00"
        ]
    );
    assert_eq!(
        all.dropped, 2,
        "`all` is bounded by the cap, keeping the most recent"
    );
}

#[test]
fn ticks_between_are_inclusive_and_follow_dst() {
    let daily = schedule("0 0 * * *", "UTC");
    assert_eq!(
        rfc3339(
            &daily
                .ticks_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-03T00:00:00Z"), 10)
                .expect("within the limit")
        ),
        vec![
            "2026-01-01T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00",
        ],
        "both ends are inclusive"
    );
    assert_eq!(
        daily.ticks_between(ts("2026-01-01T00:00:01Z"), ts("2026-01-01T23:59:59Z"), 10),
        Ok(Vec::new())
    );
    assert_eq!(
        daily.ticks_between(ts("2026-01-03T00:00:00Z"), ts("2026-01-01T00:00:00Z"), 10),
        Ok(Vec::new()),
        "an end before the start holds nothing"
    );
    // The spring-forward gap: 02:30 does not exist on 2026-03-29 and fires once at 03:00.
    let berlin = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        rfc3339(
            &berlin
                .ticks_between(ts("2026-03-28T00:00:00Z"), ts("2026-03-30T23:00:00Z"), 10)
                .expect("within the limit")
        ),
        vec![
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ]
    );
    // The fall-back day has 25 hours, so an hourly cron fires 25 times, and a fixed time once.
    let hourly = schedule("0 * * * *", "Europe/Berlin");
    let day = hourly
        .ticks_between(ts("2026-10-24T22:00:00Z"), ts("2026-10-25T22:59:59Z"), 100)
        .expect("within the limit");
    assert_eq!(day.len(), 25);
    assert_eq!(
        rfc3339(&day[2..4]),
        vec!["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    );
    assert_eq!(
        berlin
            .ticks_between(ts("2026-10-24T22:00:00Z"), ts("2026-10-25T22:59:59Z"), 10)
            .map(|t| t.len()),
        Ok(1)
    );
    // Over the limit: refused, without enumerating the whole range.
    assert_eq!(
        schedule("* * * * *", "UTC").ticks_between(
            ts("2026-01-01T00:00:00Z"),
            ts("2036-01-01T00:00:00Z"),
            10_000
        ),
        Err(10_000)
    );
    assert_eq!(
        schedule("* * * * *", "UTC")
            .ticks_between(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:09:00Z"), 10)
            .map(|t| t.len()),
        Ok(10),
        "exactly the limit is allowed"
    );
}

fn field(lo: u32, hi: u32) -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::any(lo, hi)),
        (lo..=hi).prop_map(|v| Field::list(vec![v])),
        prop::collection::btree_set(lo..=hi, 2..4)
            .prop_map(|s| Field::list(s.into_iter().collect())),
        (2..=15u32).prop_map(move |step| Field::step(lo, hi, step)),
    ]
}

fn cron() -> impl Strategy<Value = Cron> {
    (
        field(0, 59),
        // Hours near the DST transitions of the zones below, often enough to hit them.
        prop_oneof![field(0, 23), (0..=3u32).prop_map(|v| Field::list(vec![v]))],
        prop_oneof![
            Just(Field::any(1, 31)),
            (1..=28u32).prop_map(|v| Field::list(vec![v]))
        ],
        prop_oneof![
            Just(Field::any(0, 6)),
            (0..=6u32).prop_map(|v| Field::list(vec![v]))
        ],
    )
        .prop_map(|(minute, hour, dom, dow)| Cron {
            minute,
            hour,
            dom,
            dow,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn next_times_match_the_reference(
        cron in cron(),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
        // Start a little before a DST change in the northern or southern hemisphere.
        start in prop::sample::select(vec!["2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-10-24T20:00:00Z", "2026-10-31T20:00:00Z", "2026-04-04T10:00:00Z", "2026-10-03T10:00:00Z"]),
        offset_minutes in 0i64..600,
    ) {
        let tz = TimeZone::get(zone).expect("zone");
        let after = ts(start).checked_add(offset_minutes.minutes()).expect("time");
        let ours: Vec<Timestamp> = schedule(&cron.text(), zone).next_times(after, 6).iter().map(jiff::Zoned::timestamp).collect();
        let reference = cron.reference(&tz, after, 6);
        prop_assert_eq!(ours, reference, "cron `{}` in {} after {}", cron.text(), zone, after);
    }
}

fn with_catchup(cron: &str, catchup: Catchup) -> Schedule {
    Schedule::new(cron, "UTC", catchup, IndexMap::new()).expect("valid schedule")
}

#[test]
fn catchup_none_counts_every_dropped_tick_of_a_seconds_cron() {
    // Every 10 s for 5 minutes: 30 ticks, of which only the one at `now` is run; the seven
    // within `ON_TIME` replace each other, so the other 29 are dropped.
    let s = with_catchup("*/10 * * * * *", Catchup::None);
    let missed = s.missed(ts("2026-01-10T12:00:00Z"), ts("2026-01-10T12:05:00Z"), 100);
    assert_eq!(rfc3339(&missed.ticks), vec!["2026-01-10T12:05:00+00:00"]);
    assert_eq!(missed.dropped, 29);
    assert_eq!(
        missed.latest.map(|z| z.timestamp()),
        Some(ts("2026-01-10T12:05:00Z"))
    );
    let latest = with_catchup("*/10 * * * * *", Catchup::Latest).missed(
        ts("2026-01-10T12:00:00Z"),
        ts("2026-01-10T12:05:00Z"),
        100,
    );
    assert_eq!((latest.ticks.len(), latest.dropped), (1, 29));
}

#[test]
fn a_tick_exactly_at_now_is_due() {
    let at = ts("2026-01-10T02:00:00Z");
    for catchup in [Catchup::None, Catchup::Latest, Catchup::All] {
        let missed = with_catchup("0 2 * * *", catchup).missed(ts("2026-01-09T03:00:00Z"), at, 10);
        assert_eq!(
            rfc3339(&missed.ticks),
            vec!["2026-01-10T02:00:00+00:00"],
            "{catchup:?}"
        );
        assert_eq!(missed.dropped, 0, "{catchup:?}");
        assert_eq!(
            missed.latest.map(|z| z.timestamp()),
            Some(at),
            "{catchup:?}"
        );
    }
    // One millisecond earlier nothing is due yet.
    let early = with_catchup("0 2 * * *", Catchup::All).missed(
        ts("2026-01-09T03:00:00Z"),
        ts("2026-01-10T01:59:59.999Z"),
        10,
    );
    assert_eq!(
        (early.ticks.len(), early.dropped, early.latest),
        (0, 0, None)
    );
}

#[test]
fn catchup_none_runs_a_tick_exactly_on_time_old_and_drops_an_older_one() {
    let s = with_catchup("0 2 * * *", Catchup::None);
    let last = ts("2026-01-09T03:00:00Z");
    let on_time = s.missed(last, ts("2026-01-10T02:01:00Z"), 10);
    assert_eq!(
        (on_time.ticks.len(), on_time.dropped),
        (1, 0),
        "exactly `ON_TIME` late"
    );
    let late = s.missed(last, ts("2026-01-10T02:01:00.001Z"), 10);
    assert_eq!(
        (late.ticks.len(), late.dropped),
        (0, 1),
        "a millisecond later"
    );
    assert!(late.latest.is_some(), "the schedule still moves past it");
    assert_eq!(baton_core::model::ON_TIME.as_secs(), 60);
}

#[test]
fn ticks_between_one_instant_holds_that_instant_if_it_is_a_tick() {
    let daily = schedule("0 0 * * *", "UTC");
    let midnight = ts("2026-01-02T00:00:00Z");
    assert_eq!(
        rfc3339(
            &daily
                .ticks_between(midnight, midnight, 10)
                .expect("within the limit")
        ),
        vec!["2026-01-02T00:00:00+00:00"]
    );
    let noon = ts("2026-01-02T12:00:00Z");
    assert_eq!(daily.ticks_between(noon, noon, 10), Ok(Vec::new()));
    assert_eq!(
        daily.ticks_between(midnight, midnight, 0),
        Err(0),
        "a limit of zero refuses any tick"
    );
}

#[test]
fn schedules_are_equal_exactly_when_what_was_written_is_equal() {
    let params = |v: i64| IndexMap::from([("n".to_owned(), serde_json::json!(v))]);
    let make =
        |cron: &str, tz: &str, catchup, p| Schedule::new(cron, tz, catchup, p).expect("valid");
    let base = make("0 2 * * *", "UTC", Catchup::Latest, params(1));
    assert_eq!(base, make("0 2 * * *", "UTC", Catchup::Latest, params(1)));
    for (what, other) in [
        ("cron", make("0 3 * * *", "UTC", Catchup::Latest, params(1))),
        (
            "timezone",
            make("0 2 * * *", "Europe/Berlin", Catchup::Latest, params(1)),
        ),
        ("catchup", make("0 2 * * *", "UTC", Catchup::All, params(1))),
        (
            "params",
            make("0 2 * * *", "UTC", Catchup::Latest, params(2)),
        ),
        (
            "no params",
            make("0 2 * * *", "UTC", Catchup::Latest, IndexMap::new()),
        ),
    ] {
        assert_ne!(base, other, "{what} differs");
    }
}

#[test]
fn schedules_keep_their_zone_and_describe_their_cron() {
    let s = schedule("0 2 * * *", "Europe/Berlin");
    assert_eq!(s.time_zone().iana_name(), Some("Europe/Berlin"));
    assert_eq!(s.describe(), "At 02:00.");
    assert_eq!(
        rfc3339(&s.next_times(ts("2026-01-01T00:00:00Z"), 0)),
        Vec::<String>::new()
    );
}

#[test]
fn bad_crons_and_zones_are_refused() {
    for cron in ["61 * * * *", "* * *", "0 0 0 1 1 * 2026", "every day"] {
        assert!(baton_core::model::parse_cron(cron).is_err(), "{cron}");
        assert!(
            Schedule::new(cron, "UTC", Catchup::Latest, IndexMap::new()).is_err(),
            "{cron}"
        );
    }
    assert!(
        baton_core::model::parse_cron("*/10 * * * * *").is_ok(),
        "seconds are optional"
    );
    assert!(baton_core::model::parse_cron("@daily").is_ok());
    assert!(baton_core::model::parse_timezone("Mars/Olympus_Mons").is_err());
    assert!(
        Schedule::new(
            "0 2 * * *",
            "Mars/Olympus_Mons",
            Catchup::Latest,
            IndexMap::new()
        )
        .is_err()
    );
    assert_eq!(
        baton_core::model::parse_timezone("Asia/Kolkata")
            .expect("zone")
            .iana_name(),
        Some("Asia/Kolkata")
    );
}
