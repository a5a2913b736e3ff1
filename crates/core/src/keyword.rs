//! Enumerations written as fixed words in pipeline files.

/// Declares an enum of keywords with its wire names, used by the decoder (with suggestions),
/// serde, the JSON Schema and the OpenAPI schema (values are the wire names) from one list.
macro_rules! keyword_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident, $what:literal {
            $($(#[doc = $vdoc:literal])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[doc = $vdoc])* #[serde(rename = $text)] $variant),+
        }

        // By hand rather than derived: utoipa's derive does not see a `rename` whose value
        // comes from a macro fragment, and would list the Rust names instead of the wire names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let mut description =
                    [$($doc),*].iter().map(|l: &&str| l.trim()).collect::<Vec<_>>().join("\n");
                let mut values: Vec<String> = Vec::new();
                $(
                    let doc = [$($vdoc),*].iter().map(|l: &&str| l.trim()).collect::<Vec<_>>().join(" ");
                    if !doc.is_empty() {
                        values.push(format!("- `{}`: {doc}", $text));
                    }
                )+
                if !values.is_empty() {
                    description = format!("{description}\n\n{}", values.join("\n"));
                }
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(description))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            pub const CHOICES: &'static [(&'static str, Self)] = &[$(($text, Self::$variant)),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Parses the wire name; `None` for anything else.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::CHOICES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::decode::Decode for $name {
            fn decode(
                d: &mut $crate::decode::Decoder,
                node: &$crate::yaml::Node,
            ) -> Option<Self> {
                d.keyword(node, $what, Self::CHOICES)
            }
        }
    };
}

pub(crate) use keyword_enum;
