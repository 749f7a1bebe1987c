//! Enums stored as text: statuses and kinds are enums in the code and their
//! snake_case names in the database and in JSON. [`text_enum!`] writes the
//! enum, its one mapping to text (`as_str`, `parse`) and `Serialize`.

/// `text_enum! { pub enum S { A = "a", B = "b" } }`: the enum with `ALL`,
/// `as_str`, `parse`, `Display`, `Serialize` (as the text) and an OpenAPI
/// schema (a string with exactly these values), which a view's text field
/// names with `#[schema(value_type = S, inline)]`.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        enum Light { Red = "red", Green = "green" }
    }

    #[test]
    fn text_round_trips_and_unknown_text_is_none() {
        for l in Light::ALL {
            assert_eq!(Light::parse(l.as_str()), Some(*l));
        }
        assert_eq!(Light::Green.to_string(), "green");
        assert_eq!(Light::parse("blue"), None);
        assert_eq!(serde_json::to_string(&Light::Red).unwrap(), "\"red\"");
    }
}
