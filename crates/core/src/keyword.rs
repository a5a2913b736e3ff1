//! Enumerations written as fixed words in pipeline files.

/// Declares an enum of keywords with its wire names, used by the decoder (with suggestions),
/// serde and the JSON Schema from one list.
macro_rules! keyword_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal {
            $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
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
