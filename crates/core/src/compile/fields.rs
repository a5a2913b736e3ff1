//! Checks of single fields: params, env, pools, retries, timeouts, datasets, notifications,
//! concurrency, resources.

use indexmap::IndexMap;

use crate::decode::Decoder;
use crate::duration::Duration;
use crate::ids::{Identifier, PoolName};
use crate::model::{
    Concurrency, Dataset, Notify, Param, RetryPolicy, Template, WebhookUrl, check_webhook_url,
};
use crate::span::{Span, Spanned};
use crate::spec::{
    DatasetSpec, EnvSpec, NotifyEvent, NotifyFormat, NotifySpec, Overlap, ParamSpec, ParamType,
    PipelineSpec, RetryPolicySpec,
};

pub(super) fn check_env(
    d: &mut Decoder,
    spec: &EnvSpec,
    mut template: impl FnMut(&mut Decoder, Span, &str) -> Option<Template>,
) -> IndexMap<String, Template> {
    let mut out = IndexMap::new();
    for (k, v) in spec {
        d.at(k.value.clone(), |d| {
            let valid_name = !k.value.is_empty()
                && !k.value.starts_with(|c: char| c.is_ascii_digit())
                && k.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                d.error(
                    k.span,
                    format!("invalid environment variable name `{}`", k.value),
                )
                .hint = Some("use letters, digits and `_`, not starting with a digit".into());
            } else if k.value.starts_with("BATON_") {
                d.error(k.span, format!("`{}` is reserved", k.value)).hint =
                    Some("baton sets `BATON_*` variables itself; pick another name".into());
            } else if let Some(t) = template(d, v.span, &v.value.0) {
                out.insert(k.value.clone(), t);
            }
        });
    }
    out
}

/// A pool's name as written, checked as `baton pool set` checks it.
pub(super) fn pool_name(d: &mut Decoder, p: &Spanned<String>) -> Option<PoolName> {
    PoolName::new(p.value.clone())
        .map_err(|e| {
            d.error(p.span, e.to_string()).hint =
                Some("`baton pool set NAME --slots N` accepts the same names".into());
        })
        .ok()
}

pub(super) fn check_param(d: &mut Decoder, name: &Spanned<String>, p: &ParamSpec) -> Option<Param> {
    let ident = Identifier::new(name.value.clone())
        .map_err(|e| d.error(name.span, e.to_string()))
        .ok();
    let ty =
        p.ty.as_ref()
            .map(|t| t.value)
            .or_else(|| p.default.as_ref().and_then(|v| ParamType::of(&v.value)))
            .unwrap_or(ParamType::String);
    let (min, max) = (
        p.min.as_ref().map(|m| m.value),
        p.max.as_ref().map(|m| m.value),
    );
    if let (Some(lo), Some(hi)) = (&p.min, &p.max)
        && lo.value > hi.value
    {
        d.at("max", |d| {
            d.error(
                hi.span,
                format!("`max` ({}) is less than `min` ({})", hi.value, lo.value),
            );
        });
    }
    if (min.is_some() || max.is_some()) && matches!(ty, ParamType::Boolean | ParamType::Object) {
        let span = p
            .min
            .as_ref()
            .or(p.max.as_ref())
            .map_or(name.span, |m| m.span);
        d.error(
            span,
            format!("`min`/`max` do not apply to {} param", ty.article()),
        )
        .hint = Some("they bound numbers, and the length of strings and arrays".into());
    }
    let mut param = Param {
        name: ident?,
        ty,
        default: None,
        description: p.description.clone(),
        choices: None,
        min,
        max,
    };
    if let Some(choices) = &p.choices {
        d.at("enum", |d| {
            if choices.value.is_empty() {
                d.error(choices.span, "`enum` is empty").hint =
                    Some("list the allowed values, or remove `enum`".into());
            }
            for (i, c) in choices.value.iter().enumerate() {
                if !ty.matches(c) {
                    d.at(format!("[{i}]"), |d| {
                        d.error(
                            choices.span,
                            format!("`enum` value {c} is not {}", ty.article()),
                        );
                    });
                }
            }
        });
        param.choices = Some(choices.value.clone());
    }
    if let Some(default) = &p.default {
        d.at("default", |d| match param.check(&default.value) {
            Ok(()) => param.default = Some(default.value.clone()),
            Err(e) => {
                d.error(
                    default.span,
                    format!("default of param `{}` is invalid: {e}", name.value),
                );
            }
        });
    }
    Some(param)
}

