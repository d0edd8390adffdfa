//! An order body goes through the same JSON parsing and domain parsing as
//! the API: any bytes give a value or a 4xx, never a panic; a parsed order
//! always has 1 to 100 distinct lines with quantities 1 to 1000.
#![no_main]

use jeton::{
    domain::order::{OrderInput, OrderRequest},
    http::extract::parse_json,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = parse_json::<OrderInput>(data) else { return };
    if let Ok(order) = OrderRequest::try_from(input) {
        assert!((1..=100).contains(&order.lines.len()));
        let mut ids: Vec<&str> = order.lines.iter().map(|l| l.product_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), order.lines.len());
        assert!(order.lines.iter().all(|l| (1..=1000).contains(&l.quantity)));
    }
});
