//! Usage: what each credential did. The gate counts every request it
//! resolves to a stored credential, in memory, per credential, outcome and
//! minute ([`Outcome`]); malformed and unknown tokens are counted per minute
//! as `unattributed`. Every
//! [`usage_interval`](crate::GateBuilder::usage_interval) it hands what it
//! counted to the store in one batch ([`TokenStore::record_counts`]), so a
//! request never writes, and each process writes only its own increments:
//! a fleet's counts add up in the database, with nothing shared between
//! processes.
//!
//! The rest of this module is for reading the counts back: a range of
//! buckets ([`UsageRange`], with its rules of rounding, size and retention)
//! and a series with every bucket present ([`UsageSeries`]).
//!
//! [`TokenStore::record_counts`]: crate::TokenStore::record_counts

use std::{collections::HashMap, fmt, str::FromStr, sync::Mutex, time::Duration};

use serde::Serialize;
use time::OffsetDateTime;

use crate::{AuthError, Principal, TokenKind};

/// How a request of a known credential ended, as far as the gate decides:
/// what a handler refuses later (a 404, a limit of the app's own) is `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed the gate.
    Ok,
    /// 403: a missing ability, or a kind the route does not take.
    InsufficientScope,
    /// 403: an origin the client does not allow (a key, or a session
    /// cookie).
    OriginNotAllowed,
    /// 403: a secret key or access token sent with an `Origin`.
    SecretKeyInBrowser,
    /// 403: a cookie session without the right CSRF token.
    CsrfFailed,
    /// 429: one of the gate's request limits.
    RateLimited,
    /// 401: the credential exists but was revoked.
    Revoked,
    /// 401: the credential exists but has expired.
    Expired,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::InsufficientScope,
        Outcome::OriginNotAllowed,
        Outcome::SecretKeyInBrowser,
        Outcome::CsrfFailed,
        Outcome::RateLimited,
        Outcome::Revoked,
        Outcome::Expired,
    ];

    /// The name in the API and the database: `ok`, `insufficient_scope`, …
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::OriginNotAllowed => "origin_not_allowed",
            Outcome::SecretKeyInBrowser => "secret_key_in_browser",
            Outcome::CsrfFailed => "csrf_failed",
            Outcome::RateLimited => "rate_limited",
            Outcome::Revoked => "revoked",
            Outcome::Expired => "expired",
        }
    }

    /// The outcome of the gate refusing a credential it resolved.
    pub(crate) fn of_refusal(error: &AuthError) -> Outcome {
        match error {
            AuthError::OriginNotAllowed | AuthError::SessionOriginNotAllowed => {
                Outcome::OriginNotAllowed
            }
            AuthError::SecretKeyInBrowser => Outcome::SecretKeyInBrowser,
            AuthError::CsrfFailed => Outcome::CsrfFailed,
            AuthError::RateLimited { .. } => Outcome::RateLimited,
            // Every other refusal of a resolved credential is about what
            // it may do (a kind or an ability).
            _ => Outcome::InsufficientScope,
        }
    }
}

/// Requests per outcome, and (for the whole shop) those of no credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub insufficient_scope: u64,
    pub origin_not_allowed: u64,
    pub secret_key_in_browser: u64,
    pub csrf_failed: u64,
    pub rate_limited: u64,
    pub revoked: u64,
    pub expired: u64,
    /// Malformed and unknown tokens: no credential to count them against.
    pub unattributed: u64,
}

