//! The publishable keys each thread verified recently, by their text.
//!
//! A storefront's pages all carry the same publishable key, so most
//! requests a shop serves authenticate with one key, or a handful. Finding
//! it by its text skips what a cache hit otherwise costs: checking the
//! format and checksum, hashing it and looking the hash up in the shared
//! cache (together about half of the guard's time). Only publishable keys
//! are kept this way: they are public by design (they sit in every
//! visitor's browser), so holding one's text in memory exposes nothing.
//! The verifier's caches hold secret keys and user tokens only as hashes.
//!
//! Each thread has its own slots, so a hit takes no lock and hashes
//! nothing; what it shares with other threads is the count of verified
//! requests and the principal's reference count, as any cache hit does. An
//! entry serves only the verifier that made it, and only in the generation
//! its credential was read in (see `verify.rs`): an invalidation (a
//! revocation, a rotation) retires every entry at once. Expiry and the
//! reload time are checked on every hit, as on any cache hit.

use std::cell::RefCell;

use zeroize::Zeroizing;

use super::Cached;
use crate::{
    PlainToken, TokenKind,
    clock::has_passed,
    token::{PREFIX_LEN, TOKEN_LEN, equal_in_constant_time},
};

/// Slots per thread. A key's slot is chosen by its first random character
/// (one of 62), so two keys share one about one time in eight; then the
/// first keeps it until an invalidation or its reload time (see
/// [`remember`]) and the other is verified through the shared cache, as
/// every key was before.
const SLOTS: usize = 8;

struct Entry {
    verifier: u64,
    text: Zeroizing<[u8; TOKEN_LEN]>,
    cached: Cached,
}

thread_local! {
    static SLOTS_OF_THIS_THREAD: RefCell<[Option<Entry>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// The slot of a key (`pub(super)` for the tests, which pick two keys that
/// share one).
pub(super) fn slot(text: &[u8; TOKEN_LEN]) -> usize {
    usize::from(text[PREFIX_LEN]) % SLOTS
}

/// The credential of `text`, if this thread verified it as a publishable
/// key for `verifier` in `generation`, the verifier's current one, and it is
/// not due for reloading at `now`: the shared cache's conditions. Texts are
/// compared in constant time like every token, though these are public.
pub(super) fn find(verifier: u64, generation: u64, text: &[u8], now: i64) -> Option<Cached> {
    let text: &[u8; TOKEN_LEN] = text.try_into().ok()?;
    SLOTS_OF_THIS_THREAD.with_borrow(|slots| {
        let entry = slots[slot(text)].as_ref()?;
        (entry.verifier == verifier
            && entry.cached.generation == generation
            && entry.cached.reload_at > now
            && equal_in_constant_time(&entry.text, text))
        .then(|| entry.cached.clone())
    })
}

/// Notes a credential the shared cache just served for `token` in its
/// current generation. Only a publishable key that will be accepted is
/// kept: an expired one (an old key after a rotation, still sent by stale
/// pages) must not hold a slot. A slot that holds another key of the same
/// verifier and generation, not due for reloading, keeps it: two keys in
/// one slot, used in turn, would otherwise each pay for both paths on every
/// request.
pub(super) fn remember(verifier: u64, token: &PlainToken, cached: &Cached, now: i64) {
    if token.kind() != TokenKind::Publishable
        || cached.principal.kind() != TokenKind::Publishable
        || has_passed(cached.expires_at, now)
    {
        return;
    }
    // Sized for Jeton's own keys; another app's are verified through the
    // shared cache.
    let Ok(text) = <&[u8; TOKEN_LEN]>::try_from(token.text()) else {
        return;
    };
    SLOTS_OF_THIS_THREAD.with_borrow_mut(|slots| {
        let slot = &mut slots[slot(text)];
        let taken = slot.as_ref().is_some_and(|entry| {
            entry.verifier == verifier
                && entry.cached.generation == cached.generation
                && entry.cached.reload_at > now
                && !equal_in_constant_time(&entry.text, text)
        });
        if !taken {
            *slot = Some(Entry {
                verifier,
                text: Zeroizing::new(*text),
                cached: cached.clone(),
            });
        }
    });
}
