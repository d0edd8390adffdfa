//! The publishable keys each thread verified last, by their text.
//!
//! A storefront's pages all carry the same publishable key, so most
//! requests a shop serves authenticate with one key, or a handful. Finding
//! it by its text skips what a cache hit otherwise costs: checking the
//! format and checksum, hashing it and looking the hash up in the shared
//! cache (together about half of the guard's time). Only publishable keys
//! are kept this way: they are public by design (they sit in every
//! visitor's browser), so holding one's text in memory exposes nothing.
//! Secret keys and user tokens are only ever kept as hashes.
//!
//! Each thread has its own few slots, so a hit takes no lock and writes
//! nothing shared. An entry serves only the verifier that made it, and only
//! while that verifier's generation is the one it was made in: any
//! invalidation (a revocation, a rotation) retires every entry at once.
//! Expiry and the reload time are checked on every hit, as on a cache hit.

use std::cell::RefCell;

use zeroize::Zeroizing;

use super::Cached;
use crate::{
    PlainToken, TokenKind,
    token::{PREFIX_LEN, TOKEN_LEN},
};

/// Slots per thread. A key's slot is chosen by its first random character,
/// so a few keys rarely share one, and a shop with many keys in use at once
/// still verifies every one through the shared cache.
const SLOTS: usize = 4;

struct Entry {
    verifier: u64,
    generation: u64,
    text: Zeroizing<[u8; TOKEN_LEN]>,
    cached: Cached,
}

thread_local! {
    static SLOTS_OF_THIS_THREAD: RefCell<[Option<Entry>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// The slot of a token's text: its first character after the `jt_pk_`
/// prefix, random.
fn slot(text: &[u8; TOKEN_LEN]) -> usize {
    usize::from(text[PREFIX_LEN]) % SLOTS
}

/// Whether two texts are equal, without an early exit: the texts are public,
/// but the comparison costs nothing more this way.
fn same(a: &[u8; TOKEN_LEN], b: &[u8; TOKEN_LEN]) -> bool {
    a.iter()
        .zip(b)
        .fold(0, |difference, (x, y)| difference | (x ^ y))
        == 0
}

/// The credential of `text`, if this thread verified it as a publishable
/// key for `verifier` in its current `generation`.
pub(super) fn find(verifier: u64, generation: u64, text: &[u8]) -> Option<Cached> {
    let text: &[u8; TOKEN_LEN] = text.try_into().ok()?;
    SLOTS_OF_THIS_THREAD.with_borrow(|slots| {
        let entry = slots[slot(text)].as_ref()?;
        (entry.verifier == verifier && entry.generation == generation && same(&entry.text, text))
            .then(|| entry.cached.clone())
    })
}

/// Notes a credential just found in the shared cache. `generation` must
/// have been read before that lookup, so that an invalidation that raced
/// with it leaves the entry retired. Anything but a publishable key is
/// ignored.
pub(super) fn remember(verifier: u64, generation: u64, token: &PlainToken, cached: &Cached) {
    if token.kind() != TokenKind::Publishable {
        return;
    }
    let text = token.text();
    SLOTS_OF_THIS_THREAD.with_borrow_mut(|slots| {
        slots[slot(text)] = Some(Entry {
            verifier,
            generation,
            text: Zeroizing::new(*text),
            cached: cached.clone(),
        });
    });
}
