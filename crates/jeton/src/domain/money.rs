//! Money is an integer amount in minor units and an ISO 4217 currency code.
//! No floats anywhere near a price.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Active ISO 4217 codes (2024 list).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF \
DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR \
IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA \
MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR \
PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB \
TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU \
XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

/// The largest integer a JavaScript number holds exactly (2^53 − 1): no
/// amount the API shows is above it, so storefronts never round money.
pub const MAX_SAFE_AMOUNT: i64 = 9_007_199_254_740_991;

/// Largest accepted price: a thousandth of [`MAX_SAFE_AMOUNT`], so that a
/// line of 1000 units stays exact in JavaScript too. An order's total is
/// checked against [`MAX_SAFE_AMOUNT`] itself.
pub const MAX_AMOUNT: i64 = 9_007_199_254_740;

/// The codes [`parse_currency`] accepts.
pub fn currencies() -> impl Iterator<Item = &'static str> {
    ISO_4217.split_ascii_whitespace()
}

pub(crate) fn currency_schema() -> utoipa::openapi::Object {
    super::schema::field(
        super::schema::one_of_strings(currencies())
            .pattern(Some("^[A-Z]{3}$"))
            .description(Some("An active ISO 4217 code."))
            .examples(["EUR"]),
    )
}

pub(crate) fn amount_schema() -> utoipa::openapi::Object {
    super::schema::field(
        super::schema::integer(0, MAX_AMOUNT, false)
            .description(Some(
                "In minor units, e.g. 1900 for 19.00 EUR. At most 9007199254740, so that a \
                 line of 1000 units stays exact in JavaScript (an order total above \
                 2^53 − 1 is refused).",
            ))
            .examples([1900]),
    )
}

pub fn parse_currency(text: &str) -> Result<String, String> {
    let valid = text.len() == 3
        && text.bytes().all(|b| b.is_ascii_uppercase())
        && currencies().any(|code| code == text);
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be an ISO 4217 currency code such as EUR".to_owned())
    }
}

pub fn parse_amount(amount: i64) -> Result<i64, String> {
    if (0..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(format!(
            "must be an integer in minor units from 0 to {MAX_AMOUNT}"
        ))
    }
}

/// An amount in minor units (cents) and its currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer amount in minor units, e.g. 1999 for 19.99 EUR.
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies() {
        assert!(parse_currency("EUR").is_ok());
        assert!(parse_currency("JPY").is_ok());
        for bad in ["eur", "EU", "EURO", "ABC", "", "€"] {
            assert!(parse_currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts() {
        assert!(parse_amount(0).is_ok());
        assert!(parse_amount(MAX_AMOUNT).is_ok());
        assert!(parse_amount(-1).is_err());
        assert!(parse_amount(MAX_AMOUNT + 1).is_err());
        const { assert!(MAX_AMOUNT * 1000 <= MAX_SAFE_AMOUNT) };
    }
}
