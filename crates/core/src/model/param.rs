//! A checked run parameter and the rules its values must follow.

use serde::Serialize;
use serde_json::Value;

use crate::ids::Identifier;
use crate::spec::ParamType;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Param {
    pub name: Identifier,
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Why a value does not fit a parameter; a fragment to follow "param `x` ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamValueError {
    #[error("expected {expected}, found {found}")]
    Type {
        expected: &'static str,
        found: &'static str,
    },
    #[error("must be one of {choices}, got `{value}`")]
    NotAChoice { choices: String, value: String },
    #[error("{what} must be at least {bound}, got {value}")]
    TooSmall {
        what: &'static str,
        bound: String,
        value: String,
    },
    #[error("{what} must be at most {bound}, got {value}")]
    TooLarge {
        what: &'static str,
        bound: String,
        value: String,
    },
    /// No process can receive a NUL byte in its arguments or environment.
    #[error("contains a NUL byte, which no task can receive")]
    Nul,
    #[error("cannot read `{text}` as {expected}")]
    Unparsable {
        text: String,
        expected: &'static str,
    },
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl ParamType {
    pub fn article(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Boolean => "a boolean",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }

    pub fn matches(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Number => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::Array => v.is_array(),
            Self::Object => v.is_object(),
        }
    }

    /// The type of a JSON value, for params declared with only a default.
    pub fn of(v: &Value) -> Option<Self> {
        Some(match v {
            Value::String(_) => Self::String,
            Value::Number(n) if n.is_f64() => Self::Number,
            Value::Number(_) => Self::Integer,
            Value::Bool(_) => Self::Boolean,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
            Value::Null => return None,
        })
    }
}

