//! Products: what the admin API accepts, parsed.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, Problems, money, schema, text::bounded};

pub const MAX_STOCK: i64 = 1_000_000_000;
pub const SKU_MAX: usize = 64;
/// The bytes of a SKU, as a regex character class body (`-` escaped, as
/// the RegExp `v` flag wants).
const SKU_CHARS: &str = r"A-Za-z0-9._\-";
pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5000;

pub fn parse_sku(raw: &str) -> Result<String, String> {
    let sku = bounded(raw, 1, SKU_MAX)?;
    if sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(sku)
    } else {
        Err("may contain only letters, digits, '-', '_' and '.'".to_owned())
    }
}

pub fn parse_name(raw: &str) -> Result<String, String> {
    bounded(raw, 1, NAME_MAX)
}

pub fn parse_description(raw: &str) -> Result<String, String> {
    // Descriptions may span lines; only other control characters are refused.
    if raw.chars().count() > DESCRIPTION_MAX {
        return Err(format!("must be at most {DESCRIPTION_MAX} characters"));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(raw.trim().to_owned())
}

/// A restock or write-off: `stock = stock + delta`, applied atomically, so
/// it never loses a concurrent order's decrement. Bounded so the sum cannot
/// overflow; whether the result stays in `0..=MAX_STOCK` depends on the
/// stock at that moment and is the store's to check.
pub fn parse_stock_delta(delta: i64) -> Result<i64, String> {
    if (-MAX_STOCK..=MAX_STOCK).contains(&delta) {
        Ok(delta)
    } else {
        Err(format!(
            "must be an integer from -{MAX_STOCK} to {MAX_STOCK}"
        ))
    }
}

pub fn parse_stock(stock: i64) -> Result<i64, String> {
    if (0..=MAX_STOCK).contains(&stock) {
        Ok(stock)
    } else {
        Err(format!("must be an integer from 0 to {MAX_STOCK}"))
    }
}

fn sku_schema(nullable: bool) -> utoipa::openapi::Object {
    let mut sku = schema::bounded_ascii(1, SKU_MAX, SKU_CHARS)
        .description(Some(
            "Unique. 1 to 64 letters, digits, `-`, `_` and `.` once surrounding white space is trimmed.",
        ))
        .examples(["TEE-GREEN-S"])
        .build();
    if nullable {
        sku.schema_type = schema::scalar_type(utoipa::openapi::Type::String, true);
    }
    sku
}

fn name_schema(nullable: bool) -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, NAME_MAX, nullable).examples(["Green tee, S"]))
}

fn description_schema(nullable: bool) -> utoipa::openapi::Object {
    let mut text = schema::text_without_controls(DESCRIPTION_MAX, "\n\t")
        .description(Some(
            "At most 5000 characters; line feeds and tabs are the only control characters allowed.",
        ))
        .build();
    if nullable {
        text.schema_type = schema::scalar_type(utoipa::openapi::Type::String, true);
    }
    text
}

fn stock_schema(nullable: bool) -> utoipa::openapi::Object {
    schema::field(schema::integer(0, MAX_STOCK, nullable).examples([12]))
}

fn stock_delta_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::integer(-MAX_STOCK, MAX_STOCK, true)
            .description(Some(
                "Adds to the stock (negative: removes), atomically with respect to concurrent \
                 orders. The result must stay within 0 to 1000000000 (409 `insufficient_stock` / \
                 `stock_limit_exceeded`). Not with `stock`.",
            ))
            .examples([5]),
    )
}

fn sku_schema_new() -> utoipa::openapi::Object {
    sku_schema(false)
}
fn sku_schema_patch() -> utoipa::openapi::Object {
    sku_schema(true)
}
fn name_schema_new() -> utoipa::openapi::Object {
    name_schema(false)
}
fn name_schema_patch() -> utoipa::openapi::Object {
    name_schema(true)
}
fn description_schema_new() -> utoipa::openapi::Object {
    description_schema(false)
}
fn description_schema_patch() -> utoipa::openapi::Object {
    description_schema(true)
}
fn stock_schema_new() -> utoipa::openapi::Object {
    stock_schema(false)
}
fn stock_schema_patch() -> utoipa::openapi::Object {
    stock_schema(true)
}

/// A price as sent by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    #[schema(schema_with = money::amount_schema)]
    pub amount: i64,
    #[schema(schema_with = money::currency_schema)]
    pub currency: String,
}

/// `POST /admin/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "TEE-GREEN-S", "name": "Green tee, S", "price": {"amount": 1900, "currency": "EUR"}, "stock": 12}))]
pub struct NewProductInput {
    #[schema(schema_with = sku_schema_new)]
    pub sku: String,
    #[schema(schema_with = name_schema_new)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = description_schema_new)]
    pub description: String,
    pub price: PriceInput,
    #[schema(schema_with = stock_schema_new)]
    pub stock: i64,
}

