//! JSON Schemas of what the parsers of this module accept, built from the
//! same bounds the parsers use, so that the API's description and its
//! validation cannot drift apart. Each field of an input type points here
//! with `#[schema(schema_with = ...)]`.
//!
//! The patterns are exact for the parsers they describe, because clients
//! generate requests from them (and schemathesis proves it both ways: what
//! the schema allows is accepted, what it refuses is refused). They use
//! only syntax that ECMA-262 (with the `v` flag browsers use for
//! `<input pattern>` too) and Python's `re` read alike.

use utoipa::openapi::{
    Array, ArrayBuilder, KnownFormat, Object, ObjectBuilder, RefOr, Schema, SchemaFormat, Type,
    schema::SchemaType,
};

/// What `str::trim` removes: Unicode `White_Space`.
const WHITE_SPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control`: the C0 and C1 controls and DEL.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// Neither white space nor a control character.
const VISIBLE: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// `"string"`, or `["string", "null"]` when `nullable`.
pub(crate) fn string_type(nullable: bool) -> SchemaType {
    scalar_type(Type::String, nullable)
}

pub(crate) fn scalar_type(kind: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([kind, Type::Null])
    } else {
        SchemaType::Type(kind)
    }
}

/// What [`super::text::bounded`]`(raw, min, max)` accepts: surrounding white
/// space is trimmed, then `min..=max` characters remain, none of them a
/// control character. Since the bound applies after trimming, it is in the
/// pattern rather than in `maxLength`.
pub fn bounded_text(min: usize, max: usize, nullable: bool) -> ObjectBuilder {
    assert!(min <= 1 && max >= 2, "the pattern covers these bounds");
    let inner = format!(r"[^{CONTROL}]");
    let text = format!("{VISIBLE}(?:{inner}{{0,{}}}{VISIBLE})?", max - 2);
    let text = if min == 0 {
        format!("(?:{text})?")
    } else {
        text
    };
    let pattern = format!("^[{WHITE_SPACE}]*{text}[{WHITE_SPACE}]*$");
    let description = if min == 0 {
        format!(
            "At most {max} characters once surrounding white space is trimmed; no control characters."
        )
    } else {
        format!(
            "{min} to {max} characters once surrounding white space is trimmed; no control characters."
        )
    };
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length((min > 0).then_some(min))
        .pattern(Some(pattern))
        .description(Some(description))
}

/// What [`super::text::bounded`] accepts, further limited to the bytes
/// `allowed` (a regex character class body of ASCII characters).
pub fn bounded_ascii(min: usize, max: usize, allowed: &str) -> ObjectBuilder {
    let pattern = format!("^[{WHITE_SPACE}]*[{allowed}]{{{min},{max}}}[{WHITE_SPACE}]*$");
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .min_length(Some(min))
        .pattern(Some(pattern))
}

/// A string of `min..=max` characters, taken as sent.
pub fn sized_text(min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
}

/// Text of at most `max` characters with no control characters but
/// those in `allowed_controls` (e.g. `\n\t`).
pub fn text_without_controls(max: usize, allowed_controls: &str) -> ObjectBuilder {
    let refused: String = (0u32..0x20)
        .chain(0x7f..0xa0)
        .filter_map(char::from_u32)
        .filter(|c| !allowed_controls.contains(*c))
        .map(|c| format!(r"\x{:02x}", u32::from(c)))
        .collect();
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .max_length(Some(max))
        .pattern(Some(format!("^[^{refused}]*$")))
}

/// An integer in `min..=max`; `null` allowed when `nullable`.
pub fn integer(min: i64, max: i64, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(scalar_type(Type::Integer, nullable))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
}

/// One of `values`.
pub fn one_of_strings<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .enum_values(Some(values.into_iter().map(Into::into)))
}

/// An id as `ids::parse_id` reads it: a hyphenated UUID, in either case.
pub fn id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(string_type(false))
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
        .pattern(Some(
            "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        ))
}

/// An array of `min..=max` `items`, `null` allowed when `nullable`.
pub fn array(items: impl Into<RefOr<Schema>>, min: usize, max: usize, nullable: bool) -> Array {
    let builder = ArrayBuilder::new()
        .items(items.into())
        .min_items((min > 0).then_some(min))
        .max_items(Some(max));
    let builder = if nullable {
        builder.schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
    } else {
        builder
    };
    builder.build()
}

/// `schema` as a field's schema.
pub fn field(schema: ObjectBuilder) -> Object {
    schema.build()
}
