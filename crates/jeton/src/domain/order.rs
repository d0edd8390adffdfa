//! An order request, parsed: 1 to 100 lines, each for a distinct, well-formed
//! product id and a quantity from 1 to 1000; and the `Idempotency-Key` that
//! may come with it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{FieldError, Problems, ids::ProductId, schema};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 1000;

fn items_schema() -> utoipa::openapi::Array {
    let mut items = schema::array(
        <OrderLineInput as utoipa::PartialSchema>::schema(),
        1,
        MAX_LINES,
        false,
    );
    items.description = Some(format!(
        "1 to {MAX_LINES} lines, each for a different product. Every product must exist, \
         have the stock and share one currency with the others (else 422 or 409)."
    ));
    items
}

fn product_id_schema() -> utoipa::openapi::Object {
    schema::field(schema::id())
}

fn quantity_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::integer(1, MAX_QUANTITY, false)
            .description(Some(
                "Units of the product, 1 to 1000; a server may be configured with a lower \
                 ceiling (`--max-units-per-line`), above which a line is 422.",
            ))
            .examples([2]),
    )
}

/// `POST /orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"product_id": "0190f5c4-7b1e-7d3a-9c2b-5e8f1a2b3c4d", "quantity": 2}]}))]
pub struct OrderInput {
    #[schema(schema_with = items_schema)]
    pub items: Vec<OrderLineInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineInput {
    #[schema(schema_with = product_id_schema)]
    pub product_id: String,
    #[schema(schema_with = quantity_schema)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: i64,
}

/// Lines in the order the customer sent them; the store locks rows in
/// product-id order, whatever this order is.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub lines: Vec<OrderLine>,
}

impl OrderRequest {
    /// SHA-256 (hex) of the request's canonical form: the parsed lines, in
    /// the order sent, as compact JSON with canonical product ids. Two
    /// bodies that differ only in whitespace, field order or the spelling of
    /// an id have the same fingerprint; a different quantity, product or
    /// line order does not (line order shows in the response). The version
    /// prefix keeps fingerprints of a future canonical form apart.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(&self.lines).expect("lines serialize");
        let mut hash = Sha256::new();
        hash.update(b"jeton:orders:v1\n");
        hash.update(&canonical);
        hash.finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl OrderRequest {
    /// The request, if no line asks for more than `max_units` of its product
    /// (the server's configured ceiling, at most [`MAX_QUANTITY`]).
    pub fn within(self, max_units: i64) -> Result<OrderRequest, Vec<FieldError>> {
        let mut problems = Problems::default();
        for (index, line) in self.lines.iter().enumerate() {
            if line.quantity > max_units {
                problems.add(
                    format!("items[{index}].quantity"),
                    format!("must be at most {max_units}: this shop sells at most {max_units} units of a product per order"),
                );
            }
        }
        problems.finish(|| self)
    }
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// An `Idempotency-Key` header value: 1 to 255 printable ASCII characters
/// (0x20 to 0x7E), taken as sent (quotes of a structured-field string, if
/// any, are part of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, String> {
        if raw.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if raw.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(format!(
                "must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"
            ));
        }
        if !raw.iter().all(|byte| (0x20..=0x7e).contains(byte)) {
            return Err("must be printable ASCII".to_owned());
        }
        Ok(IdempotencyKey(
            String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8"),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<OrderInput> for OrderRequest {
    type Error = Vec<FieldError>;

    fn try_from(input: OrderInput) -> Result<Self, Self::Error> {
        let mut problems = Problems::default();
        if input.items.is_empty() {
            problems.add("items", "an order needs at least one line");
        }
        if input.items.len() > MAX_LINES {
            problems.add("items", format!("an order has at most {MAX_LINES} lines"));
            return Err(problems.finish(|| ()).unwrap_err());
        }
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(input.items.len());
        for (index, item) in input.items.iter().enumerate() {
            let product_id = problems.check(
                &format!("items[{index}].product_id"),
                ProductId::parse(&item.product_id).ok_or_else(|| "is not a product id".to_owned()),
            );
            let quantity = problems.check(
                &format!("items[{index}].quantity"),
                if (1..=MAX_QUANTITY).contains(&item.quantity) {
                    Ok(item.quantity)
                } else {
                    Err(format!("must be an integer from 1 to {MAX_QUANTITY}"))
                },
            );
            if let Some(id) = &product_id
                && !seen.insert(id.clone())
            {
                problems.add(
                    format!("items[{index}].product_id"),
                    "the same product appears on two lines; use one line with the total quantity",
                );
            }
            if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
                lines.push(OrderLine {
                    product_id,
                    quantity,
                });
            }
        }
        problems.finish(|| OrderRequest { lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::new_id;

    fn line(product_id: &str, quantity: i64) -> OrderLineInput {
        OrderLineInput {
            product_id: product_id.into(),
            quantity,
        }
    }

    #[test]
    fn good_order() {
        let (a, b) = (new_id(), new_id());
        let order = OrderRequest::try_from(OrderInput {
            items: vec![line(&b, 2), line(&a, 1000)],
        })
        .unwrap();
        assert_eq!(order.lines.len(), 2);
        assert_eq!(order.lines[0].product_id, b);
    }

    #[test]
    fn fingerprints_follow_the_parsed_request() {
        let (a, b) = (new_id(), new_id());
        let parse = |items| OrderRequest::try_from(OrderInput { items }).unwrap();
        let first = parse(vec![line(&a, 1), line(&b, 2)]).fingerprint();
        assert_eq!(first.len(), 64);
        assert_eq!(
            first,
            parse(vec![line(&a.to_uppercase(), 1), line(&b, 2)]).fingerprint()
        );
        assert_ne!(first, parse(vec![line(&a, 1), line(&b, 3)]).fingerprint());
        assert_ne!(first, parse(vec![line(&b, 2), line(&a, 1)]).fingerprint());
        assert_ne!(first, parse(vec![line(&a, 1)]).fingerprint());
    }

    #[test]
    fn idempotency_keys() {
        for good in [&b"k"[..], b" ", b"~", b"\"quoted\"", &[b'x'; 255]] {
            assert!(IdempotencyKey::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            &b""[..],
            &[b'x'; 256],
            b"tab\there",
            b"nl\n",
            b"\x7f",
            "caf\u{e9}".as_bytes(),
            b"\x00",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_orders() {
        let a = new_id();
        let cases = vec![
            vec![],
            vec![line(&a, 0)],
            vec![line(&a, -1)],
            vec![line(&a, 1001)],
            vec![line(&a, 4_294_967_296)],
            vec![line("nope", 1)],
            vec![line("1 OR 1=1", 1)],
            vec![line(&a, 1), line(&a, 2)],
            (0..101).map(|_| line(&new_id(), 1)).collect(),
        ];
        for items in cases {
            let shown = format!("{items:?}");
            assert!(
                OrderRequest::try_from(OrderInput { items }).is_err(),
                "{shown}"
            );
        }
    }
}
