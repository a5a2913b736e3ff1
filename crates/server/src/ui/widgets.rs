//! Small pieces every page uses: states (with an icon and a word, not only a colour), times
//! (relative, absolute on hover), durations.

use baton_store::Millis;
use maud::{Markup, html};

/// A symbol per state, so states differ without colour.
pub(crate) fn icon(state: &str) -> &'static str {
    match state {
        "succeeded" => "✓",
        "failed" => "✗",
        "upstream_failed" => "⚠",
        "running" => "▶",
        "queued" => "◷",
        "pending" => "○",
        "retrying" => "↻",
        "waiting_approval" => "⏸",
        "skipped" => "↷",
        "cancelled" => "⊘",
        "timed_out" => "⌛",
        "interrupted" => "↯",
        _ => "•",
    }
}

/// `<span class="state state-failed" title="failed">✗ failed</span>`.
pub(crate) fn state(state: &str) -> Markup {
    html! {
        span class={ "state state-" (state) } title=(state) data-state=(state) {
            (icon(state)) " " (state.replace('_', " "))
        }
    }
}

/// An instant as RFC 3339 (UTC).
pub(crate) fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// `<time datetime="..." title="absolute">3 min ago</time>`; the script keeps the relative
/// text fresh and puts the viewer's local time in the title.
pub(crate) fn time(ms: Millis, now: Millis) -> Markup {
    let absolute = jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    html! { time datetime=(rfc3339(ms)) title=(absolute) { (relative(ms - now)) } }
}

/// `delta` milliseconds from now in words: "3 min ago", "in 2 h".
pub(crate) fn relative(delta: Millis) -> String {
    let past = delta <= 0;
    let secs = delta.unsigned_abs() / 1000;
    let words = if secs < 5 {
        return "just now".into();
    } else if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else if secs < 86_400 {
        format!("{} h", secs / 3600)
    } else {
        format!("{} d", secs / 86_400)
    };
    if past {
        format!("{words} ago")
    } else {
        format!("in {words}")
    }
}

/// A schedule's fire time: relative, in the schedule's zone, and (filled in by the script)
/// in the viewer's.
pub(crate) fn fire_time(t: &jiff::Zoned, now: Millis) -> Markup {
    let ms = t.timestamp().as_millisecond();
    html! {
        span.fire-time {
            (time(ms, now)) " · "
            span.zone-time { (t.strftime("%Y-%m-%d %H:%M %Z")) }
            " · " span.viewer-time data-instant=(rfc3339(ms)) {}
        }
    }
}

/// A duration in words: "850 ms", "12.4 s", "3 min 5 s", "2 h 4 min".
pub(crate) fn duration(ms: Millis) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        #[expect(clippy::cast_precision_loss, reason = "below a minute")]
        let s = ms as f64 / 1000.0;
        format!("{s:.1} s")
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// Kibibytes in words: "812 KiB", "1.5 GiB".
pub(crate) fn kib(kb: i64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let k = kb as f64;
    if kb < 1024 {
        format!("{kb} KiB")
    } else if kb < 1024 * 1024 {
        format!("{:.1} MiB", k / 1024.0)
    } else {
        format!("{:.1} GiB", k / 1024.0 / 1024.0)
    }
}

/// The path of a run's page, with a task selected.
pub(crate) fn task_href(run: &str, key: &str) -> String {
    format!("/runs/{}?task={}", run, encode(key))
}

/// Keeps the first `limit` of `items` (fetched as `limit + 1`); whether there were more.
pub(crate) fn take_page<T>(items: &mut Vec<T>, limit: u32) -> bool {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    more
}

/// A list's next page: `path?cursor=C` and the filters that are set.
pub(crate) fn next_page_href(path: &str, cursor: &str, filters: &[(&str, Option<&str>)]) -> String {
    let mut href = format!("{path}?cursor={}", encode(cursor));
    for (name, value) in filters {
        if let Some(v) = value {
            href.push_str(&format!("&{name}={}", encode(v)));
        }
    }
    href
}

/// Percent-encodes a query or path component.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_times_and_durations() {
        assert_eq!(relative(-180_000), "3 min ago");
        assert_eq!(relative(7_200_000), "in 2 h");
        assert_eq!(relative(-1000), "just now");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_400), "12.4 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(encode("load[eu west]"), "load%5Beu%20west%5D");
        assert_eq!(kib(2048), "2.0 MiB");
    }
}
