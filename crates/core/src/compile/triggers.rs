//! Cron schedules and triggers: their params, time zones and catch-up.

use indexmap::IndexMap;

use crate::decode::Decoder;
use crate::diagnostic::did_you_mean;
use crate::ids::{Namespace, PipelineId};
use crate::model::{Schedule, Trigger};
use crate::span::{Span, Spanned};
use crate::spec::{Catchup, TriggerSpec};

use super::Compiler;
use super::fields::lowercase_first;
use super::templates::{Scope, TaskAccess};

impl Compiler<'_> {
    pub(super) fn schedules(&self, d: &mut Decoder) -> Vec<Schedule> {
        let mut out = Vec::new();
        for (i, s) in self.spec.schedule.iter().enumerate() {
            d.at(format!("[{i}]"), |d| {
                let cron = d.at("cron", |d| {
                    crate::model::parse_cron(&s.cron.value)
                        .map_err(|e| {
                            d.error(s.cron.span, format!("invalid cron `{}`: {}", s.cron.value, lowercase_first(e.trim_end_matches('.'))))
                                .hint = Some("five fields `minute hour day-of-month month day-of-week` (an optional leading seconds field), or `@daily`, `@hourly`, ...".into());
                        })
                        .ok()
                });
                let tz_name = s.timezone.as_ref().map_or("UTC", |t| t.value.as_str());
                let tz_ok = d.at("timezone", |d| match crate::model::parse_timezone(tz_name) {
                    Ok(_) => true,
                    Err(_) => {
                        let span = s.timezone.as_ref().map_or(s.cron.span, |t| t.span);
                        d.error(span, format!("unknown time zone `{tz_name}`")).hint = Some(
                            "use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
                                .into(),
                        );
                        false
                    }
                });
                let params = d.at("params", |d| self.given_params(d, &s.params, true, s.cron.span));
                if let (Some(_), true) = (cron, tz_ok) {
                    let catchup = s.catchup.unwrap_or(Catchup::Latest);
                    match Schedule::new(&s.cron.value, tz_name, catchup, params) {
                        Ok(sched) => out.push(sched),
                        Err(e) => {
                            d.error(s.cron.span, e);
                        }
                    }
                }
            });
        }
        out
    }

    /// Checks params given by a schedule or a sub-pipeline call against the declarations.
    pub(super) fn given_params(
        &self,
        d: &mut Decoder,
        given: &IndexMap<Spanned<String>, Spanned<serde_json::Value>>,
        require_all: bool,
        at: Span,
    ) -> IndexMap<String, serde_json::Value> {
        let mut out = IndexMap::new();
        for (k, v) in given {
            d.at(k.value.clone(), |d| match self.params.get(&k.value) {
                None => {
                    let hint = did_you_mean(&k.value, self.params.keys().map(String::as_str))
                        .unwrap_or_else(|| "declare it under `params:`".into());
                    d.error(k.span, format!("unknown param `{}`", k.value)).hint = Some(hint);
                }
                Some(p) => match p.check(&v.value) {
                    Ok(()) => {
                        out.insert(k.value.clone(), v.value.clone());
                    }
                    Err(e) => {
                        d.error(v.span, format!("param `{}`: {e}", k.value));
                    }
                },
            });
        }
        if require_all {
            for (name, p) in &self.params {
                let has_default = self
                    .spec
                    .params
                    .get(name.as_str())
                    .is_some_and(|p| p.default.is_some());
                if p.is_required() && !has_default && !given.contains_key(name.as_str()) {
                    d.error(at, format!("required param `{name}` is not given"))
                        .hint = Some(format!(
                        "give it under `params:` here, or declare a `default` for `{name}`"
                    ));
                }
            }
        }
        out
    }

    pub(super) fn triggers(&self, d: &mut Decoder, ns: Option<&Namespace>) -> Vec<Trigger> {
        let ns = ns.cloned().unwrap_or_else(Namespace::default_namespace);
        let mut out = Vec::new();
        for (i, t) in self.spec.triggers.iter().enumerate() {
            d.at(format!("[{i}]"), |d| match t {
                TriggerSpec::Pipeline(p) => {
                    d.at("pipeline", |d| match PipelineId::parse(&p.value, &ns) {
                        Ok(pipeline) if pipeline.name.as_str() == self.spec.name.value && pipeline.namespace == ns => {
                            d.error(p.span, format!("pipeline `{pipeline}` triggers itself")).hint =
                                Some("an upstream trigger names another pipeline; this one would run forever".into());
                        }
                        Ok(pipeline) => out.push(Trigger::Pipeline { pipeline }),
                        Err(e) => {
                            d.error(p.span, e.to_string());
                        }
                    })
                }
                TriggerSpec::Webhook(w) => d.at("webhook", |d| {
                    let scope = Scope {
                        tasks: TaskAccess::None,
                        item: false,
                        payload: true,
                        hook: false,
                    };
                    let mut params = IndexMap::new();
                    d.at("params", |d| {
                        for (k, v) in &w.params {
                            d.at(k.value.clone(), |d| {
                                if !self.params.contains_key(&k.value) {
                                    let hint = did_you_mean(
                                        &k.value,
                                        self.params.keys().map(String::as_str),
                                    )
                                    .unwrap_or_else(|| "declare it under `params:`".into());
                                    d.error(k.span, format!("unknown param `{}`", k.value)).hint =
                                        Some(hint);
                                } else if let Some(t) = self.template(d, v.span, &v.value, scope) {
                                    params.insert(k.value.clone(), t);
                                }
                            });
                        }
                    });
                    out.push(Trigger::Webhook {
                        secret_env: w.secret_env.clone(),
                        params,
                    });
                }),
            });
        }
        out
    }
}
