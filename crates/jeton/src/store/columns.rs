//! How values sit in columns that both databases treat alike, for the rows'
//! `#[derive(FromRow)]`: times as BIGINT microseconds since the Unix epoch,
//! lists (abilities, origins) as space-separated text. A row names one of
//! these with `#[sqlx(try_from = "...")]` and gets the domain value.

use jeton_auth::{AbilitySet, InvalidAbility};
use time::OffsetDateTime;

use crate::domain::time::from_micros_checked;

/// A time column.
#[derive(Debug, Clone, Copy, sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct Micros(i64);

impl TryFrom<Micros> for OffsetDateTime {
    type Error = time::error::ComponentRange;

    fn try_from(Micros(micros): Micros) -> Result<OffsetDateTime, Self::Error> {
        from_micros_checked(micros)
    }
}

/// A nullable time column.
#[derive(Debug, Clone, Copy, sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct MaybeMicros(Option<i64>);

impl TryFrom<MaybeMicros> for Option<OffsetDateTime> {
    type Error = time::error::ComponentRange;

    fn try_from(MaybeMicros(micros): MaybeMicros) -> Result<Self, Self::Error> {
        micros.map(from_micros_checked).transpose()
    }
}

/// A text column holding words separated by spaces.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct Spaced(String);

impl From<Spaced> for Vec<String> {
    fn from(Spaced(text): Spaced) -> Vec<String> {
        text.split_ascii_whitespace().map(str::to_owned).collect()
    }
}

impl TryFrom<Spaced> for AbilitySet {
    type Error = InvalidAbility;

    fn try_from(Spaced(text): Spaced) -> Result<AbilitySet, InvalidAbility> {
        AbilitySet::parse_spaced(&text)
    }
}
