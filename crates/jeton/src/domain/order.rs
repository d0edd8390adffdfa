//! An order request, parsed: 1 to 100 lines, each for a distinct, well-formed
//! product id and a quantity from 1 to 1000.

use std::collections::HashSet;

use serde::Deserialize;
use utoipa::ToSchema;

use super::{FieldError, Problems, ids::parse_id};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 1000;

/// `POST /orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub items: Vec<OrderLineInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineInput {
    pub product_id: String,
    /// 1 to 1000.
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: i64,
}

/// Lines in the order the customer sent them; the store locks rows in
/// product-id order, whatever this order is.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub lines: Vec<OrderLine>,
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
                parse_id(&item.product_id).ok_or_else(|| "is not a product id".to_owned()),
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
