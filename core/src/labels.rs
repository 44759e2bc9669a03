//! [`labels!`](crate::labels): the one way a closed set of names gets its
//! `as_str` and `Display` (and, if asked, its `parse`).

/// Writes, for an enum declared beside it, `pub const fn as_str(self) ->
/// &'static str` (the label of each variant, documented by the attributes
/// before the enum's name) and `Display` (the label). With a trailing
/// `parse(field = "...", expected = "...")` it also writes `pub fn parse(s:
/// &str) -> Result<Self, ValidationError>`, which finds `s` among `Self::ALL`
/// ignoring ASCII case and otherwise names `field` with
/// [`Reason::UnknownValue`](crate::Reason::UnknownValue).
///
/// A variant with a payload is written `Variant(_)`. The adapters use it too,
/// so it is exported; it is not part of the documented API.
///
/// ```
/// #[derive(Clone, Copy, Debug)]
/// enum Colour {
///     Red,
///     DarkBlue,
/// }
/// impl Colour {
///     const ALL: [Colour; 2] = [Colour::Red, Colour::DarkBlue];
/// }
/// proxy_delegate_core::labels! {
///     /// The name.
///     Colour { Red => "red", DarkBlue => "dark_blue" }
///     parse(field = "colour", expected = "red, dark_blue")
/// }
/// assert_eq!(Colour::DarkBlue.as_str(), "dark_blue");
/// assert_eq!(Colour::Red.to_string(), "red");
/// assert!(matches!(Colour::parse("DARK_BLUE"), Ok(Colour::DarkBlue)));
/// let err = Colour::parse("green").unwrap_err();
/// assert_eq!(err.to_string(), r#"colour: unknown value "green" (expected one of red, dark_blue)"#);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! labels {
    (
        $(#[$doc:meta])*
        $name:ident { $($variant:ident $(($wild:tt))? => $text:literal),+ $(,)? }
        $(
            $(#[$pdoc:meta])*
            parse(field = $field:literal, expected = $expected:literal)
        )?
    ) => {
        impl $name {
            $(#[$doc])*
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant $(($wild))? => $text,)+
                }
            }

            $(
                $(#[$pdoc])*
                #[doc = "Parses the spelling given by `as_str`, ignoring ASCII case."]
                pub fn parse(s: &str) -> ::core::result::Result<Self, $crate::ValidationError> {
                    Self::ALL
                        .into_iter()
                        .find(|v| v.as_str().eq_ignore_ascii_case(s))
                        .ok_or_else(|| $crate::ValidationError {
                            field: $field,
                            reason: $crate::Reason::UnknownValue {
                                got: $crate::quotable(s)
                                    .and_then(|q| $crate::Excerpt::try_from(q).ok())
                                    .unwrap_or_default(),
                                expected: $expected,
                            },
                        })
                }
            )?
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
