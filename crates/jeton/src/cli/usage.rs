use clap::Args;
use jeton_auth::usage::{Counts, Granularity, Outcome, UsageSeries};

use crate::{
    domain::ids::{ClientId, CustomerId},
    http::admin::usage::{ShopUsage, Usage, requested_range},
    store::{Db, usage::Subject},
};

/// `jeton usage`: requests by outcome over time, as `GET /admin/…usage`
/// answers them.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// One client's usage (every key it had, its access tokens).
    #[arg(long, conflicts_with = "customer_id")]
    client_id: Option<String>,
    /// One customer's usage (their tokens and cookie sessions).
    #[arg(long)]
    customer_id: Option<String>,
    /// How far back, e.g. `90m`, `24h`, `7d`; default: 24 buckets, the
    /// current one included.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// `minute`, `hour` or `day`.
    #[arg(long, default_value = "hour", value_parser = parse_granularity)]
    granularity: Granularity,
    /// The API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_granularity(text: &str) -> Result<Granularity, String> {
    text.parse()
        .map_err(|error: jeton_auth::usage::RangeError| error.to_string())
}

/// One bar per bucket, scaled to the busiest: the shape at a glance.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&value| match (value, max) {
            (0, _) => ' ',
            (_, max) => BARS[((value * 8).div_ceil(max) - 1) as usize],
        })
        .collect()
}

fn print_table(series: &UsageSeries, shop: bool) {
    let requests: Vec<u64> = series.buckets.iter().map(|(_, c)| c.requests()).collect();
    println!(
        "{} buckets from {} to {}: {} requests, {} refused",
        series.range.granularity,
        rfc3339(series.range.from),
        rfc3339(series.range.to),
        series.totals.requests(),
        series.totals.refused()
    );
    println!("[{}]", sparkline(&requests));
    let mut header = format!("{:<25}", "TIME");
    for outcome in Outcome::ALL {
        header.push_str(&format!(" {:>10}", short(outcome)));
    }
    if shop {
        header.push_str(&format!(" {:>10}", "unattrib."));
    }
    println!("{header}");
    let row = |label: String, counts: &Counts| {
        let mut line = format!("{label:<25}");
        for outcome in Outcome::ALL {
            line.push_str(&format!(" {:>10}", counts.get(outcome)));
        }
        if shop {
            line.push_str(&format!(" {:>10}", counts.unattributed));
        }
        println!("{line}");
    };
    for (time, counts) in &series.buckets {
        row(rfc3339(*time), counts);
    }
    row("TOTAL".to_owned(), &series.totals);
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// The column headings: the outcomes' names, cut to fit.
fn short(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::InsufficientScope => "scope",
        Outcome::OriginNotAllowed => "origin",
        Outcome::SecretKeyInBrowser => "sk_browser",
        Outcome::CsrfFailed => "csrf",
        Outcome::RateLimited => "limited",
        Outcome::Revoked => "revoked",
        Outcome::Expired => "expired",
    }
}

pub async fn run(db: &Db, args: UsageArgs) -> anyhow::Result<()> {
    let now = db.now();
    let from = args
        .since
        .map(|since| time::Duration::try_from(since).map(|since| now - since))
        .transpose()?;
    let range = requested_range(Some(args.granularity), from, None, now)?;
    let (client, customer);
    let subject = match (&args.client_id, &args.customer_id) {
        (Some(id), _) => {
            client = ClientId::parse(id).ok_or_else(|| anyhow::anyhow!("no client {id}"))?;
            db.get_client(&client)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no client {id}"))?;
            Subject::Client(&client)
        }
        (None, Some(id)) => {
            customer = CustomerId::parse(id).ok_or_else(|| anyhow::anyhow!("no customer {id}"))?;
            db.get_customer(&customer)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no customer {id}"))?;
            Subject::Customer(&customer)
        }
        (None, None) => Subject::Shop,
    };
    let shop = matches!(subject, Subject::Shop);
    let series = db.usage(subject, range).await?;
    if args.json {
        let json = if shop {
            serde_json::to_string_pretty(&ShopUsage::from(series))?
        } else {
            serde_json::to_string_pretty(&Usage::from(series))?
        };
        println!("{json}");
    } else {
        print_table(&series, shop);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_busiest_bucket() {
        assert_eq!(sparkline(&[0, 1, 7, 14]), " ▁▄█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[]), "");
    }
}