pub(super) fn to_policy(spec: RetryPolicySpec) -> RetryPolicy {
    let base = RetryPolicy::default();
    RetryPolicy {
        limit: spec.limit.unwrap_or(base.limit),
        delay: spec.delay.as_ref().map_or(base.delay, |d| d.value),
        backoff: spec.backoff.unwrap_or(base.backoff),
        max_delay: spec.max_delay.as_ref().map(|m| m.value),
        jitter: spec.jitter.unwrap_or(base.jitter),
        on_exit_codes: spec.on_exit_codes,
    }
}

pub(super) fn check_timeout(d: &mut Decoder, timeout: &Spanned<Duration>) {
    check_positive(d, timeout, "timeout");
}

pub(super) fn check_positive(d: &mut Decoder, value: &Spanned<Duration>, key: &str) {
    if value.value == Duration::ZERO {
        d.error(value.span, format!("`{key}` must be greater than zero"))
            .hint = Some(format!("remove `{key}` for no time limit"));
    }
}

/// An `outputs:` entry that names a value (no `://`, not a mapping) rather than a dataset.
pub(super) fn value_output(o: &DatasetSpec) -> Option<&str> {
    match o {
        DatasetSpec::Text(t) if !t.contains("://") => Some(t),
        _ => None,
    }
}

pub(super) fn dataset(d: &mut Decoder, o: &Spanned<DatasetSpec>) -> Option<Spanned<Dataset>> {
    let parsed = match &o.value {
        DatasetSpec::Text(uri) => Dataset::parse_uri(uri),
        DatasetSpec::Named(n) => Dataset::named(&n.namespace.value, &n.name.value),
    };
    match parsed {
        Ok(ds) => Some(Spanned::new(ds, o.span)),
        Err(e) => {
            d.error(o.span, e.to_string()).hint = Some(e.hint().into());
            None
        }
    }
}

/// Drops, and reports, datasets listed twice in one list.
pub(super) fn unique_datasets(d: &mut Decoder, datasets: Vec<Spanned<Dataset>>) -> Vec<Dataset> {
    let mut out: Vec<(Dataset, u32)> = Vec::with_capacity(datasets.len());
    for ds in datasets {
        match out.iter().find(|(seen, _)| *seen == ds.value) {
            Some((_, line)) => {
                let line = *line;
                d.error(ds.span, format!("dataset `{}` is listed twice", ds.value))
                    .hint = Some(format!("first listed at line {line}"));
            }
            None => out.push((ds.value, ds.span.line)),
        }
    }
    out.into_iter().map(|(ds, _)| ds).collect()
}

