//! Cron expressions in words for the common shapes ("at 02:30 every day"); anything else
//! falls back to croner's wording with the raw expression.

use baton_core::model::Schedule;

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The schedule in words, with its zone: "at 02:30 every day (Europe/Berlin)".
pub(crate) fn describe(schedule: &Schedule) -> String {
    let words = common(&schedule.cron)
        .unwrap_or_else(|| format!("{} (`{}`)", schedule.describe(), schedule.cron));
    format!("{words} ({})", schedule.timezone)
}

fn number(field: &str, max: u32) -> Option<u32> {
    field.parse().ok().filter(|n| *n <= max)
}

fn day(field: &str) -> Option<usize> {
    let names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(field))
        .or_else(|| number(field, 7).map(|n| n as usize % 7))
}

/// The words for a five-field cron of a common shape, or `None`.
pub(crate) fn common(cron: &str) -> Option<String> {
    let cron = match cron.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    if *month != "*" {
        if let (Some(m), Some(h), Some(d), Some(mo)) = (
            number(minute, 59),
            number(hour, 23),
            number(dom, 31),
            number(month, 12),
        ) && *dow == "*"
            && mo >= 1
        {
            const MONTHS: [&str; 12] = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            return Some(format!(
                "at {h:02}:{m:02} on {} {d} every year",
                MONTHS[mo as usize - 1]
            ));
        }
        return None;
    }
    match (*minute, *hour, *dom, *dow) {
        ("*", "*", "*", "*") => return Some("every minute".into()),
        (m, "*", "*", "*") if m.starts_with("*/") => {
            let n = number(&m[2..], 59)?;
            return Some(format!("every {n} minutes"));
        }
        (m, "*", "*", "*") => {
            let m = number(m, 59)?;
            return Some(if m == 0 {
                "every hour, on the hour".into()
            } else {
                format!("at minute {m} of every hour")
            });
        }
        (m, h, "*", "*") if h.starts_with("*/") => {
            let m = number(m, 59)?;
            let n = number(&h[2..], 23)?;
            return Some(format!("at minute {m} every {n} hours"));
        }
        _ => {}
    }
    let at = format!("at {:02}:{:02}", number(hour, 23)?, number(minute, 59)?);
    match (*dom, *dow) {
        ("*", "*") => Some(format!("{at} every day")),
        ("*", "1-5" | "MON-FRI" | "mon-fri") => Some(format!("{at} on weekdays")),
        ("*", "0,6" | "6,0" | "SAT,SUN" | "sat,sun") => Some(format!("{at} on weekends")),
        ("*", days) => {
            let names: Option<Vec<&str>> =
                days.split(',').map(|d| day(d).map(|i| DAYS[i])).collect();
            let names = names?;
            Some(match names.as_slice() {
                [one] => format!("{at} every {one}"),
                many => format!("{at} every {}", many.join(", ")),
            })
        }
        (d, "*") => {
            let d = number(d, 31).filter(|d| *d >= 1)?;
            Some(format!("{at} on day {d} of every month"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::common;

    #[test]
    fn common_shapes_in_words() {
        let cases = [
            ("30 2 * * *", Some("at 02:30 every day")),
            ("0 9 * * 1-5", Some("at 09:00 on weekdays")),
            ("0 9 * * MON", Some("at 09:00 every Monday")),
            ("0 9 * * 1,3", Some("at 09:00 every Monday, Wednesday")),
            ("15 6 1 * *", Some("at 06:15 on day 1 of every month")),
            ("*/15 * * * *", Some("every 15 minutes")),
            ("* * * * *", Some("every minute")),
            ("0 * * * *", Some("every hour, on the hour")),
            ("5 * * * *", Some("at minute 5 of every hour")),
            ("0 */6 * * *", Some("at minute 0 every 6 hours")),
            ("@daily", Some("at 00:00 every day")),
            ("0 0 25 12 *", Some("at 00:00 on December 25 every year")),
            ("0 9-17 * * *", None),
            ("0 0 1 * 1", None),
            ("not a cron", None),
        ];
        for (cron, want) in cases {
            assert_eq!(common(cron).as_deref(), want, "{cron}");
        }
    }
}