impl Counts {
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Ok => self.ok,
            Outcome::InsufficientScope => self.insufficient_scope,
            Outcome::OriginNotAllowed => self.origin_not_allowed,
            Outcome::SecretKeyInBrowser => self.secret_key_in_browser,
            Outcome::CsrfFailed => self.csrf_failed,
            Outcome::RateLimited => self.rate_limited,
            Outcome::Revoked => self.revoked,
            Outcome::Expired => self.expired,
        }
    }

    fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Ok => &mut self.ok,
            Outcome::InsufficientScope => &mut self.insufficient_scope,
            Outcome::OriginNotAllowed => &mut self.origin_not_allowed,
            Outcome::SecretKeyInBrowser => &mut self.secret_key_in_browser,
            Outcome::CsrfFailed => &mut self.csrf_failed,
            Outcome::RateLimited => &mut self.rate_limited,
            Outcome::Revoked => &mut self.revoked,
            Outcome::Expired => &mut self.expired,
        }
    }

    pub fn add(&mut self, outcome: Outcome, requests: u64) {
        *self.slot(outcome) += requests;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for outcome in Outcome::ALL {
            self.add(outcome, other.get(outcome));
        }
        self.unattributed += other.unattributed;
    }

    /// Every request counted, refused or not, unattributed ones included.
    pub fn requests(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum::<u64>() + self.unattributed
    }

    /// Every request refused: all but `ok`.
    pub fn refused(&self) -> u64 {
        self.requests() - self.ok
    }

    pub fn is_zero(&self) -> bool {
        self.requests() == 0
    }
}

/// Whose requests a [`UsageRecord`] counts: a credential as the gate
/// resolved it, with what its usage is added up under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountedCredential {
    /// The key's or token's id.
    pub id: String,
    pub kind: TokenKind,
    /// For a client's keys and access tokens, and a guest token: the
    /// client (a guest's requests are its client's storefront's).
    pub client_id: Option<String>,
    /// For a user token or cookie session: the user; for a staff session:
    /// the staff member.
    pub user_id: Option<String>,
}

impl CountedCredential {
    fn of(principal: &Principal) -> CountedCredential {
        match principal {
            Principal::User(user) | Principal::Staff(user) => CountedCredential {
                id: user.token_id.clone(),
                kind: principal.kind(),
                client_id: None,
                user_id: Some(user.user_id.clone()),
            },
            Principal::Guest(guest) => CountedCredential {
                id: guest.token_id.clone(),
                kind: principal.kind(),
                client_id: Some(guest.client_id.clone()),
                user_id: None,
            },
            _ => {
                let client = principal.client().expect("a principal that is not a user");
                CountedCredential {
                    id: client.key_id.clone(),
                    kind: principal.kind(),
                    client_id: Some(client.client_id.clone()),
                    user_id: None,
                }
            }
        }
    }
}

/// What one process counted of one credential (or of no credential) in
/// one minute: what the gate hands the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The minute's start, UTC.
    pub minute: OffsetDateTime,
    /// `None`: the minute's unattributed requests.
    pub credential: Option<CountedCredential>,
    pub counts: Counts,
}

/// One minute's counts, in memory.
#[derive(Default)]
struct Minute {
    /// By credential id; the credential's details are kept with the first
    /// count of the minute, so counting again allocates nothing.
    credentials: HashMap<String, (CountedCredential, Counts)>,
    unattributed: u64,
}

/// The gate's counters, until the next flush. One lock for the whole map:
/// it is held for a hash lookup and an addition, and a request's other
/// costs are hundreds of times that.
#[derive(Default)]
pub(crate) struct UsageCounter {
    minutes: Mutex<HashMap<i64, Minute>>,
}

fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60) * 60
}

impl UsageCounter {
    pub(crate) fn count(&self, principal: &Principal, outcome: Outcome, at: OffsetDateTime) {
        let id = match principal {
            Principal::User(user) | Principal::Staff(user) => &user.token_id,
            Principal::Guest(guest) => &guest.token_id,
            _ => match principal.client() {
                Some(client) => &client.key_id,
                None => return,
            },
        };
        let mut minutes = self.minutes.lock().expect("usage counter lock");
        let minute = minutes.entry(minute_of(at)).or_default();
        match minute.credentials.get_mut(id.as_str()) {
            Some((_, counts)) => counts.add(outcome, 1),
            None => {
                let mut counts = Counts::default();
                counts.add(outcome, 1);
                minute
                    .credentials
                    .insert(id.clone(), (CountedCredential::of(principal), counts));
            }
        }
    }