pub(super) fn notify(d: &mut Decoder, specs: &[Spanned<NotifySpec>]) -> Vec<Notify> {
    let mut out: Vec<(Notify, u32)> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let n = &spec.value;
        let checked = d.at(format!("[{i}]"), |d| {
            let mut events: Vec<NotifyEvent> = Vec::with_capacity(n.on.len());
            if n.on.is_empty() {
                d.error(spec.span, "`on` lists no events").hint =
                    Some("write e.g. `on: [failure, deadline]`".into());
            }
            for e in &n.on {
                if events.contains(&e.value) {
                    d.at("on", |d| {
                        d.error(e.span, format!("event `{}` is listed twice", e.value));
                    });
                } else {
                    events.push(e.value);
                }
            }
            let webhook = match (&n.webhook, &n.webhook_env) {
                (Some(url), None) => d.at("webhook", |d| match check_webhook_url(&url.value) {
                    Ok(()) => Some(WebhookUrl::Url(url.value.clone())),
                    Err(why) => {
                        d.error(url.span, format!("webhook `{}` {why}", url.value))
                            .hint = Some(
                            "write an absolute URL such as `https://hooks.example.com/baton`, or name an environment variable with `webhook_env`".into(),
                        );
                        None
                    }
                }),
                (None, Some(var)) => d.at("webhook_env", |d| {
                    let ok = !var.value.is_empty()
                        && var
                            .value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !var.value.starts_with(|c: char| c.is_ascii_digit());
                    if ok {
                        Some(WebhookUrl::Env(var.value.clone()))
                    } else {
                        d.error(
                            var.span,
                            format!("`{}` is not an environment variable name", var.value),
                        )
                        .hint = Some("use letters, digits and `_`, e.g. `SLACK_WEBHOOK_URL`".into());
                        None
                    }
                }),
                (Some(url), Some(_)) => {
                    d.error(url.span, "a notification has either `webhook` or `webhook_env`, not both");
                    None
                }
                (None, None) => {
                    d.error(spec.span, "a notification needs `webhook` or `webhook_env`")
                        .hint = Some("write `webhook: https://hooks.example.com/baton`".into());
                    None
                }
            };
            (!events.is_empty()).then_some(())?;
            Some(Notify {
                on: events,
                webhook: webhook?,
                format: n.format.unwrap_or(NotifyFormat::Json),
            })
        });
        let Some(checked) = checked else { continue };
        match out
            .iter()
            .find(|(seen, _)| seen.webhook == checked.webhook && seen.format == checked.format)
        {
            Some((_, line)) => {
                let line = *line;
                d.at(format!("[{i}]"), |d| {
                    d.error(
                        spec.span,
                        "this webhook is already notified with the same format",
                    )
                    .hint = Some(format!(
                        "merge the `on` lists into the entry at line {line}"
                    ));
                });
            }
            None => out.push((checked, spec.span.line)),
        }
    }
    out.into_iter().map(|(n, _)| n).collect()
}

pub(super) fn check_retry(
    d: &mut Decoder,
    span: Span,
    spec: RetryPolicySpec,
) -> Option<RetryPolicy> {
    let max_delay = spec.max_delay.clone();
    let policy = to_policy(spec);
    if let Some(max) = &max_delay
        && max.value < policy.delay
    {
        d.at("max_delay", |d| {
            d.error(
                max.span,
                format!(
                    "`max_delay` ({}) is less than `delay` ({})",
                    max.value, policy.delay
                ),
            )
            .hint = Some("raise `max_delay` or lower `delay`".into());
        });
        return None;
    }
    const MAX_RETRIES: u32 = 1000;
    if policy.limit > MAX_RETRIES {
        d.error(
            span,
            format!(
                "{} retries is more than the maximum of {MAX_RETRIES}",
                policy.limit
            ),
        );
        return None;
    }
    Some(policy)
}

pub(super) fn concurrency(d: &mut Decoder, spec: &PipelineSpec) -> Concurrency {
    let c = spec.concurrency.clone().unwrap_or_default();
    if let Some(m) = c.max_active_runs.as_ref().filter(|m| m.value == 0) {
        d.at("max_active_runs", |d| {
            d.error(m.span, "`max_active_runs` must be at least 1").hint =
                Some("pause the pipeline to stop it from running".into());
        });
    }
    // An overlap policy only means something against a limit: given alone, it limits the
    // pipeline to one active run (`overlap: skip` is the common "never overlap").
    let default_max = c.overlap.is_some().then_some(1);
    Concurrency {
        max_active_runs: c.max_active_runs.map(|m| m.value).or(default_max),
        overlap: c.overlap.unwrap_or(Overlap::Queue),
    }
}

/// Parses `512Mi`, `2Gi`, `1G`, `1000` into bytes.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("invalid memory size `{text}`")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid memory size `{text}`"))
}

pub(super) fn spec_span<T>(s: Option<&Spanned<T>>) -> Span {
    s.map(|s| s.span).unwrap_or_default()
}

pub(super) fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}
