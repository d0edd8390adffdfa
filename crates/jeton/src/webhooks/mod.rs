//! Webhooks (API.md §14): events raised in the transaction of the change
//! that causes them (`events`), endpoints and their deliveries as stored
//! (`store`), signatures (`signing`) and the worker that delivers
//! (`worker`), through a [`Sender`].

pub mod events;
pub mod outbound;
pub mod sender;
pub mod signing;
pub mod store;
pub mod worker;

pub use sender::{OutboundSender, Outgoing, Received, Sender};