    pub(crate) fn count_unattributed(&self, at: OffsetDateTime) {
        let mut minutes = self.minutes.lock().expect("usage counter lock");
        minutes.entry(minute_of(at)).or_default().unattributed += 1;
    }

    /// Everything counted since the last call.
    pub(crate) fn take(&self) -> Vec<UsageRecord> {
        let minutes = std::mem::take(&mut *self.minutes.lock().expect("usage counter lock"));
        let mut records = Vec::new();
        for (start, minute) in minutes {
            let Ok(at) = OffsetDateTime::from_unix_timestamp(start) else {
                continue;
            };
            if minute.unattributed > 0 {
                records.push(UsageRecord {
                    minute: at,
                    credential: None,
                    counts: Counts {
                        unattributed: minute.unattributed,
                        ..Counts::default()
                    },
                });
            }
            records.extend(
                minute
                    .credentials
                    .into_values()
                    .map(|(credential, counts)| UsageRecord {
                        minute: at,
                        credential: Some(credential),
                        counts,
                    }),
            );
        }
        records
    }
}

/// Whose usage: a client's (every key it ever had and the access tokens it
/// obtained), a user's (all their tokens and cookie sessions), or
/// everyone's, unattributed requests included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOf<'a> {
    Client(&'a str),
    User(&'a str),
    All,
}

/// How `SqlStore::top_clients` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Every request, refused or not.
    Requests,
    /// Refused requests only.
    Refused,
}

/// The size of a bucket of usage, and how long buckets of that size are
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub const fn name(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
        }
    }

    /// How long buckets of this size are kept at least: minutes 48 hours,
    /// hours 90 days, days 2 years (731 days: a leap year's worth).
    pub const fn retention(self) -> Duration {
        let days = match self {
            Granularity::Minute => 2,
            Granularity::Hour => 90,
            Granularity::Day => 731,
        };
        Duration::from_secs(days * 86_400)
    }

    /// The start of the bucket `at` falls in (UTC).
    pub fn floor(self, at: OffsetDateTime) -> OffsetDateTime {
        let seconds = at.unix_timestamp();
        let start = seconds - seconds.rem_euclid(self.seconds());
        OffsetDateTime::from_unix_timestamp(start).unwrap_or(at)
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Granularity {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Granularity, RangeError> {
        Granularity::ALL
            .into_iter()
            .find(|granularity| granularity.name() == text)
            .ok_or(RangeError::Granularity)
    }
}

/// Why a range of usage cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("granularity is `minute`, `hour` or `day`")]
    Granularity,
    #[error("`from` must be before `to`")]
    Empty,
    #[error("at most {max} buckets at a time; this range has {buckets}", max = UsageRange::MAX_BUCKETS)]
    TooLong { buckets: i64 },
    #[error("{granularity} buckets are kept for {days} days; this range starts before that", days = .granularity.retention().as_secs() / 86_400)]
    PastRetention { granularity: Granularity },
}

