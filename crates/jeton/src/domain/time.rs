//! Timestamps are stored as microseconds since the Unix epoch (a BIGINT both
//! databases compare and index the same way) and shown as RFC 3339 UTC.
//! The current time is the database handle's clock (`Db::now`), which tests
//! move on instead of waiting.

use time::OffsetDateTime;

pub type Timestamp = OffsetDateTime;

pub fn to_micros(at: Timestamp) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).expect("timestamps fit i64 microseconds")
}

pub fn from_micros(micros: i64) -> Timestamp {
    from_micros_checked(micros).expect("stored timestamps are valid")
}

/// [`from_micros`] for values read from storage: a time out of
/// range is a decoding error, not a panic.
pub fn from_micros_checked(micros: i64) -> Result<Timestamp, time::error::ComponentRange> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let micros = to_micros(OffsetDateTime::now_utc());
        assert_eq!(to_micros(from_micros(micros)), micros);
    }
}