/// `PATCH /admin/products/{id}`: any of the fields of a new product, or
/// `stock_delta` instead of `stock`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stock_delta": 5}))]
pub struct ProductPatchInput {
    #[schema(schema_with = sku_schema_patch)]
    pub sku: Option<String>,
    #[schema(schema_with = name_schema_patch)]
    pub name: Option<String>,
    #[schema(schema_with = description_schema_patch)]
    pub description: Option<String>,
    pub price: Option<PriceInput>,
    /// Sets the stock. Concurrent orders' decrements in between are lost;
    /// prefer `stock_delta` while the shop is open.
    #[schema(schema_with = stock_schema_patch)]
    pub stock: Option<i64>,
    #[schema(schema_with = stock_delta_schema)]
    pub stock_delta: Option<i64>,
}

/// A product ready to store.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_amount: i64,
    pub currency: String,
    pub stock: i64,
}

/// The fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<(i64, String)>,
    pub stock: Option<i64>,
    pub stock_delta: Option<i64>,
}

fn parse_price(problems: &mut Problems, price: &PriceInput) -> Option<(i64, String)> {
    let amount = problems.check("price.amount", money::parse_amount(price.amount));
    let currency = problems.check("price.currency", money::parse_currency(&price.currency));
    Some((amount?, currency?))
}

impl TryFrom<NewProductInput> for NewProduct {
    type Error = Vec<FieldError>;

    fn try_from(input: NewProductInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let sku = problems.check("sku", parse_sku(&input.sku));
        let name = problems.check("name", parse_name(&input.name));
        let description = problems.check("description", parse_description(&input.description));
        let price = parse_price(&mut problems, &input.price);
        let stock = problems.check("stock", parse_stock(input.stock));
        problems.finish(|| {
            let (price_amount, currency) = price.expect("checked");
            NewProduct {
                sku: sku.expect("checked"),
                name: name.expect("checked"),
                description: description.expect("checked"),
                price_amount,
                currency,
                stock: stock.expect("checked"),
            }
        })
    }
}

/// What [`ProductPatch::try_from`] refuses across fields, as a JSON Schema
/// `not`: `stock` and `stock_delta` both set.
pub fn patch_schema_not() -> serde_json::Value {
    serde_json::json!({
        "required": ["stock", "stock_delta"],
        "properties": {"stock": {"type": "integer"}, "stock_delta": {"type": "integer"}},
    })
}

impl TryFrom<ProductPatchInput> for ProductPatch {
    type Error = Vec<FieldError>;

    fn try_from(input: ProductPatchInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        let patch = ProductPatch {
            sku: input
                .sku
                .and_then(|sku| problems.check("sku", parse_sku(&sku))),
            name: input
                .name
                .and_then(|name| problems.check("name", parse_name(&name))),
            description: input
                .description
                .and_then(|text| problems.check("description", parse_description(&text))),
            price: input
                .price
                .and_then(|price| parse_price(&mut problems, &price)),
            stock: input
                .stock
                .and_then(|stock| problems.check("stock", parse_stock(stock))),
            stock_delta: input
                .stock_delta
                .and_then(|delta| problems.check("stock_delta", parse_stock_delta(delta))),
        };
        if input.stock.is_some() && input.stock_delta.is_some() {
            problems.add(
                "stock_delta",
                "cannot be combined with stock: set the stock or change it, not both",
            );
        }
        problems.finish(|| patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert!(parse_sku("TSHIRT-RED-M").is_ok());
        assert!(parse_sku("").is_err());
        assert!(parse_sku("a b").is_err());
        assert!(parse_sku("'; DROP TABLE products; --").is_err());
        assert!(parse_sku(&"A".repeat(65)).is_err());
    }

    #[test]
    fn stock_and_stock_delta_exclude_each_other() {
        let both = ProductPatchInput {
            stock: Some(5),
            stock_delta: Some(1),
            ..Default::default()
        };
        let errors = ProductPatch::try_from(both).unwrap_err();
        assert_eq!(errors[0].field, "stock_delta");
        let delta = ProductPatchInput {
            stock_delta: Some(-3),
            ..Default::default()
        };
        assert_eq!(ProductPatch::try_from(delta).unwrap().stock_delta, Some(-3));
        for out_of_range in [MAX_STOCK + 1, -MAX_STOCK - 1, i64::MIN, i64::MAX] {
            let input = ProductPatchInput {
                stock_delta: Some(out_of_range),
                ..Default::default()
            };
            assert!(ProductPatch::try_from(input).is_err(), "{out_of_range}");
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let input = NewProductInput {
            sku: "".into(),
            name: "ok".into(),
            description: String::new(),
            price: PriceInput {
                amount: -5,
                currency: "eur".into(),
            },
            stock: -1,
        };
        let errors = NewProduct::try_from(input).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["sku", "price.amount", "price.currency", "stock"]);
    }
}