/// A range of buckets, `[from, to)`, both on bucket boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    pub granularity: Granularity,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl UsageRange {
    /// The most buckets one answer holds.
    pub const MAX_BUCKETS: i64 = 1_440;

    /// `[from, to)` in buckets of `granularity`, each end rounded down to
    /// its bucket. Refused when empty, longer than
    /// [`MAX_BUCKETS`](Self::MAX_BUCKETS), or starting before the
    /// granularity's retention (measured from `now`).
    pub fn new(
        granularity: Granularity,
        from: OffsetDateTime,
        to: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<UsageRange, RangeError> {
        let (from, to) = (granularity.floor(from), granularity.floor(to));
        if to <= from {
            return Err(RangeError::Empty);
        }
        let buckets = (to - from).whole_seconds() / granularity.seconds();
        if buckets > Self::MAX_BUCKETS {
            return Err(RangeError::TooLong { buckets });
        }
        if from < granularity.floor(now - granularity.retention()) {
            return Err(RangeError::PastRetention { granularity });
        }
        Ok(UsageRange {
            granularity,
            from,
            to,
        })
    }

    /// The last `buckets` buckets of `granularity`, the current one
    /// included.
    pub fn last(granularity: Granularity, buckets: i64, now: OffsetDateTime) -> UsageRange {
        let to = granularity.floor(now) + time::Duration::seconds(granularity.seconds());
        UsageRange {
            granularity,
            from: to - time::Duration::seconds(granularity.seconds() * buckets.max(1)),
            to,
        }
    }

    /// The number of buckets.
    pub fn len(&self) -> usize {
        usize::try_from((self.to - self.from).whole_seconds() / self.granularity.seconds())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each bucket's start, in time order.
    pub fn starts(&self) -> impl Iterator<Item = OffsetDateTime> + '_ {
        let step = time::Duration::seconds(self.granularity.seconds());
        (0..self.len()).map(move |i| self.from + step * i as i32)
    }
}

/// A range's buckets, every one present (zeros included), in time order,
/// with their totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSeries {
    pub range: UsageRange,
    pub buckets: Vec<(OffsetDateTime, Counts)>,
    pub totals: Counts,
}

