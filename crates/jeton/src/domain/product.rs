//! Products: what the admin API accepts, parsed.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, Problems, money, text::bounded};

pub const MAX_STOCK: i64 = 1_000_000_000;

pub fn parse_sku(raw: &str) -> Result<String, String> {
    let sku = bounded(raw, 1, 64)?;
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
    bounded(raw, 1, 200)
}

pub fn parse_description(raw: &str) -> Result<String, String> {
    // Descriptions may span lines; only other control characters are refused.
    if raw.chars().count() > 5000 {
        return Err("must be at most 5000 characters".to_owned());
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(raw.trim().to_owned())
}

pub fn parse_stock(stock: i64) -> Result<i64, String> {
    if (0..=MAX_STOCK).contains(&stock) {
        Ok(stock)
    } else {
        Err(format!("must be an integer from 0 to {MAX_STOCK}"))
    }
}

/// A price as sent by a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub amount: i64,
    pub currency: String,
}

/// `POST /admin/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProductInput {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: PriceInput,
    pub stock: i64,
}

/// `PATCH /admin/products/{id}`: any of the fields of a new product.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatchInput {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<PriceInput>,
    pub stock: Option<i64>,
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
        };
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
