//! `baton schedule next`

use baton_core::model::{Schedule, parse_cron, parse_timezone};
use baton_core::spec::Catchup;

use crate::cli::ScheduleNextArgs;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) fn next(args: &ScheduleNextArgs, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    // The same checks and messages as `baton validate`.
    parse_cron(&args.cron).map_err(|e| {
        ExpectedError::Usage(format!(
            "invalid cron `{}`: {}",
            args.cron,
            e.trim_end_matches('.').to_lowercase()
        ))
    })?;
    parse_timezone(&args.timezone).map_err(|_| {
        ExpectedError::Usage(format!(
            "unknown time zone `{}`\n(hint: use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`)",
            args.timezone
        ))
    })?;
    let after = match &args.after {
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|_| {
            ExpectedError::Usage(format!(
                "`--after {text}` is not an RFC 3339 instant\n(hint: e.g. `2026-03-28T00:00:00Z` or `2026-03-28T01:00:00+01:00`)"
            ))
        })?,
        None => jiff::Timestamp::now(),
    };
    let schedule = Schedule::new(
        &args.cron,
        &args.timezone,
        Catchup::Latest,
        Default::default(),
    )
    .map_err(ExpectedError::Usage)?;
    let mut text = String::new();
    for t in schedule.next_times(after, args.count) {
        text.push_str(&t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string());
        text.push('\n');
    }
    out.print(&text)?;
    Ok(ExitStatus::Success)
}