impl Param {
    /// A param with no default must be given by every trigger.
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }

    /// Checks a value against the type, `enum` and bounds.
    pub fn check(&self, v: &Value) -> Result<(), ParamValueError> {
        if has_nul(v) {
            return Err(ParamValueError::Nul);
        }
        if !self.ty.matches(v) {
            return Err(ParamValueError::Type {
                expected: self.ty.article(),
                found: json_kind(v),
            });
        }
        if let Some(choices) = &self.choices
            && !choices.contains(v)
        {
            let list: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
            return Err(ParamValueError::NotAChoice {
                choices: list.join(", "),
                value: v.to_string(),
            });
        }
        // `f64`'s `Display` prints whole numbers without a fraction (`2`, not `2.0`) and never
        // in exponent form, so bounds read as written.
        #[expect(clippy::cast_precision_loss, reason = "lengths are far below 2^52")]
        let (what, measured) = match v {
            Value::Number(n) => ("value", n.as_f64()),
            Value::String(s) => ("length", Some(s.chars().count() as f64)),
            Value::Array(a) => ("length", Some(a.len() as f64)),
            _ => ("value", None),
        };
        if let Some(x) = measured {
            if let Some(min) = self.min.filter(|m| x < *m) {
                return Err(ParamValueError::TooSmall {
                    what,
                    bound: min.to_string(),
                    value: x.to_string(),
                });
            }
            if let Some(max) = self.max.filter(|m| x > *m) {
                return Err(ParamValueError::TooLarge {
                    what,
                    bound: max.to_string(),
                    value: x.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Reads a value given on a command line (`--param limit=10`) by the param's type, then
    /// checks it.
    pub fn parse_text(&self, text: &str) -> Result<Value, ParamValueError> {
        let unparsable = || ParamValueError::Unparsable {
            text: text.to_owned(),
            expected: self.ty.article(),
        };
        let v = match self.ty {
            ParamType::String => Value::String(text.to_owned()),
            ParamType::Integer => {
                Value::from(text.trim().parse::<i64>().map_err(|_| unparsable())?)
            }
            ParamType::Number => {
                let f: f64 = text.trim().parse().map_err(|_| unparsable())?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(unparsable)?
            }
            ParamType::Boolean => match text.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(unparsable()),
            },
            ParamType::Array | ParamType::Object => {
                serde_json::from_str(text).map_err(|_| unparsable())?
            }
        };
        self.check(&v)?;
        Ok(v)
    }
}

/// Checks the params a trigger gives against the declarations and fills in defaults. Returns
/// every problem, each a sentence fragment naming the param.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

pub fn resolve_params(
    declared: &indexmap::IndexMap<String, Param>,
    given: serde_json::Map<String, Value>,
) -> Result<serde_json::Map<String, Value>, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = serde_json::Map::new();
    for (name, value) in &given {
        match declared.get(name) {
            None => {
                let hint =
                    crate::diagnostic::did_you_mean(name, declared.keys().map(String::as_str))
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                problems.push(format!("unknown param `{name}`{hint}"));
            }
            Some(p) => match p.check(value) {
                Ok(()) => {}
                Err(e) => problems.push(format!("param `{name}`: {e}")),
            },
        }
    }
    for (name, p) in declared {
        match given.get(name).or(p.default.as_ref()) {
            Some(v) => {
                out.insert(name.clone(), v.clone());
            }
            None => problems.push(format!("missing required param `{name}`")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn param(ty: ParamType) -> Param {
        Param {
            name: Identifier::new("p").expect("valid"),
            ty,
            default: None,
            description: None,
            choices: None,
            min: None,
            max: None,
        }
    }

    #[test]
    fn refuses_nul_bytes_anywhere_in_a_value() {
        let text = param(ParamType::String);
        assert_eq!(text.check(&json!("a\0b")), Err(ParamValueError::Nul));
        let list = param(ParamType::Array);
        assert_eq!(
            list.check(&json!(["ok", ["\0"]])),
            Err(ParamValueError::Nul)
        );
        assert_eq!(list.check(&json!(["ok"])), Ok(()));
    }

    #[test]
    fn checks_type_bounds_and_choices() {
        let mut limit = param(ParamType::Integer);
        limit.min = Some(1.0);
        assert_eq!(limit.check(&json!(5)), Ok(()));
        assert_eq!(
            limit.check(&json!(0)).expect_err("too small").to_string(),
            "value must be at least 1, got 0"
        );
        assert_eq!(
            limit.check(&json!("5")).expect_err("string").to_string(),
            "expected an integer, found a string"
        );
        assert_eq!(
            limit.check(&json!(1.5)).expect_err("float").to_string(),
            "expected an integer, found a number"
        );
        let mut region = param(ParamType::String);
        region.choices = Some(vec![json!("eu"), json!("us")]);
        assert_eq!(
            region
                .check(&json!("ap"))
                .expect_err("not a choice")
                .to_string(),
            r#"must be one of `"eu"`, `"us"`, got `"ap"`"#
        );
    }

    #[test]
    fn names_json_kinds_and_param_types() {
        for (v, kind, ty) in [
            (json!(null), "null", None),
            (json!(true), "a boolean", Some(ParamType::Boolean)),
            (json!(1.5), "a number", Some(ParamType::Number)),
            (json!(-3), "an integer", Some(ParamType::Integer)),
            (json!("x"), "a string", Some(ParamType::String)),
            (json!([1]), "an array", Some(ParamType::Array)),
            (json!({"a": 1}), "an object", Some(ParamType::Object)),
        ] {
            assert_eq!(json_kind(&v), kind, "{v}");
            assert_eq!(ParamType::of(&v), ty, "{v}");
            if let Some(ty) = ty {
                assert_eq!(ty.article(), kind, "{v}");
                assert!(ty.matches(&v), "{v}");
            }
        }
    }

    #[test]
    fn each_type_matches_only_its_values() {
        let values = [
            json!(true),
            json!(1.5),
            json!(-3),
            json!(u64::MAX),
            json!("x"),
            json!([1]),
            json!({}),
        ];
        for (ty, matching) in [
            (ParamType::Boolean, vec![0]),
            (ParamType::Number, vec![1, 2, 3]),
            (ParamType::Integer, vec![2, 3]),
            (ParamType::String, vec![4]),
            (ParamType::Array, vec![5]),
            (ParamType::Object, vec![6]),
        ] {
            for (i, v) in values.iter().enumerate() {
                assert_eq!(ty.matches(v), matching.contains(&i), "{ty:?} {v}");
            }
        }
    }

    #[test]
    fn bounds_are_inclusive_and_measure_lengths_of_strings_and_arrays() {
        let mut n = param(ParamType::Number);
        n.min = Some(1.5);
        n.max = Some(3.0);
        assert_eq!(n.check(&json!(1.5)), Ok(()));
        assert_eq!(n.check(&json!(3.0)), Ok(()));
        assert_eq!(
            n.check(&json!(1)).expect_err("below").to_string(),
            "value must be at least 1.5, got 1"
        );
        assert_eq!(
            n.check(&json!(3.25)).expect_err("above").to_string(),
            "value must be at most 3, got 3.25"
        );
        let mut s = param(ParamType::String);
        s.min = Some(2.0);
        s.max = Some(3.0);
        assert_eq!(s.check(&json!("ab")), Ok(()));
        assert_eq!(s.check(&json!("äöü")), Ok(()), "characters, not bytes");
        assert_eq!(
            s.check(&json!("a")).expect_err("short").to_string(),
            "length must be at least 2, got 1"
        );
        assert_eq!(
            s.check(&json!("abcd")).expect_err("long").to_string(),
            "length must be at most 3, got 4"
        );
        let mut a = param(ParamType::Array);
        a.max = Some(1.0);
        assert_eq!(a.check(&json!([1])), Ok(()));
        assert_eq!(
            a.check(&json!([1, 2])).expect_err("long").to_string(),
            "length must be at most 1, got 2"
        );
        // Booleans and objects have no measure, so bounds do not apply to them.
        let mut b = param(ParamType::Boolean);
        b.min = Some(5.0);
        assert_eq!(b.check(&json!(false)), Ok(()));
        let mut huge = param(ParamType::Number);
        huge.max = Some(1e23);
        assert_eq!(
            huge.check(&json!(2e23)).expect_err("above").to_string(),
            "value must be at most 100000000000000000000000, got 200000000000000000000000"
        );
    }

    #[test]
    fn a_listed_choice_passes() {
        let mut region = param(ParamType::String);
        region.choices = Some(vec![json!("eu"), json!("us")]);
        assert_eq!(region.check(&json!("us")), Ok(()));
        assert!(
            region.check(&json!(1)).is_err(),
            "the type is checked first"
        );
    }

    #[test]
    fn only_params_without_a_default_are_required() {
        let mut p = param(ParamType::String);
        assert!(p.is_required());
        p.default = Some(json!("x"));
        assert!(!p.is_required());
    }

    #[test]
    fn command_line_text_is_checked_after_parsing() {
        assert_eq!(
            param(ParamType::Boolean).parse_text(" false "),
            Ok(json!(false))
        );
        assert!(param(ParamType::Boolean).parse_text("yes").is_err());
        assert_eq!(param(ParamType::Number).parse_text("2.5"), Ok(json!(2.5)));
        assert_eq!(
            param(ParamType::Number)
                .parse_text("NaN")
                .expect_err("not JSON")
                .to_string(),
            "cannot read `NaN` as a number"
        );
        assert_eq!(
            param(ParamType::Object).parse_text(r#"{"a":1}"#),
            Ok(json!({"a": 1}))
        );
        let mut limit = param(ParamType::Integer);
        limit.max = Some(10.0);
        assert_eq!(
            limit.parse_text("11").expect_err("too large").to_string(),
            "value must be at most 10, got 11"
        );
    }

    #[test]
    fn resolving_fills_defaults_and_reports_every_problem() {
        let mut declared = indexmap::IndexMap::new();
        let mut region = param(ParamType::String);
        region.default = Some(json!("eu"));
        declared.insert("region".to_owned(), region);
        declared.insert("limit".to_owned(), param(ParamType::Integer));
        let given = |v: Value| v.as_object().expect("object").clone();
        assert_eq!(
            resolve_params(&declared, given(json!({"limit": 3}))),
            Ok(given(json!({"region": "eu", "limit": 3})))
        );
        assert_eq!(
            resolve_params(&declared, given(json!({"limit": 3, "region": "us"}))),
            Ok(given(json!({"region": "us", "limit": 3})))
        );
        assert_eq!(
            resolve_params(&declared, given(json!({"regoin": "us", "region": 1}))),
            Err(vec![
                "unknown param `regoin` (did you mean `region`?)".to_owned(),
                "param `region`: expected a string, found an integer".to_owned(),
                "missing required param `limit`".to_owned(),
            ])
        );
    }

    #[test]
    fn parses_command_line_text_by_type() {
        assert_eq!(param(ParamType::Integer).parse_text("42"), Ok(json!(42)));
        assert_eq!(
            param(ParamType::Boolean).parse_text("true"),
            Ok(json!(true))
        );
        assert_eq!(
            param(ParamType::Array).parse_text("[1,2]"),
            Ok(json!([1, 2]))
        );
        assert_eq!(param(ParamType::String).parse_text("42"), Ok(json!("42")));
        assert_eq!(
            param(ParamType::Integer)
                .parse_text("x")
                .expect_err("bad")
                .to_string(),
            "cannot read `x` as an integer"
        );
    }
}