impl UsageSeries {
    /// The series of `range` from the buckets that have counts; buckets
    /// outside the range are ignored.
    pub fn fill(
        range: UsageRange,
        counted: impl IntoIterator<Item = (OffsetDateTime, Counts)>,
    ) -> UsageSeries {
        let mut by_start: HashMap<OffsetDateTime, Counts> = HashMap::new();
        for (start, counts) in counted {
            by_start
                .entry(range.granularity.floor(start))
                .or_default()
                .merge(&counts);
        }
        let mut totals = Counts::default();
        let buckets = range
            .starts()
            .map(|start| {
                let counts = by_start.remove(&start).unwrap_or_default();
                totals.merge(&counts);
                (start, counts)
            })
            .collect();
        UsageSeries {
            range,
            buckets,
            totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbilitySet, ClientPrincipal, UserPrincipal};
    use std::sync::Arc;
    use time::macros::datetime;

    fn key(id: &str) -> Principal {
        Principal::PublishableClient(Arc::new(ClientPrincipal::new(
            "client".to_owned(),
            id.to_owned(),
            AbilitySet::default(),
        )))
    }

    #[test]
    fn counts_by_credential_outcome_and_minute() {
        let counter = UsageCounter::default();
        let t = datetime!(2026-12-07 10:00:59 UTC);
        let user = Principal::User(Arc::new(UserPrincipal::new(
            "u1".to_owned(),
            "t1".to_owned(),
            AbilitySet::default(),
        )));
        counter.count(&key("k1"), Outcome::Ok, t);
        counter.count(&key("k1"), Outcome::Ok, t);
        counter.count(&key("k1"), Outcome::RateLimited, t);
        counter.count(&key("k1"), Outcome::Ok, t + time::Duration::seconds(1));
        counter.count(&user, Outcome::Expired, t);
        counter.count_unattributed(t);
        let mut records = counter.take();
        records.sort_by_key(|r| (r.minute, r.credential.as_ref().map(|c| c.id.clone())));
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].credential, None);
        assert_eq!(records[0].counts.unattributed, 1);
        let k1 = &records[1];
        assert_eq!(k1.minute, datetime!(2026-12-07 10:00 UTC));
        assert_eq!((k1.counts.ok, k1.counts.rate_limited), (2, 1));
        assert_eq!(
            k1.credential.as_ref().unwrap().client_id.as_deref(),
            Some("client")
        );
        let user = records[2].credential.as_ref().unwrap();
        assert_eq!(
            (
                user.kind,
                user.user_id.as_deref(),
                user.client_id.as_deref()
            ),
            (TokenKind::User, Some("u1"), None)
        );
        assert_eq!(records[3].minute, datetime!(2026-12-07 10:01 UTC));
        assert!(counter.take().is_empty(), "handed over once");
    }

    #[test]
    fn a_staff_session_counts_against_its_member() {
        let counter = UsageCounter::default();
        let t = datetime!(2026-12-07 10:00:00 UTC);
        let member = Principal::Staff(Arc::new(UserPrincipal::new(
            "m1".to_owned(),
            "s1".to_owned(),
            AbilitySet::default(),
        )));
        counter.count(&member, Outcome::Ok, t);
        counter.count(&member, Outcome::OriginNotAllowed, t);
        let records = counter.take();
        assert_eq!(records.len(), 1);
        let credential = records[0].credential.as_ref().unwrap();
        assert_eq!(
            (
                credential.id.as_str(),
                credential.kind,
                credential.user_id.as_deref(),
                credential.client_id.as_deref()
            ),
            ("s1", TokenKind::Staff, Some("m1"), None)
        );
        assert_eq!(
            (records[0].counts.ok, records[0].counts.origin_not_allowed),
            (1, 1)
        );
    }

    #[test]
    fn ranges_round_down_and_are_bounded() {
        let now = datetime!(2026-12-07 10:30:15 UTC);
        let range = UsageRange::new(
            Granularity::Hour,
            datetime!(2026-12-07 08:59:59 UTC),
            datetime!(2026-12-07 10:30 UTC),
            now,
        )
        .unwrap();
        assert_eq!(range.from, datetime!(2026-12-07 08:00 UTC));
        assert_eq!(range.to, datetime!(2026-12-07 10:00 UTC));
        assert_eq!(range.len(), 2);
        let minute = |from, to| UsageRange::new(Granularity::Minute, from, to, now);
        assert_eq!(
            minute(now, now - time::Duration::minutes(1)),
            Err(RangeError::Empty)
        );
        assert_eq!(
            minute(now - time::Duration::minutes(1441), now).unwrap_err(),
            RangeError::TooLong { buckets: 1441 }
        );
        assert!(minute(now - time::Duration::minutes(1440), now).is_ok());
        assert_eq!(
            minute(
                now - time::Duration::hours(49),
                now - time::Duration::hours(48)
            ),
            Err(RangeError::PastRetention {
                granularity: Granularity::Minute
            })
        );
        assert!(
            UsageRange::new(Granularity::Day, now - time::Duration::days(700), now, now).is_ok()
        );
    }

    #[test]
    fn the_default_is_the_last_24_hours_with_the_current_one() {
        let now = datetime!(2026-12-07 10:30 UTC);
        let range = UsageRange::last(Granularity::Hour, 24, now);
        assert_eq!(range.len(), 24);
        assert_eq!(range.to, datetime!(2026-12-07 11:00 UTC));
        assert_eq!(range.from, datetime!(2026-12-06 11:00 UTC));
    }

    #[test]
    fn series_have_every_bucket_with_zeros() {
        let now = datetime!(2026-12-07 10:30 UTC);
        let range = UsageRange::last(Granularity::Hour, 3, now);
        let mut counts = Counts::default();
        counts.add(Outcome::Ok, 5);
        let series = UsageSeries::fill(
            range,
            [
                (datetime!(2026-12-07 09:00 UTC), counts),
                (datetime!(2026-12-07 09:00 UTC), counts),
                // Outside: ignored.
                (datetime!(2026-12-07 04:00 UTC), counts),
            ],
        );
        let oks: Vec<u64> = series.buckets.iter().map(|(_, c)| c.ok).collect();
        assert_eq!(oks, [0, 10, 0]);
        assert_eq!(series.totals.ok, 10);
        assert_eq!(series.buckets[0].0, datetime!(2026-12-07 08:00 UTC));
    }

    #[test]
    fn granularity_names_round_trip() {
        for granularity in Granularity::ALL {
            assert_eq!(granularity.name().parse(), Ok(granularity));
        }
        assert!("week".parse::<Granularity>().is_err());
    }
}
